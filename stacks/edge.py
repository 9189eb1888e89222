"""Edge (context ``edge=true``): CloudFront in front of the WebSocket API, guarded by AWS WAF.

WAF cannot attach to a WebSocket API, but it can attach to a CloudFront distribution, and
CloudFront passes WebSocket upgrades through: the viewer connects to
``wss://{distribution}/{stage}?token=...`` and CloudFront opens the same path on the API.
WAF sees the HTTP upgrade request (so the rate rule counts connection attempts per IP), not the
frames that follow. A CLOUDFRONT-scoped web ACL exists only in us-east-1, hence the region check.

Three managed rules would refuse legitimate chat clients, so they only count (RULE_OVERRIDES,
each with its reason), and the query-string size rule is replaced by one sized for the longest
token mint_token signs. CloudFront adds ORIGIN_HEADER with a generated secret to every
request it sends the API; the authorizer refuses a handshake without it, so the execute-api URL
is no way around WAF.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from functions.chat.auth import MAX_TOKEN_LENGTH
from functions.chat.schema import ORIGIN_HEADER, TOKEN_QUERY_PARAMETER
from stacks.config import ConfigError, DeploymentConfig

WAF_REGION = "us-east-1"
MANAGED_RULE_GROUPS: tuple[str, ...] = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAnonymousIpList",
)
# Managed rules set to count instead of block: rule group -> rule -> why it would refuse real users.
RULE_OVERRIDES: dict[str, dict[str, str]] = {
    "AWSManagedRulesCommonRuleSet": {
        "NoUserAgent_HEADER": "WebSocket clients need not send a User-Agent (websockets libraries, bots, "
        "the project's own locust users send none); tokens decide who connects.",
        "SizeRestrictions_QUERYSTRING": "Its 2,048-byte limit refuses valid tokens (a token naming 100 rooms "
        "is over 3 KB); the QueryStringSize rule below is sized for the longest token mint_token signs.",
    },
    "AWSManagedRulesAnonymousIpList": {
        "HostingProviderIPList": "Refuses every client on a cloud host: bots, server-side integrations and "
        "load generators are chat users too. The per-IP rate rule still applies to them.",
    },
}
# CloudFront refuses longer URLs itself (a quota); MAX_TOKEN_LENGTH is chosen to fit under it.
CLOUDFRONT_MAX_URL_BYTES = 8192
# The longest query string a handshake with a minted token sends (token= and the longest token
# mint_token signs), with room for a few other parameters; anything longer is not a chat client.
QUERY_STRING_LIMIT = len(f"{TOKEN_QUERY_PARAMETER}=") + MAX_TOKEN_LENGTH + 128
# 43 generated characters: ~256 bits, and nothing a header could mangle.
ORIGIN_SECRET_LENGTH = 43


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


class Edge(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        api_domain_name: str,
        secret_key: kms.IKey,
    ) -> None:
        """``secret_key`` encrypts the origin secret (the authorizer's secrets key)."""
        super().__init__(scope, construct_id)
        if Stack.of(self).region != WAF_REGION:
            raise ConfigError(
                f"edge=true needs the stack in {WAF_REGION} (a CloudFront WAF web ACL exists only there); "
                f"deploy with -c region={WAF_REGION} or without edge"
            )
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=priority,
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=group,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in RULE_OVERRIDES.get(group, {})
                        ]
                        or None,
                    )
                ),
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                visibility_config=_visibility(group),
            )
            for priority, group in enumerate(MANAGED_RULE_GROUPS)
        ]
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="QueryStringSize",
                priority=len(rules),
                statement=wafv2.CfnWebACL.StatementProperty(
                    size_constraint_statement=wafv2.CfnWebACL.SizeConstraintStatementProperty(
                        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(query_string={}),
                        comparison_operator="GT",
                        size=QUERY_STRING_LIMIT,
                        text_transformations=[
                            wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")
                        ],
                    )
                ),
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                visibility_config=_visibility("QueryStringSize"),
            )
        )
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="ConnectRatePerIp",
                priority=len(rules),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=config.waf_rate_limit, aggregate_key_type="IP", evaluation_window_sec=300
                    )
                ),
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                visibility_config=_visibility("ConnectRatePerIp"),
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="CLOUDFRONT",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(f"dynamowave-{config.stage}"),
            rules=rules,
        )
        self.origin_secret = secretsmanager.Secret(
            self,
            "OriginSecret",
            description=f"DynamoWave {config.stage}: the {ORIGIN_HEADER} value CloudFront sends the API",
            encryption_key=secret_key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=ORIGIN_SECRET_LENGTH, exclude_punctuation=True, include_space=False
            ),
            removal_policy=RemovalPolicy.DESTROY,  # a new one is generated on the next deploy
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"DynamoWave {config.stage}: WebSocket API behind WAF",
            web_acl_id=self.web_acl.attr_arn,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.HttpOrigin(
                    api_domain_name,
                    protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
                    origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
                    # A dynamic reference: resolved by CloudFormation, never in the template.
                    custom_headers={ORIGIN_HEADER: self.origin_secret.secret_value.unsafe_unwrap()},
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                # Nothing to cache on a WebSocket; forward the upgrade headers and ?token= intact,
                # but not Host (API Gateway routes on its own host name).
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            ),
        )
        self.url = f"wss://{self.distribution.distribution_domain_name}/{config.stage}"
