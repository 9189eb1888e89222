"""Functions: runtime, architecture, tracing, logging, concurrency and configuration."""

from __future__ import annotations

from typing import Any

import pytest

from dynamowave.local.config import default_functions
from functions.chat.schema import FUNCTIONS
from functions.chat.settings import ENV
from tests.infra.infra_helpers import api_logical_id, function_id, ref_id, resources_of

NAMES = [spec.name for spec in FUNCTIONS]


def _props(template: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][function_id(template, name)]["Properties"]
    return props


@pytest.mark.parametrize("name", NAMES)
def test_every_function_runs_python_3_14_on_arm64_with_xray_and_powertools(
    default_json: dict[str, Any], name: str
) -> None:
    props = _props(default_json, name)
    assert props["Runtime"] == "python3.14"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    (layer,) = props["Layers"]
    # A literal: the region is known and cdk.json sets @aws-cdk/core:enablePartitionLiterals.
    assert (
        layer == "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:38"
    )
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "DynamoWave"
    assert env["DYNAMOWAVE_STAGE"] == "dev"  # the stage dimension of its metrics
    assert env["POWERTOOLS_SERVICE_NAME"] == "dynamowave"


@pytest.mark.parametrize(
    ("name", "timeout", "memory"),
    [
        ("authorizer", 5, 256),
        ("ingress", 10, 512),
        ("fanout", 15, 1024),
        ("janitor", 300, 512),
        ("redriver", 30, 256),
        ("operator", 10, 512),
    ],
)
def test_timeouts_and_memory(default_json: dict[str, Any], name: str, timeout: int, memory: int) -> None:
    props = _props(default_json, name)
    assert (props["Timeout"], props["MemorySize"]) == (timeout, memory)


@pytest.mark.parametrize("name", NAMES)
def test_the_local_runtime_runs_each_function_with_the_stacks_timeout_memory_and_handler(
    default_json: dict[str, Any], name: str
) -> None:
    # Locally a slow ingress call must fail where Lambda's own timeout ends it, not at API
    # Gateway's 29 s integration timeout.
    local = default_functions()[name]
    props = _props(default_json, name)
    assert (local.timeout_seconds, local.memory_mb, local.handler) == (
        props["Timeout"],
        props["MemorySize"],
        props["Handler"],
    )


def test_the_local_runtime_has_exactly_the_stacks_functions(default_json: dict[str, Any]) -> None:
    deployed = {
        props["Properties"]["Handler"]
        for props in resources_of(default_json, "AWS::Lambda::Function").values()
        if props["Properties"].get("Handler", "").startswith("functions.")
    }
    assert {config.handler for config in default_functions().values()} == deployed


@pytest.mark.parametrize("name", NAMES)
def test_each_function_logs_to_its_own_log_group_with_retention(
    default_json: dict[str, Any], name: str
) -> None:
    log_group_id = ref_id(_props(default_json, name)["LoggingConfig"]["LogGroup"])
    log_group = default_json["Resources"][log_group_id]
    assert log_group["Properties"]["RetentionInDays"] == 30
    assert log_group["DeletionPolicy"] == "Delete"


def test_prod_keeps_function_logs(prod_json: dict[str, Any]) -> None:
    for name in NAMES:
        log_group_id = ref_id(_props(prod_json, name)["LoggingConfig"]["LogGroup"])
        assert prod_json["Resources"][log_group_id]["DeletionPolicy"] == "Retain"


def test_production_reserves_concurrency_for_ingress_and_fanout(prod_json: dict[str, Any]) -> None:
    assert _props(prod_json, "ingress")["ReservedConcurrentExecutions"] == 100
    assert _props(prod_json, "fanout")["ReservedConcurrentExecutions"] == 50
    assert "ReservedConcurrentExecutions" not in _props(prod_json, "authorizer")
    assert "ReservedConcurrentExecutions" not in _props(prod_json, "janitor")


def test_the_default_template_reserves_nothing_so_a_new_account_can_deploy_it(
    default_json: dict[str, Any], edge_json: dict[str, Any]
) -> None:
    for template in (default_json, edge_json):
        for function in resources_of(template, "AWS::Lambda::Function").values():
            assert "ReservedConcurrentExecutions" not in function["Properties"]


def test_handler_strings_follow_the_contract(default_json: dict[str, Any]) -> None:
    handlers = {
        p["Properties"]["Handler"] for p in resources_of(default_json, "AWS::Lambda::Function").values()
    }
    assert handlers == {f"functions.{name}.handler.handler" for name in NAMES}


