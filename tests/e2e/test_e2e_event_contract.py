"""Contract: every event the runtime gives a function is the event AWS gives it.

Each event the runtime produces ($connect to the authorizer and to the integration, each route,
$default, $disconnect after a client close and after a binary frame, the SQS records of the
fan-out mapping, the janitor's scheduled event, the operator API's HTTP API call) is parsed with aws-lambda-powertools' parser
models and data classes, and compared field by field (names and types, values aside) with
AWS's sample event of that kind. The samples in tests/contract/events/ are copied unchanged
from aws-powertools/powertools-lambda-python, tests/events/ (tests/contract/events/SOURCES.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import websockets
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2, EventBridgeEvent, SQSEvent
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from aws_lambda_powertools.utilities.data_classes.api_gateway_websocket_event import APIGatewayWebSocketEvent
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
    EventBridgeModel,
    SqsModel,
)
from botocore.credentials import Credentials
from websockets.exceptions import ConnectionClosed

from dynamowave.admin import AdminClient
from dynamowave.testing.waits import wait_until
from tests.e2e.conftest import STUBS, Server, start_server

SAMPLES = Path(__file__).resolve().parents[1] / "contract" / "events"
# Maps whose keys are the caller's (headers, query strings, context values): compared as maps.
FREE_FORM = frozenset(
    {
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "pathParameters",
        "multiValueQueryStringParameters",
        "stageVariables",
        "authorizer",
        "messageAttributes",
        "detail",
    }
)


def sample(name: str) -> dict[str, Any]:
    return cast("dict[str, Any]", json.loads((SAMPLES / name).read_text(encoding="utf-8")))


def shape(value: Any, path: str = "") -> Any:
    """Field names and JSON types, recursively; free-form maps and lists by their kind only."""
    if isinstance(value, dict):
        if path.rsplit(".", 1)[-1] in FREE_FORM:
            return "map"
        return {key: shape(item, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else "string"


def assert_same_shape(ours: Any, theirs: Any, *, extra: frozenset[str] = frozenset()) -> None:
    """`ours` has exactly the sample's fields, of the same types, but for the `extra` paths (fields
    the sample's API did not have configured, each named at its call with its reason)."""

    def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(tree, dict):
            return {prefix: tree}
        flat: dict[str, Any] = {}
        for key, item in tree.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return flat

    mine, aws = flatten(shape(ours)), flatten(shape(theirs))
    assert {k: v for k, v in mine.items() if k not in extra} == aws


def record(server: Server, function: str, predicate: Any) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((e["event"] for e in server.events(function) if predicate(e["event"])), None)

    return wait_until(find, 20)


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("contract"),
        *STUBS,
        "--handler",
        "operator=stub_functions.operator",
        "--janitor-interval",
        "1",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def websocket_events(contract_server: Server) -> dict[str, dict[str, Any]]:
    """One connection without a User-Agent (as AWS's samples have none): a route, $default, a
    client close; a second closed by a binary frame."""

    async def scenario() -> tuple[str, str]:
        async with websockets.connect(contract_server.url("allow-amy"), user_agent_header=None) as ws:
            for frame in ({"action": "ping", "op": "echo"}, {"op": "echo"}):
                await ws.send(json.dumps(frame))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            first = str(reply["event"]["requestContext"]["connectionId"])
        async with websockets.connect(contract_server.url("allow-bob"), user_agent_header=None) as ws:
            await ws.send(json.dumps({"op": "echo"}))
            second = json.loads(await asyncio.wait_for(ws.recv(), 10))["event"]["requestContext"][
                "connectionId"
            ]
            await ws.send(b"\x00binary")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
        return first, str(second)

    first, second = asyncio.run(asyncio.wait_for(scenario(), 60))

    def of(connection: str, route: str) -> Any:
        return lambda e: (
            e["requestContext"]["connectionId"] == connection and e["requestContext"]["routeKey"] == route
        )

    return {
        "authorizer": record(
            contract_server, "authorizer", lambda e: e["requestContext"]["connectionId"] == first
        ),
        "connect": record(contract_server, "ingress", of(first, "$connect")),
        "route": record(contract_server, "ingress", of(first, "ping")),
        "default": record(contract_server, "ingress", of(first, "$default")),
        "disconnect": record(contract_server, "ingress", of(first, "$disconnect")),
        "binary_disconnect": record(contract_server, "ingress", of(second, "$disconnect")),
    }


