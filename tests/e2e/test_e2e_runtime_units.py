"""The runtime's pure pieces: route selection, policies, throttle, SQS records, faults."""

from __future__ import annotations

from typing import Any, cast

import pytest

from dynamowave.local.event_sources import failed_message_ids, sqs_record
from dynamowave.local.faults import FaultConfig, FaultInjector
from dynamowave.local.gateway import TokenBucket, policy_effect, select_route
from dynamowave.local.lambda_runner import Invocation, api_gateway_id

ROUTES = frozenset({"join", "sendmessage"})
ARN = "arn:aws:execute-api:us-east-1:123456789012:local/local/$connect"


def test_connection_ids_look_like_api_gateways() -> None:
    ids = {api_gateway_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 16 and i.endswith("=") and "/" not in i and "+" not in i for i in ids)


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"action": "join"}', "join"),
        ('{"action": "JOIN"}', "$default"),
        ('{"action": null}', "$default"),
        ('"join"', "$default"),
        ("{", "$default"),
        (None, "$default"),
    ],
)
def test_select_route(body: str | None, route: str) -> None:
    assert select_route(body, ROUTES) == route


def policy(effect: str, resource: Any = ARN) -> dict[str, Any]:
    return {
        "principalId": "u",
        "policyDocument": {
            "Statement": [{"Effect": effect, "Action": "execute-api:Invoke", "Resource": resource}]
        },
    }


def test_policy_effect() -> None:
    assert policy_effect(policy("Allow"), ARN) == "Allow"
    assert (
        policy_effect(policy("Allow", "arn:aws:execute-api:us-east-1:123456789012:local/*"), ARN) == "Allow"
    )
    assert policy_effect(policy("Deny"), ARN) == "Deny"
    assert policy_effect(policy("Allow", "arn:aws:execute-api:us-east-1:1:other/*"), ARN) == "Deny"
    both = policy("Allow")
    both["policyDocument"]["Statement"].append({"Effect": "Deny", "Resource": "*"})
    assert policy_effect(both, ARN) == "Deny"
    with pytest.raises(ValueError, match="principalId"):
        policy_effect({"policyDocument": {}}, ARN)


def test_token_bucket_allows_burst_then_refills_at_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token at 2/s
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 100
    assert sum(bucket.take() for _ in range(10)) == 3


def invocation(result: Any = None, error: BaseException | None = None) -> Invocation:
    return Invocation("fanout", "r", result, error, 1.0)


RECORDS = [{"messageId": "a"}, {"messageId": "b"}]


def test_failed_message_ids_follow_partial_batch_response_rules() -> None:
    assert failed_message_ids(invocation({"batchItemFailures": []}), RECORDS) == set()
    assert failed_message_ids(invocation(None), RECORDS) == set()
    assert failed_message_ids(invocation({"batchItemFailures": [{"itemIdentifier": "b"}]}), RECORDS) == {"b"}
    assert failed_message_ids(invocation(error=RuntimeError()), RECORDS) == {"a", "b"}
    # malformed responses fail the whole batch, as Lambda does
    assert failed_message_ids(invocation({"batchItemFailures": [{"itemIdentifier": "zzz"}]}), RECORDS) == {
        "a",
        "b",
    }
    assert failed_message_ids(invocation({"batchItemFailures": [{}]}), RECORDS) == {"a", "b"}
    assert failed_message_ids(invocation("nonsense"), RECORDS) == {"a", "b"}