def test_functions_get_the_resource_variables_they_read(default_json: dict[str, Any]) -> None:
    env = {name: _props(default_json, name)["Environment"]["Variables"] for name in NAMES}
    assert ENV.JWT_SECRET_ARN in env["authorizer"]
    assert all(ENV.JWT_SECRET_ARN not in env[name] for name in NAMES if name != "authorizer")
    assert all(ENV.JWT_SECRET not in env[name] for name in NAMES), "the secret itself never goes in env"
    assert ENV.MESSAGES_TABLE in env["ingress"] and ENV.MESSAGES_TABLE in env["operator"]
    assert ENV.FANOUT_DLQ_URL in env["fanout"]
    assert {ENV.FANOUT_QUEUE_URL, ENV.FANOUT_PARKED_URL} <= set(env["redriver"])
    for name in ("ingress", "fanout", "janitor", "operator"):
        assert {ENV.CONNECTIONS_TABLE, ENV.ROOMS_TABLE, ENV.FANOUT_QUEUE_URL} <= set(env[name])
        endpoint = env[name][ENV.MANAGEMENT_API_ENDPOINT]["Fn::Join"][1]
        assert endpoint[0] == "https://"
        assert endpoint[2] == ".execute-api.us-east-1."
        assert endpoint[3] == {"Ref": "AWS::URLSuffix"}
        assert endpoint[4] == "/dev"
        assert api_logical_id(default_json, "WEBSOCKET") == ref_id(endpoint[1])


def test_janitor_is_not_retried_into_its_next_run(default_json: dict[str, Any]) -> None:
    (config,) = resources_of(default_json, "AWS::Lambda::EventInvokeConfig").values()
    assert ref_id(config["Properties"]["FunctionName"]) == function_id(default_json, "janitor")
    assert config["Properties"]["MaximumRetryAttempts"] == 0


def test_the_jwt_secret_is_generated_at_deploy_and_encrypted_with_its_own_key(
    default_json: dict[str, Any],
) -> None:
    (secret,) = resources_of(default_json, "AWS::SecretsManager::Secret").values()
    props = secret["Properties"]
    assert props["GenerateSecretString"]["PasswordLength"] >= 32
    assert "SecretString" not in props
    key = default_json["Resources"][ref_id(props["KmsKeyId"])]
    assert key["Properties"]["EnableKeyRotation"] is True


def test_latest_powertools_layer_resolves_from_the_public_ssm_parameter() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    from stacks.config import DeploymentConfig
    from stacks.functions import powertools_layer_arn

    stack = cdk.Stack(cdk.App(), "LayerOnly", env=cdk.Environment(region="us-east-1"))
    arn = powertools_layer_arn(
        stack, DeploymentConfig(powertools_layer_version=None).powertools_layer_version
    )
    lambda_.LayerVersion.from_layer_version_arn(stack, "Layer", arn)
    parameters = cdk.assertions.Template.from_stack(stack).to_json().get("Parameters", {})
    assert [p["Default"] for p in parameters.values() if "powertools" in p["Default"]] == [
        "/aws/service/powertools/python/arm64/python3.14/latest"
    ]


def test_each_function_has_exactly_the_environment_the_local_runtime_gives_it(
    default_json: dict[str, Any],
) -> None:
    """One definition (functions.chat.settings.FUNCTION_RESOURCES) builds both: the functions'
    own variables (ENV names) in the template and in `dynamowave serve` are the same set per
    function, but for the documented local differences (the gateway's limits, the redrive values)."""
    from dynamowave.local.config import RuntimeConfig
    from dynamowave.local.provisioning import Resources
    from dynamowave.local.runtime import LocalRuntime

    runtime = LocalRuntime(RuntimeConfig())
    runtime.resources = Resources(
        {"connections": "c", "rooms": "r", "messages": "m"},
        "queue-url",
        "queue-arn",
        "dlq-url",
        "dlq-arn",
        "parked-url",
        "parked-arn",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:dynamowave-jwt",
    )
    runtime.port, runtime.secret = 8765, "local-secret"
    local = runtime.function_environments()
    own = set(vars(ENV).values())
    for name in NAMES:
        deployed = set(_props(default_json, name)["Environment"]["Variables"]) & own
        mine = set(local[name]) & own
        # Locally every function gets the gateway's idle/maximum limits from --idle-timeout and
        # --max-duration (on AWS the settings' defaults are those limits).
        mine -= {ENV.IDLE_TIMEOUT_SECONDS, ENV.MAX_CONNECTION_SECONDS}
        # The stack writes its redrive context values; locally the redriver reads the settings'
        # defaults (the same numbers) unless `--env` gives them.
        deployed -= {ENV.REDRIVE_BASE_DELAY_SECONDS, ENV.REDRIVE_MAX_AGE_SECONDS}
        assert mine == deployed, name
