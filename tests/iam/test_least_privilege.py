"""IAM least privilege, read from the synthesized CloudFormation: each function reaches only what
its code uses, and can reach everything its code uses.

USES below is derived from the code, call by call (functions/chat/adapters/dynamodb/, queue.py, management_client.py,
secrets.py and the handlers): a grant outside it is an over-grant; a use without a grant is an
AccessDenied waiting for production. Rules for every function role besides: no wildcard action,
no NotAction / NotResource, `Resource: "*"` only where AWS has no resource-level permissions
(X-Ray), no managed policies, trusted by Lambda only; every resource is one of this stack's
tables, queues, keys, secret, log groups, or this API's @connections path for this stage.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

from functions.chat.schema import CONNECTIONS, MESSAGES, ROOMS

Grants = dict[str, set[str]]  # target -> actions

DATA_KEY = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"}
ALWAYS: Grants = {
    "logs": {"logs:CreateLogStream", "logs:PutLogEvents"},
    "*": {"xray:PutTraceSegments", "xray:PutTelemetryRecords"},  # X-Ray has no resource-level permissions
}
GET, PUT, UPDATE, DELETE = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
QUERY, SCAN, BATCH_GET = "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"
# TransactWriteItems is authorized per item as PutItem / UpdateItem / DeleteItem / ConditionCheckItem.
USES: dict[str, Grants] = {
    "authorizer": {
        "secret": {"secretsmanager:GetSecretValue"},  # secrets.jwt_secret
        "secret-key": {"kms:Decrypt"},
    },
    "ingress": {
        # put_connection, get/touch_connection, join's transaction, $disconnect's delete
        "connections": {GET, PUT, UPDATE, DELETE},
        # counters, shards, presence, claims (get/put/update), leave (delete), list_shards/online_users,
        # memberships/user_connections (query), room_states (batch get)
        "rooms": {GET, PUT, UPDATE, DELETE, QUERY, BATCH_GET},
        # store_message, claim lookup, history/since, room_states; changes: get, rewrite, recovery
        "messages": {GET, PUT, UPDATE, QUERY, BATCH_GET},
        "queue": {"sqs:SendMessage"},  # SendMessageBatch (the ack is a route response, not a post)
        "data-key": DATA_KEY,
    },
    "fanout": {
        "connections": {GET, DELETE},  # prune: get_connection, delete_connection_item
        "rooms": {QUERY, UPDATE, DELETE},  # shard_members, list_shards; prune's leave transaction
        "queue": {
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",  # the lease (extend_visibility)
        },
        "dlq": {"sqs:SendMessage"},  # dead_letter
        "@connections/POST": {"execute-api:ManageConnections"},
        "data-key": DATA_KEY,
    },
    "janitor": {
        "connections": {SCAN, GET, DELETE},  # scan_stale_connections, prune
        "rooms": {GET, PUT, QUERY, UPDATE, DELETE},  # cursor get/put, list_shards, prune's leave
        "queue": {"sqs:SendMessage"},  # presence `leave` jobs
        "@connections/GET": {"execute-api:ManageConnections"},
        "@connections/DELETE": {"execute-api:ManageConnections"},
        "data-key": DATA_KEY,
    },
    "operator": {
        # end_membership (kick, ban, remove): get_connection, the leave transaction's unsubscribe
        "connections": {GET, UPDATE},
        # counters, claims, bans, memberships, presence, user connections, the leave transaction,
        # `rooms` (batch get of META items)
        "rooms": {GET, PUT, UPDATE, DELETE, QUERY, BATCH_GET},
        # publish (store_message), the lifecycle delete (get, rewrite), history, `rooms`' latest
        "messages": {GET, PUT, UPDATE, QUERY, BATCH_GET},
        "queue": {"sqs:SendMessage"},  # fan-out and user-addressed jobs
        "@connections/DELETE": {"execute-api:ManageConnections"},  # disconnect a user
        "data-key": DATA_KEY,
    },
    "redriver": {
        "queue": {"sqs:SendMessage"},  # enqueue (the redrive)
        "dlq": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},  # its event source
        "parked": {"sqs:SendMessage"},  # park
        "data-key": DATA_KEY,
    },
}
CONFIGURATIONS = ("default", "prod")
# Uses a configuration adds: prod names a message review function (reviewFunctionArn), which
# the ingress invokes synchronously; without one, nobody may invoke any function.
CONFIGURED_USES: dict[str, dict[str, Grants]] = {
    "prod": {"ingress": {"review": {"lambda:InvokeFunction"}}},
}


@pytest.fixture(scope="module", params=CONFIGURATIONS)
def configuration(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def template(configuration: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from stacks.synth_all import CONFIGURATIONS as ALL
    from stacks.synth_all import synthesize

    saved = dict(os.environ)
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "CDK_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("CDK_DEFAULT_ACCOUNT", None)
    try:
        result = synthesize(
            configuration,
            ALL[configuration],
            Path(tmp_path_factory.mktemp("iam")) / configuration,
            lint=False,
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    (only,) = result.templates.values()
    yield only


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _logical_id(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    return None


def queue_role(resources: dict[str, Any], logical: str) -> str:
    """The fan-out queue redrives to the DLQ, which redrives to the parked queue (which has none)."""
    redrive = resources[logical]["Properties"].get("RedrivePolicy")
    if redrive is None:
        return "parked"
    target = _logical_id(redrive["deadLetterTargetArn"])
    return "queue" if "RedrivePolicy" in resources[str(target)]["Properties"] else "dlq"


def _targets(template: dict[str, Any]) -> dict[str, str]:
    """logical id -> target name (connections, rooms, messages, queue, dlq, data-key, ...)."""
    resources = template["Resources"]
    names: dict[str, str] = {}
    by_key = {
        CONNECTIONS.partition_key.name: "connections",
        ROOMS.partition_key.name: "rooms",
        MESSAGES.partition_key.name: "messages",
    }
    for logical, resource in resources.items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind in ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table"):
            names[logical] = by_key[props["KeySchema"][0]["AttributeName"]]
        elif kind == "AWS::SQS::Queue":
            names[logical] = queue_role(resources, logical)
        elif kind == "AWS::SecretsManager::Secret":
            names[logical] = "secret"
        elif kind == "AWS::Logs::LogGroup":
            names[logical] = "logs"
    for logical, resource in resources.items():
        if resource["Type"] == "AWS::KMS::Key":
            encrypts_secret = any(
                r["Type"] == "AWS::SecretsManager::Secret"
                and _logical_id(r["Properties"].get("KmsKeyId")) == logical
                for r in resources.values()
            )
            names[logical] = "secret-key" if encrypts_secret else "other-key"
            for table_like in resources.values():
                text = str(table_like.get("Properties", {}))
                if logical in text and table_like["Type"] in (
                    "AWS::DynamoDB::GlobalTable",
                    "AWS::SQS::Queue",
                ):
                    names[logical] = "data-key"
    return names


def _websocket_api(template: dict[str, Any]) -> str:
    (api_id,) = [
        str(k)
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::ApiGatewayV2::Api" and v["Properties"]["ProtocolType"] == "WEBSOCKET"
    ]
    return api_id


def _api_path(resource: Any, template: dict[str, Any], stage: str) -> str:
    """An execute-api ARN must be this account's, the WebSocket API's and this stage's
    @connections path."""
    parts = resource["Fn::Join"][1]
    api_id = _websocket_api(template)
    assert {"Ref": "AWS::AccountId"} in parts and {"Ref": api_id} in parts, parts
    path = str(parts[-1])
    method = path.split("/")[2]
    assert path == f"/{stage}/{method}/@connections/*", path
    return f"@connections/{method}"


def function_roles(template: dict[str, Any]) -> dict[str, str]:
    """function name (authorizer, ingress, ...) -> role logical id."""
    roles = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function" and str(
            resource["Properties"].get("Handler", "")
        ).startswith("functions."):
            name = resource["Properties"]["Handler"].split(".")[1]
            roles[name] = str(_logical_id(resource["Properties"]["Role"]))
    return roles


def grants_of(template: dict[str, Any], role_id: str, review_arn: str | None = None) -> Grants:
    """What the role may do, per target; `review_arn` is the configured review function's ARN
    (a literal from context, the only resource outside this stack a role may name)."""
    resources, names = template["Resources"], _targets(template)
    (stage,) = [
        r["Properties"]["StageName"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGatewayV2::Stage"
        and r["Properties"]["ApiId"] == {"Ref": _websocket_api(template)}
    ]
    statements = [
        s
        for p in resources[role_id]["Properties"].get("Policies", [])
        for s in p["PolicyDocument"]["Statement"]
    ]
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and role_id in [
            _logical_id(r) for r in resource["Properties"].get("Roles", [])
        ]:
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    grants: Grants = {}
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        actions = set(_as_list(statement["Action"]))
        assert not [a for a in actions if "*" in a], f"wildcard action in {statement}"
        for resource in _as_list(statement["Resource"]):
            if resource == "*":
                target = "*"
            elif isinstance(resource, dict) and "Fn::Join" in resource:
                target = _api_path(resource, template, stage)
            elif resource == review_arn:
                target = "review"
            else:
                logical = _logical_id(resource)
                assert logical in names, (
                    f"{statement}: resource outside this stack's tables/queues/keys/secret"
                )
                target = names[logical]
            grants.setdefault(target, set()).update(actions)
    return grants


@pytest.mark.parametrize("function", sorted(USES))
def test_each_function_reaches_only_what_it_uses(
    template: dict[str, Any], configuration: str, function: str
) -> None:
    from stacks.synth_all import CONFIGURATIONS as ALL

    role_id = function_roles(template)[function]
    granted = grants_of(template, role_id, ALL[configuration].get("reviewFunctionArn"))
    uses: Grants = {k: set(v) for k, v in USES[function].items()}
    for target, actions in CONFIGURED_USES.get(configuration, {}).get(function, {}).items():
        uses.setdefault(target, set()).update(actions)
    allowed: Grants = {k: set(v) for k, v in ALWAYS.items()}
    for target, actions in uses.items():
        allowed.setdefault(target, set()).update(actions)
    excess = {t: sorted(a - allowed.get(t, set())) for t, a in granted.items() if a - allowed.get(t, set())}
    missing = {t: sorted(a - granted.get(t, set())) for t, a in uses.items() if a - granted.get(t, set())}
    assert not missing, f"{function} uses but is not granted (AccessDenied on AWS): {missing}"
    assert not excess, f"{function} is granted more than its code uses: {excess}"


def test_function_roles_are_plain(template: dict[str, Any]) -> None:
    for function, role_id in function_roles(template).items():
        role = template["Resources"][role_id]["Properties"]
        assert "ManagedPolicyArns" not in role, f"{function}: a managed policy grants unknown extras"
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert (
            trust["Principal"] == {"Service": "lambda.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
        )
    assert set(function_roles(template)) == set(USES)


def test_only_our_api_and_schedules_may_invoke_the_functions(template: dict[str, Any]) -> None:
    permissions = [
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Permission"
    ]
    assert permissions
    for permission in permissions:
        assert permission["Principal"] in ("apigateway.amazonaws.com", "events.amazonaws.com"), permission
        assert "SourceArn" in permission, f"invocable by any {permission['Principal']} resource: {permission}"