def test_sqs_record_shape() -> None:
    record = sqs_record(
        {
            "MessageId": "m",
            "ReceiptHandle": "h",
            "Body": "{}",
            "MD5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
            "Attributes": {"ApproximateReceiveCount": "1"},
            "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
        },
        queue_arn="arn:aws:sqs:us-east-1:123456789012:q",
        region="us-east-1",
    )
    assert record["messageAttributes"]["k"] == {
        "stringValue": "v",
        "binaryValue": None,
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert (record["eventSource"], record["awsRegion"]) == ("aws:sqs", "us-east-1")


def test_fault_injector_rates_are_honoured() -> None:
    injector = FaultInjector(FaultConfig.from_json({"post_to_connection": {"throttle_rate": 0.5}, "seed": 3}))
    draws = [injector.management_fault(allow_gone=True) for _ in range(2000)]
    assert 800 < draws.count("throttle") < 1200
    assert set(draws) == {"throttle", None}
    injector.configure(FaultConfig.from_json({"post_to_connection": {"gone_rate": 1.0}}))
    assert injector.management_fault(allow_gone=False) is None
    assert injector.management_fault(allow_gone=True) == "gone"
    injector.configure(FaultConfig())
    assert injector.fanout_crash_after(10) is None and injector.duplicate_record() is False


# ----- what API Gateway does with an authorizer's context, subprotocols, integration timeouts -----


def test_authorizer_context_allows_strings_numbers_and_booleans_only() -> None:
    from dynamowave.local.gateway import authorizer_context

    response = {"principalId": "amy", "context": {"user": "amy", "n": 3, "ratio": 0.5, "admin": False}}
    assert authorizer_context(response) == {
        "user": "amy",
        "n": 3,
        "ratio": 0.5,
        "admin": False,
        "principalId": "amy",
    }
    for bad in ({"rooms": ["a", "b"]}, {"nested": {"x": 1}}):
        with pytest.raises(ValueError, match="only strings, numbers and booleans"):
            authorizer_context({"principalId": "amy", "context": bad})
    with pytest.raises(ValueError, match="object"):
        authorizer_context({"principalId": "amy", "context": ["x"]})


def test_subprotocol_comes_from_the_connect_integrations_header() -> None:
    from dynamowave.local.gateway import selected_subprotocol

    assert selected_subprotocol({"statusCode": 200, "headers": {"sec-websocket-protocol": "chat.v2"}}) == (
        "chat.v2",
    )
    assert selected_subprotocol({"statusCode": 200}) == ()
    assert selected_subprotocol(None) == ()
    assert selected_subprotocol({"headers": {"Sec-WebSocket-Protocol": " "}}) == ()


def test_only_the_integration_timeout_says_endpoint_request_timed_out() -> None:
    """API Gateway's 29 s is its own: a function that fails, or hits its own (shorter) timeout,
    is an integration error; only an integration still running at API Gateway's limit gets
    "Endpoint request timed out"."""
    import asyncio

    from dynamowave.local.config import RuntimeConfig
    from dynamowave.local.gateway import Connection, WebSocketGateway
    from dynamowave.local.lambda_runner import InvocationTimeout

    class Runner:
        def __init__(self, error: BaseException | None, seconds: float = 0.0) -> None:
            self.error = error
            self.seconds = seconds

        async def invoke(
            self, name: str, event: Any, *, trigger: str, request_id: str | None = None
        ) -> Invocation:
            await asyncio.sleep(self.seconds)
            return Invocation(name, "lambda-id", None, self.error, 1.0)

    class Socket:
        closed = False

        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send_str(self, text: str) -> None:
            self.sent.append(text)

    async def frame_after(runner: Runner) -> dict[str, Any]:
        import json

        config = RuntimeConfig(integration_timeout=0.2)
        gateway = WebSocketGateway(config, cast(Any, runner), routes=("ping",), two_way=())
        socket = Socket()
        connection = Connection("c=", cast(Any, socket), cast(Any, None), 0, "127.0.0.1", None, {})
        await gateway._route(connection, '{"action": "ping"}')
        return cast("dict[str, Any]", json.loads(socket.sent[0]))

    timed_out = asyncio.run(frame_after(Runner(None, seconds=5.0)))
    assert timed_out["message"] == "Endpoint request timed out"
    assert timed_out["connectionId"] == "c=" and timed_out["requestId"]
    function_timeout = asyncio.run(frame_after(Runner(InvocationTimeout("ingress", 10))))
    assert function_timeout["message"] == "Internal server error"
    assert asyncio.run(frame_after(Runner(RuntimeError("bug"))))["message"] == "Internal server error"
