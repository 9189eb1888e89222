"""Edge (context ``edge=true``): CloudFront in front of the WebSocket API, guarded by AWS WAF.

WAF cannot attach to a WebSocket API, but it can attach to a CloudFront distribution, and
CloudFront passes WebSocket upgrades through: the viewer connects to
``wss://{distribution}/{stage}?token=...`` and CloudFront opens the same path on the API.
WAF sees the HTTP upgrade request (so the rate rule counts connection attempts per IP), not the
frames that follow. A CLOUDFRONT-scoped web ACL exists only in us-east-1, hence the region check.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from stacks.config import ConfigError, DeploymentConfig

WAF_REGION = "us-east-1"
MANAGED_RULE_GROUPS: tuple[str, ...] = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAnonymousIpList",
)


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


class Edge(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, api_domain_name: str
    ) -> None:
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
                        vendor_name="AWS", name=group
                    )
                ),
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                visibility_config=_visibility(group),
            )
            for priority, group in enumerate(MANAGED_RULE_GROUPS)
        ]
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
