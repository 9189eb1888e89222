"""Edge: CloudFront passes WebSockets through to the API, guarded by a CLOUDFRONT web ACL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.application import build_app
from stacks.config import ConfigError
from stacks.edge import MANAGED_RULE_GROUPS
from tests.infra.infra_helpers import ref_id, resources_of

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
    (rate,) = [r for r in props["Rules"] if "RateBasedStatement" in r["Statement"]]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "Limit": 1000,
        "EvaluationWindowSec": 300,
    }


def test_the_distribution_forwards_websocket_upgrades_uncached_to_the_api(edge_json: dict[str, Any]) -> None:
    (acl_id,) = resources_of(edge_json, "AWS::WAFv2::WebACL")
    (api_id,) = resources_of(edge_json, "AWS::ApiGatewayV2::Api")
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
