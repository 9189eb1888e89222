"""Edge: CloudFront passes WebSockets through to the API, guarded by a CLOUDFRONT web ACL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.chat.auth import MAX_TOKEN_LENGTH, TokenRefused, mint_token
from functions.chat.schema import ORIGIN_HEADER
from functions.chat.settings import ENV
from stacks.application import build_app
from stacks.config import ConfigError
from stacks.edge import CLOUDFRONT_MAX_URL_BYTES, MANAGED_RULE_GROUPS, QUERY_STRING_LIMIT, RULE_OVERRIDES
from tests.infra.infra_helpers import api_logical_id, function_id, ref_id, resources_of

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def test_the_web_acl_has_managed_rules_and_a_per_ip_rate_limit(edge_json: dict[str, Any]) -> None:
    (acl,) = resources_of(edge_json, "AWS::WAFv2::WebACL").values()
    props = acl["Properties"]
    assert props["Scope"] == "CLOUDFRONT"
    assert props["DefaultAction"] == {"Allow": {}}
    managed = [
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for r in props["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    ]
    assert managed == list(MANAGED_RULE_GROUPS)
    assert sorted(r["Priority"] for r in props["Rules"]) == list(range(len(props["Rules"])))
    (rate,) = [r for r in props["Rules"] if "RateBasedStatement" in r["Statement"]]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "Limit": 1000,
        "EvaluationWindowSec": 300,
    }


def test_the_distribution_forwards_websocket_upgrades_uncached_to_the_api(edge_json: dict[str, Any]) -> None:
    (acl_id,) = resources_of(edge_json, "AWS::WAFv2::WebACL")
    api_id = api_logical_id(edge_json, "WEBSOCKET")
    (distribution,) = resources_of(edge_json, "AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    assert ref_id(config["WebACLId"]) == acl_id
    (origin,) = config["Origins"]
    domain = json.dumps(origin["DomainName"])
    assert api_id in domain and ".execute-api.us-east-1." in domain
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert behavior["CachePolicyId"] == CACHING_DISABLED
    assert behavior["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    url = json.dumps(edge_json["Outputs"]["CloudFrontUrl"]["Value"])
    assert "wss://" in url and "/dev" in url


def test_edge_outside_us_east_1_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ConfigError, match="us-east-1"):
        build_app({"edge": "true", "region": "eu-west-1"}, environ={})


def _acl_rules(edge_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (acl,) = resources_of(edge_json, "AWS::WAFv2::WebACL").values()
    return {rule["Name"]: rule for rule in acl["Properties"]["Rules"]}


def _counted(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    overrides = rule["Statement"]["ManagedRuleGroupStatement"].get("RuleActionOverrides", [])
    return {o["Name"]: o["ActionToUse"] for o in overrides}


def test_managed_rules_that_refuse_real_chat_clients_only_count(edge_json: dict[str, Any]) -> None:
    """No User-Agent (locust, websockets libraries), hosting-provider IPs (bots, load generators)
    and the managed 2 KB query-string limit (tokens naming many rooms) must not block."""
    rules = _acl_rules(edge_json)
    assert _counted(rules["AWSManagedRulesCommonRuleSet"]) == {
        "NoUserAgent_HEADER": {"Count": {}},
        "SizeRestrictions_QUERYSTRING": {"Count": {}},
    }
    assert _counted(rules["AWSManagedRulesAnonymousIpList"]) == {"HostingProviderIPList": {"Count": {}}}
    assert _counted(rules["AWSManagedRulesAmazonIpReputationList"]) == {}
    assert _counted(rules["AWSManagedRulesKnownBadInputsRuleSet"]) == {}
    for reasons in RULE_OVERRIDES.values():
        assert all(len(reason) >= 60 for reason in reasons.values())


def test_the_query_string_rule_admits_every_token_mint_token_signs(edge_json: dict[str, Any]) -> None:
    size = _acl_rules(edge_json)["QueryStringSize"]
    assert size["Action"] == {"Block": {}}
    constraint = size["Statement"]["SizeConstraintStatement"]
    assert constraint["FieldToMatch"] == {"QueryString": {}}
    assert (constraint["ComparisonOperator"], constraint["Size"]) == ("GT", QUERY_STRING_LIMIT)
    # 100 rooms of typical names: over the managed rule's 2,048 bytes, well within ours.
    many_rooms = mint_token("k" * 32, "alice", rooms=[f"project-room-{i:03d}" for i in range(100)])
    assert 2048 < len(f"token={many_rooms}") <= QUERY_STRING_LIMIT
    # The limit sits under CloudFront's own URL limit, with room for the longest stage path.
    assert len("token=") + MAX_TOKEN_LENGTH <= QUERY_STRING_LIMIT
    assert len("/") + 64 + len("?") + QUERY_STRING_LIMIT <= CLOUDFRONT_MAX_URL_BYTES
    with pytest.raises(TokenRefused, match="bytes"):
        mint_token("k" * 32, "alice", rooms=[f"{i:02d}".ljust(64, "r") for i in range(100)])


def test_cloudfront_sends_an_origin_secret_the_authorizer_requires(edge_json: dict[str, Any]) -> None:
    """Clients must not bypass CloudFront and WAF through the execute-api URL."""
    secrets = resources_of(edge_json, "AWS::SecretsManager::Secret")
    (origin_secret_id,) = [sid for sid in secrets if "OriginSecret" in sid]
    (distribution,) = resources_of(edge_json, "AWS::CloudFront::Distribution").values()
    (origin,) = distribution["Properties"]["DistributionConfig"]["Origins"]
    (header,) = origin["OriginCustomHeaders"]
    assert header["HeaderName"] == ORIGIN_HEADER
    # A dynamic reference to the generated secret, never its value.
    value = json.dumps(header["HeaderValue"])
    assert "{{resolve:secretsmanager:" in value and origin_secret_id in value
    authorizer = edge_json["Resources"][function_id(edge_json, "authorizer")]["Properties"]
    variables = authorizer["Environment"]["Variables"]
    assert ref_id(variables[ENV.ORIGIN_SECRET_ARN]) == origin_secret_id
    for name in ("ingress", "fanout", "janitor"):
        props = edge_json["Resources"][function_id(edge_json, name)]["Properties"]
        assert ENV.ORIGIN_SECRET_ARN not in props["Environment"]["Variables"]


def test_without_the_edge_the_authorizer_checks_no_origin_header(default_json: dict[str, Any]) -> None:
    authorizer = default_json["Resources"][function_id(default_json, "authorizer")]["Properties"]
    assert ENV.ORIGIN_SECRET_ARN not in authorizer["Environment"]["Variables"]
    assert not [sid for sid in resources_of(default_json, "AWS::SecretsManager::Secret") if "Origin" in sid]
