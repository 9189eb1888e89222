"""Context parsing: `-c key=value` strings and cdk.json values give the same typed config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config import (
    DEFAULT_REGION,
    NEW_ACCOUNT_CONCURRENCY,
    UNRESERVED_CONCURRENCY_MINIMUM,
    ConfigError,
    DeploymentConfig,
)


def config(cli_env: dict[str, str] | None = None, /, **context: Any) -> DeploymentConfig:
    return DeploymentConfig.from_context(context.get, cli_env or {})


def test_defaults_describe_a_dev_stage_in_us_east_1() -> None:
    c = config()
    assert (c.stage, c.region, c.account, c.retain_data) == ("dev", DEFAULT_REGION, None, False)
    assert (c.ingress_reserved_concurrency, c.fanout_reserved_concurrency) == (None, None)
    assert c.stack_name == "DynamoWave-dev"
    assert not c.edge and not c.warmer and c.replica_regions == ()


def test_region_and_account_come_from_the_cdk_cli_unless_given_as_context() -> None:
    env = {"CDK_DEFAULT_REGION": "eu-west-1", "CDK_DEFAULT_ACCOUNT": "111122223333"}
    assert (config(env).region, config(env).account) == ("eu-west-1", "111122223333")
    assert config(env, region="ap-south-1").region == "ap-south-1"


def test_prod_stage_retains_data_unless_told_otherwise() -> None:
    assert config(stage="prod").retain_data
    assert not config(stage="prod", retainData="false").retain_data
    assert config(stage="staging", retainData=True).retain_data


def test_cli_strings_and_json_values_parse_alike() -> None:
    from_cli = config(
        fanoutBatchSize="5", throttleRateLimit="250.5", warmer="true", replicaRegions="us-west-2, eu-west-1"
    )
    from_json = config(
        fanoutBatchSize=5, throttleRateLimit=250.5, warmer=True, replicaRegions=["us-west-2", "eu-west-1"]
    )
    assert from_cli == from_json
    assert from_cli.replica_regions == ("us-west-2", "eu-west-1")


def test_the_default_configuration_deploys_in_a_new_account() -> None:
    """Lambda keeps 100 executions unreserved, and a new account's limit is often 10: the default
    may reserve nothing at all, or CloudFormation rolls the first deploy back."""
    for c in (config(), DeploymentConfig(), config(edge="true"), config(stage="prod")):
        reserved = (c.ingress_reserved_concurrency or 0) + (c.fanout_reserved_concurrency or 0)
        assert reserved + UNRESERVED_CONCURRENCY_MINIMUM <= NEW_ACCOUNT_CONCURRENCY or reserved == 0
        assert c.required_account_concurrency == 0


def test_the_production_profile_reserves_capacity_explicitly() -> None:
    c = config(profile="production")
    assert (c.stage, c.retain_data, c.warmer) == ("prod", True, True)
    assert (c.ingress_reserved_concurrency, c.fanout_reserved_concurrency) == (100, 50)
    assert c.required_account_concurrency == 250
    # Each option given on its own still wins over the profile.
    assert config(profile="production", stage="live", fanoutReservedConcurrency="30").stage == "live"
    assert config(profile="production", fanoutReservedConcurrency="30").fanout_reserved_concurrency == 30
    small = config(profile="production", reservedConcurrency="false")
    assert (small.ingress_reserved_concurrency, small.fanout_reserved_concurrency) == (None, None)
    with pytest.raises(ConfigError, match="profile"):
        config(profile="prodution")


def test_reserved_concurrency_can_be_switched_off_for_small_accounts() -> None:
    c = config(reservedConcurrency="false", ingressReservedConcurrency="20")
    assert (c.ingress_reserved_concurrency, c.fanout_reserved_concurrency) == (None, None)
    assert (
        config(ingressReservedConcurrency="20", fanoutReservedConcurrency="30").fanout_reserved_concurrency
        == 30
    )


@pytest.mark.parametrize(
    "context",
    [
        {"ingressReservedConcurrency": "0"},  # Lambda would never run the function
        {"fanoutReservedConcurrency": "10", "fanoutMaxConcurrency": "20"},  # more pollers than reserved
        {"fanoutMaxConcurrency": "1"},
        {"fanoutBatchSize": "20"},  # > 10 needs a batching window
        {"logRetentionDays": "31"},
        {"stage": "has space"},
        {"region": "mars-1"},
        # Other partitions: the Powertools layer is published there by other accounts.
        {"region": "cn-north-1"},
        {"region": "us-gov-west-1"},
        {"replicaRegions": "cn-northwest-1"},
        {"warmer": "maybe"},
        {"alarmEmail": "not-an-address"},
        {"replicaRegions": "us-east-1"},  # the stack's own region
        {
            "replicaRegions": "us-west-2",
            "replicaKeyArns": json.dumps({"eu-west-1": "arn:aws:kms:eu-west-1:123456789012:key/x"}),
        },
        {
            "replicaRegions": "us-west-2",
            "replicaKeyArns": json.dumps({"us-west-2": "arn:aws:kms:eu-west-1:123456789012:key/x"}),
        },
        {"functionSettings": json.dumps({"CONNECTIONS_TABLE": "other"})},  # stack-owned
        {"functionSettings": json.dumps({"NOT_A_SETTING": "1"})},
        {"functionSettings": "[1, 2]"},
        # The review function's ARN comes from reviewFunctionArn, with its grant, never bare.
        {
            "functionSettings": json.dumps(
                {"REVIEW_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:r"}
            )
        },
        {"reviewFunctionArn": "my-reviewer"},
        {"reviewFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:r*"},  # no wildcards
        {"reviewFunctionArn": "arn:aws:sqs:us-east-1:123456789012:function:r"},
        {"operatorThrottleRateLimit": "0"},
        {"operatorThrottleBurstLimit": "0"},
    ],
)
def test_values_that_cannot_deploy_are_refused_at_synth(context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        config(**context)


def test_review_function_arn_and_operator_throttles_parse() -> None:
    assert config().review_function_arn is None
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:dynamowave-review:live"
    c = config(reviewFunctionArn=arn, operatorThrottleRateLimit="5", operatorThrottleBurstLimit=10)
    assert (c.review_function_arn, c.operator_throttle_rate_limit, c.operator_throttle_burst_limit) == (
        arn,
        5.0,
        10,
    )


def test_function_settings_accept_tunable_variables() -> None:
    c = config(functionSettings=json.dumps({"SHARD_SIZE": 100, "MAX_TEXT_LENGTH": "2000"}))
    assert c.function_settings == {"SHARD_SIZE": "100", "MAX_TEXT_LENGTH": "2000"}


def test_replicas_use_customer_keys_only_with_a_key_per_replica() -> None:
    arn = "arn:aws:kms:us-west-2:123456789012:key/mrk-1"
    assert config(replicaRegions="us-west-2", replicaKeyArns={"us-west-2": arn}).replicas_use_customer_key
    assert not config(replicaRegions="us-west-2").replicas_use_customer_key
    assert config().replicas_use_customer_key


def test_the_powertools_layer_is_pinned_unless_latest_is_asked_for() -> None:
    assert config().powertools_layer_version == 38
    assert config(powertoolsLayerVersion="41").powertools_layer_version == 41
    assert config(powertoolsLayerVersion="latest").powertools_layer_version is None


def test_allowed_origins_reach_the_functions_as_one_setting() -> None:
    from functions.chat.settings import ENV, Settings

    c = config(allowedOrigins="https://chat.example.com, http://localhost:5173")
    assert c.allowed_origins == ("https://chat.example.com", "http://localhost:5173")
    assert config(allowedOrigins=["https://chat.example.com"]).allowed_origins == (
        "https://chat.example.com",
    )
    env = c.function_environment
    assert Settings.from_env(env).allowed_origins == c.allowed_origins
    assert ENV.ALLOWED_ORIGINS not in config().function_environment  # unset: any origin


@pytest.mark.parametrize(
    "origin",
    ["chat.example.com", "https://chat.example.com/app", "https://a.example\nhttps://b.example", "*"],
)
def test_allowed_origins_must_be_origins(origin: str) -> None:
    with pytest.raises(ConfigError, match="allowedOrigins"):
        config(allowedOrigins=[origin])