def test_authorizer_event_is_a_websocket_request_authorizer_event(websocket_events: dict[str, Any]) -> None:
    event = websocket_events["authorizer"]
    parsed = APIGatewayAuthorizerRequestEvent(event)
    assert parsed.get_type == "REQUEST"
    assert parsed.method_arn.endswith("/local/$connect")
    assert parsed.parsed_arn.stage == "local"
    assert parsed.request_context.stage == "local" and parsed.request_context.api_id == "local"
    assert parsed.query_string_parameters["token"] == "allow-amy"
    assert parsed.headers["x-forwarded-for"] == "127.0.0.1"
    # The sample's API had no query string in its request: ours carries the token.
    assert_same_shape(event, sample("apiGatewayAuthorizerWebSocketEvent.json"))


def test_connect_event_parses_and_matches_the_sample(websocket_events: dict[str, Any]) -> None:
    event = websocket_events["connect"]
    model = parse(event=event, model=APIGatewayWebSocketConnectEventModel)
    assert model.request_context.route_key == "$connect"
    assert (
        APIGatewayWebSocketEvent(event).request_context.connection_id == model.request_context.connection_id
    )
    assert APIGatewayWebSocketEvent(event).request_context.identity.user_agent is None
    # The sample comes from an API with no authorizer and a request with no query string.
    extra = frozenset(
        {"queryStringParameters", "multiValueQueryStringParameters", "requestContext.authorizer"}
    )
    assert_same_shape(event, sample("apiGatewayWebSocketApiConnect.json"), extra=extra)
    assert {"X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto", "X-Amzn-Trace-Id"} <= set(
        event["headers"]
    )


@pytest.mark.parametrize("kind", ["route", "default"])
def test_message_events_parse_and_match_the_sample(websocket_events: dict[str, Any], kind: str) -> None:
    event = websocket_events[kind]
    model = parse(event=event, model=APIGatewayWebSocketMessageEventModel)
    assert model.request_context.event_type == "MESSAGE"
    assert APIGatewayWebSocketEvent(event).json_body["op"] == "echo"
    # The sample comes from an API with no authorizer.
    assert_same_shape(
        event, sample("apiGatewayWebSocketApiMessage.json"), extra=frozenset({"requestContext.authorizer"})
    )


@pytest.mark.parametrize(("kind", "code"), [("disconnect", 1000), ("binary_disconnect", 1003)])
def test_disconnect_events_parse_and_match_the_sample(
    websocket_events: dict[str, Any], kind: str, code: int
) -> None:
    event = websocket_events[kind]
    model = parse(event=event, model=APIGatewayWebSocketDisconnectEventModel)
    assert model.request_context.disconnect_status_code == code
    assert APIGatewayWebSocketEvent(event).request_context.disconnect_status_code == code
    assert_same_shape(
        event,
        sample("apiGatewayWebSocketApiDisconnect.json"),
        extra=frozenset({"requestContext.authorizer"}),
    )


