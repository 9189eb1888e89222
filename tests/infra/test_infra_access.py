"""Least privilege: each function's role holds exactly the statements its code needs."""

from __future__ import annotations

from typing import Any

import pytest

from functions.chat.schema import CONNECTIONS, MESSAGES, ROOMS
from functions.chat.settings import ENV
from stacks.synth_all import CONFIGURATIONS
from tests.infra.infra_helpers import api_logical_id, function_id, ref_id, resources_of

FUNCTIONS = ("authorizer", "ingress", "fanout", "janitor", "redriver", "operator")
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
DATA_KEY = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every statement of every policy (inline or attached) of the function's role."""
    role_id = ref_id(template["Resources"][function_id(template, name)]["Properties"]["Role"])
    role = template["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role, "no AWS-managed policies on function roles"
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        if role_id in [ref_id(r) for r in policy["Properties"].get("Roles", [])]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    assert all(s["Effect"] == "Allow" for s in statements)
    return statements


def _logical_ids(template: dict[str, Any]) -> dict[str, str]:
    """Logical ids of the resources statements may name, by role in the system."""
    tables = resources_of(template, "AWS::DynamoDB::GlobalTable")
    by_keys = {table["Properties"]["KeySchema"][0]["AttributeName"]: tid for tid, table in tables.items()}
    queues = resources_of(template, "AWS::SQS::Queue")
    parked = next(qid for qid, q in queues.items() if "RedrivePolicy" not in q["Properties"])
    dlq = next(
        qid
        for qid, q in queues.items()
        if "RedrivePolicy" in q["Properties"]
        and ref_id(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) == parked
    )
    return {
        CONNECTIONS.logical_name: by_keys[CONNECTIONS.partition_key.name],
        ROOMS.logical_name: by_keys[ROOMS.partition_key.name],
        MESSAGES.logical_name: by_keys[MESSAGES.partition_key.name],
        "queue": next(qid for qid in queues if qid not in (parked, dlq)),
        "dlq": dlq,
        "parked": parked,
    }


def _grants(template: dict[str, Any], statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """target -> actions, where target is a logical id, an @connections path, or '*'."""
    api_id = api_logical_id(template, "WEBSOCKET")
    grants: dict[str, set[str]] = {}
    for statement in statements:
        for resource in _as_list(statement["Resource"]):
            if resource == "*":
                target = "*"
            elif "Fn::Join" in resource:
                parts = resource["Fn::Join"][1]
                target = parts[-1]  # e.g. "/dev/POST/@connections/*"
                # Scoped to this account, this API and (in the path) this stage and method.
                assert {"Ref": "AWS::AccountId"} in parts
                assert {"Ref": api_id} in parts
            elif isinstance(resource, str):
                target = resource  # a literal ARN from context (reviewFunctionArn)
            else:
                target = ref_id(resource)
            grants.setdefault(target, set()).update(_as_list(statement["Action"]))
    return grants


def test_no_statement_uses_a_wildcard_action(default_json: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        for statement in _statements(default_json, name):
            for action in _as_list(statement["Action"]):
                assert "*" not in action, f"{name}: {action}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_only_xray_has_a_wildcard_resource(default_json: dict[str, Any], name: str) -> None:
    grants = _grants(default_json, _statements(default_json, name))
    assert grants["*"] == XRAY


def test_authorizer_reads_only_the_jwt_secret(default_json: dict[str, Any]) -> None:
    grants = _grants(default_json, _statements(default_json, "authorizer"))
    (secret_id,) = resources_of(default_json, "AWS::SecretsManager::Secret")
    secret_key = ref_id(default_json["Resources"][secret_id]["Properties"]["KmsKeyId"])
    log_group = ref_id(_logging(default_json, "authorizer"))
    assert grants == {
        "*": XRAY,
        secret_id: {"secretsmanager:GetSecretValue"},
        secret_key: {"kms:Decrypt"},
        log_group: {"logs:CreateLogStream", "logs:PutLogEvents"},
    }


def _logging(template: dict[str, Any], name: str) -> Any:
    return template["Resources"][function_id(template, name)]["Properties"]["LoggingConfig"]["LogGroup"]


def _data_key(template: dict[str, Any]) -> str:
    queue = next(q for q in resources_of(template, "AWS::SQS::Queue").values())
    return ref_id(queue["Properties"]["KmsMasterKeyId"])


ITEM = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
ROOMS_ACTIONS = ITEM | {"dynamodb:Query"}
MESSAGE_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
}
EXPECTED: dict[str, dict[str, set[str]]] = {
    "ingress": {
        CONNECTIONS.logical_name: ITEM,
        ROOMS.logical_name: ROOMS_ACTIONS | {"dynamodb:BatchGetItem"},  # `rooms` reads META items
        MESSAGES.logical_name: MESSAGE_ACTIONS,
        "queue": {"sqs:SendMessage"},  # no @connections: the ack is a route response
    },
    "fanout": {
        CONNECTIONS.logical_name: {"dynamodb:GetItem", "dynamodb:DeleteItem"},
        ROOMS.logical_name: {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
        "queue": {
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        },
        "dlq": {"sqs:SendMessage"},
        "/dev/POST/@connections/*": {"execute-api:ManageConnections"},
    },
    "janitor": {
        CONNECTIONS.logical_name: {
            "dynamodb:Scan",
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
        },
        ROOMS.logical_name: ROOMS_ACTIONS,
        "queue": {"sqs:SendMessage"},
        "/dev/GET/@connections/*": {"execute-api:ManageConnections"},
        "/dev/DELETE/@connections/*": {"execute-api:ManageConnections"},
    },
    "redriver": {
        "queue": {"sqs:SendMessage"},
        "dlq": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
        "parked": {"sqs:SendMessage"},
    },
    "operator": {
        CONNECTIONS.logical_name: {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        ROOMS.logical_name: ROOMS_ACTIONS | {"dynamodb:BatchGetItem"},
        MESSAGES.logical_name: MESSAGE_ACTIONS,
        "queue": {"sqs:SendMessage"},
        # disconnect: DeleteConnection, on the WebSocket API's stage (the operator API has no
        # @connections of its own)
        "/dev/DELETE/@connections/*": {"execute-api:ManageConnections"},
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_data_plane_functions_get_exactly_their_tables_queues_and_connection_methods(
    default_json: dict[str, Any], name: str
) -> None:
    ids = _logical_ids(default_json)
    expected = {ids.get(target, target): actions for target, actions in EXPECTED[name].items()}
    expected["*"] = XRAY
    expected[ref_id(_logging(default_json, name))] = {"logs:CreateLogStream", "logs:PutLogEvents"}
    expected[_data_key(default_json)] = DATA_KEY
    assert _grants(default_json, _statements(default_json, name)) == expected


def test_data_key_use_is_limited_to_dynamodb_and_sqs(default_json: dict[str, Any]) -> None:
    key = _data_key(default_json)
    for name in EXPECTED:
        (statement,) = [
            s for s in _statements(default_json, name) if s["Resource"] == {"Fn::GetAtt": [key, "Arn"]}
        ]
        assert statement["Condition"] == {
            "StringEquals": {
                "kms:ViaService": ["dynamodb.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com"]
            }
        }


def _invokes(template: dict[str, Any]) -> dict[str, list[Any]]:
    """function name -> the resources its role may lambda:InvokeFunction."""
    return {
        name: [
            resource
            for statement in _statements(template, name)
            if "lambda:InvokeFunction" in _as_list(statement["Action"])
            for resource in _as_list(statement["Resource"])
        ]
        for name in FUNCTIONS
    }


def test_without_review_function_arn_nobody_may_invoke_a_function(default_json: dict[str, Any]) -> None:
    assert _invokes(default_json) == {name: [] for name in FUNCTIONS}
    ingress = default_json["Resources"][function_id(default_json, "ingress")]["Properties"]
    assert ENV.REVIEW_FUNCTION_ARN not in ingress["Environment"]["Variables"]


def test_review_function_arn_reaches_the_ingress_with_a_grant_on_that_arn_only(
    prod_json: dict[str, Any],
) -> None:
    arn = CONFIGURATIONS["prod"]["reviewFunctionArn"]
    assert _invokes(prod_json) == {name: [arn] if name == "ingress" else [] for name in FUNCTIONS}
    (statement,) = [
        s for s in _statements(prod_json, "ingress") if "lambda:InvokeFunction" in _as_list(s["Action"])
    ]
    assert statement["Action"] == "lambda:InvokeFunction" and "Condition" not in statement
    for name in FUNCTIONS:
        variables = prod_json["Resources"][function_id(prod_json, name)]["Properties"]["Environment"][
            "Variables"
        ]
        assert variables.get(ENV.REVIEW_FUNCTION_ARN) == (arn if name == "ingress" else None), name