def test_sqs_records_parse_and_match_the_sample(contract_server: Server) -> None:
    sqs = contract_server.boto3_client("sqs")
    queue_url = contract_server.info()["fanout_queue_url"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"contract": True}))
    event = record(
        contract_server, "fanout", lambda e: '{"contract": true}' in [r["body"] for r in e["Records"]]
    )
    model = parse(event=event, model=SqsModel)
    assert model.Records[0].eventSource == "aws:sqs"
    assert next(iter(SQSEvent(event).records)).json_body == {"contract": True}
    theirs = sample("sqsEvent.json")["Records"][0]
    ours = event["Records"][0]
    # moto returns every attribute SQS has for AttributeNames=All; the sample shows the four a
    # standard queue always has, which must be among them.
    assert set(theirs["attributes"]) <= set(ours["attributes"])
    for name in ("attributes",):
        ours, theirs = (
            {k: v for k, v in ours.items() if k != name},
            {k: v for k, v in theirs.items() if k != name},
        )
    assert_same_shape(ours, theirs)


def test_scheduled_event_parses_and_matches_the_sample(contract_server: Server) -> None:
    event = record(contract_server, "janitor", lambda e: e.get("detail-type") == "Scheduled Event")
    model = parse(event=event, model=EventBridgeModel)
    assert model.source == "aws.events"
    assert EventBridgeEvent(event).detail_type == "Scheduled Event"
    # "replay-name" appears only on events replayed from an archive, never on a schedule's.
    theirs = {k: v for k, v in sample("eventBridgeEvent.json").items() if k != "replay-name"}
    assert_same_shape(event, theirs)


def test_operator_api_event_parses_and_matches_the_http_api_iam_sample(contract_server: Server) -> None:
    """A signed call under /admin reaches the operator function as API Gateway's HTTP API
    (payload format 2.0, IAM authorization, an explicit route) delivers it."""
    admin = AdminClient(
        f"http://127.0.0.1:{contract_server.port}/admin",
        region="us-east-1",
        credentials=Credentials("testing", "testing", "testing"),  # the runtime's local credentials
    )
    body = {"user": "bot", "text": "contract", "clientMsgId": "contract-1"}
    answer = admin.call("POST", "/rooms/contract/messages", body, query={"trace": "on"})
    assert answer == {"routeKey": "POST /rooms/{room}/messages", "pathParameters": {"room": "contract"}}
    event = record(contract_server, "operator", lambda e: e["rawPath"] == "/rooms/contract/messages")

    model = parse(event=event, model=APIGatewayProxyEventV2Model)
    assert model.routeKey == model.requestContext.routeKey == "POST /rooms/{room}/messages"
    assert model.pathParameters == {"room": "contract"}
    assert model.queryStringParameters == {"trace": "on"}
    assert model.requestContext.stage == "$default" and model.requestContext.http.method == "POST"
    assert model.requestContext.authorizer is not None and model.requestContext.authorizer.iam is not None
    assert model.requestContext.authorizer.iam.accessKey == "testing"
    data_class = APIGatewayProxyEventV2(event)
    assert data_class.json_body == body and data_class.path == "/rooms/contract/messages"
    assert data_class.request_context.authentication is None  # no mTLS

    theirs = sample("apiGatewayProxyV2IamEvent.json")
    # AWS's IAM context fields, every one (cognitoIdentity and principalOrgId are null for
    # credentials outside Cognito identity pools and AWS Organizations).
    assert set(event["requestContext"]["authorizer"]["iam"]) == set(
        theirs["requestContext"]["authorizer"]["iam"]
    )
    # The sample's request sent cookies and its stage had stage variables; this call and the
    # operator API's stage have neither.
    theirs = {k: v for k, v in theirs.items() if k not in ("cookies", "stageVariables")}
    assert_same_shape(event, theirs)


def test_operator_api_event_without_a_body_has_no_body_field(contract_server: Server) -> None:
    admin = AdminClient(
        f"http://127.0.0.1:{contract_server.port}/admin",
        region="us-east-1",
        credentials=Credentials("testing", "testing", "testing"),
    )
    admin.presence("contract-empty")
    event = record(contract_server, "operator", lambda e: e["rawPath"] == "/rooms/contract-empty/presence")
    model = parse(event=event, model=APIGatewayProxyEventV2Model)
    assert model.routeKey == "GET /rooms/{room}/presence" and model.body is None
    assert "body" not in event and "queryStringParameters" not in event
