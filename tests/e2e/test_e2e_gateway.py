"""The local API Gateway against stub handlers: handshake, events, routes, limits, lifecycle."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import quote

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from dynamowave.testing.waits import wait_until as shared_wait_until
from tests.e2e.conftest import STUBS, Server, start_server

T = TypeVar("T")
CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def recv_json(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return cast("dict[str, Any]", json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def echo(ws: Any, payload: Any) -> dict[str, Any]:
    await ws.send(payload if isinstance(payload, str) else json.dumps(payload))
    return await recv_json(ws)


async def connection_id(ws: Any) -> str:
    reply = await echo(ws, {"op": "echo"})
    return str(reply["event"]["requestContext"]["connectionId"])


def wait_until(predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
    return shared_wait_until(predicate, timeout)


def disconnects_of(server: Server, connection: str) -> list[dict[str, Any]]:
    return [
        e["event"]
        for e in server.events("ingress")
        if e["event"]["requestContext"]["routeKey"] == "$disconnect"
        and e["event"]["requestContext"]["connectionId"] == connection
    ]


def closed_after(server: Server, act: Callable[[Any, str], Awaitable[None]]) -> tuple[str, int | None]:
    """Opens a connection, does `act(ws, connection_id)`, and returns the close code it then gets."""

    async def scenario() -> tuple[str, int | None]:
        async with websockets.connect(server.url("allow-amy")) as ws:
            connection = await connection_id(ws)
            await act(ws, connection)
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as exc:
                return connection, exc.rcvd.code if exc.rcvd else None
        raise AssertionError("connection stayed open")

    return run(scenario())


# ----- handshake --------------------------------------------------------------------------------


def handshake_status(server: Server, url: str) -> int:
    async def attempt() -> int:
        try:
            async with websockets.connect(url):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return run(attempt())


def test_missing_token_is_401_without_calling_the_authorizer(stub_server: Server) -> None:
    before = len(stub_server.events("authorizer"))
    assert handshake_status(stub_server, stub_server.url()) == 401
    assert handshake_status(stub_server, stub_server.url("")) == 401
    assert len(stub_server.events("authorizer")) == before


def test_authorizer_unauthorized_is_401_and_deny_is_403_and_no_connect_runs(stub_server: Server) -> None:
    connects_before = [
        e for e in stub_server.events("ingress") if e["event"]["requestContext"]["eventType"] == "CONNECT"
    ]
    assert handshake_status(stub_server, stub_server.url("garbage")) == 401
    assert handshake_status(stub_server, stub_server.url("deny")) == 403
    assert handshake_status(stub_server, stub_server.url("crash")) == 500
    connects_after = [
        e for e in stub_server.events("ingress") if e["event"]["requestContext"]["eventType"] == "CONNECT"
    ]
    assert connects_after == connects_before
    assert stub_server.http("GET", "/dev/connections")[1]["connections"] == []


def test_connect_integration_refusal_sets_the_handshake_status(stub_server: Server) -> None:
    assert handshake_status(stub_server, stub_server.url("allow-zed", refuse="403")) == 403
    assert handshake_status(stub_server, stub_server.url("allow-zed", refuse="500")) == 500
    assert stub_server.http("GET", "/dev/connections")[1]["connections"] == []


def test_authorizer_event_has_the_request_shape(stub_server: Server) -> None:
    async def scenario() -> None:
        async with websockets.connect(stub_server.url("allow-amy", extra="1")):
            pass

    run(scenario())
    event = stub_server.events("authorizer")[-1]["event"]
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == "arn:aws:execute-api:us-east-1:123456789012:local/local/$connect"
    assert event["queryStringParameters"] == {"token": "allow-amy", "extra": "1"}
    assert event["requestContext"]["routeKey"] == "$connect"
    assert event["requestContext"]["eventType"] == "CONNECT"
    assert "authorizer" not in event["requestContext"]


def test_connect_and_message_events_match_api_gateway(stub_server: Server) -> None:
    async def scenario() -> dict[str, Any]:
        async with websockets.connect(stub_server.url("allow-amy"), user_agent_header="e2e-agent") as ws:
            return await echo(ws, {"action": "ping", "op": "echo"})

    reply = run(scenario())
    assert reply["route"] == "ping"
    event = reply["event"]
    context = event["requestContext"]
    assert context["eventType"] == "MESSAGE"
    assert context["routeKey"] == "ping"
    assert CONNECTION_ID.match(context["connectionId"])
    assert context["stage"] == "local"
    assert context["apiId"] == "local"
    assert context["domainName"] == f"127.0.0.1:{stub_server.port}"
    assert context["messageDirection"] == "IN"
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "e2e-agent"}
    assert context["authorizer"] == {"principalId": "amy", "userId": "amy", "name": "Amy", "rooms": "*"}
    assert isinstance(context["connectedAt"], int) and isinstance(context["requestTimeEpoch"], int)
    assert re.match(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$", context["requestTime"])
    assert context["messageId"] and context["requestId"]
    assert event["body"] == json.dumps({"action": "ping", "op": "echo"})
    assert event["isBase64Encoded"] is False
    connect = next(
        e["event"]
        for e in stub_server.events("ingress")
        if e["event"]["requestContext"]["eventType"] == "CONNECT"
        and e["event"]["requestContext"]["connectionId"] == context["connectionId"]
    )
    assert connect["requestContext"]["authorizer"]["userId"] == "amy"
    assert connect["queryStringParameters"]["token"] == "allow-amy"
    assert "headers" in connect and "body" not in connect
    # What API Gateway adds to the handshake's headers (this listener has no TLS: http, its port).
    headers = connect["headers"]
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert (headers["X-Forwarded-Proto"], headers["X-Forwarded-Port"]) == ("http", str(stub_server.port))
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["X-Amzn-Trace-Id"])
    assert connect["multiValueHeaders"]["X-Amzn-Trace-Id"] == [headers["X-Amzn-Trace-Id"]]


def test_identity_has_no_user_agent_when_the_client_sends_none(stub_server: Server) -> None:
    async def scenario() -> dict[str, Any]:
        async with websockets.connect(stub_server.url("allow-amy"), user_agent_header=None) as ws:
            return await echo(ws, {"op": "echo"})

    assert run(scenario())["event"]["requestContext"]["identity"] == {"sourceIp": "127.0.0.1"}


def test_connect_integration_chooses_the_subprotocol(stub_server: Server) -> None:
    async def scenario() -> tuple[str | None, str | None]:
        url = stub_server.url("allow-amy", subprotocol="chat.v2")
        async with websockets.connect(
            url, subprotocols=[Subprotocol("chat.v1"), Subprotocol("chat.v2")]
        ) as chosen:
            with_choice = chosen.subprotocol
        async with websockets.connect(
            stub_server.url("allow-amy"), subprotocols=[Subprotocol("chat.v1")]
        ) as plain:
            without = plain.subprotocol
        return with_choice, without

    assert run(scenario()) == ("chat.v2", None)


def test_each_function_sees_only_the_variables_the_stack_gives_it(stub_server: Server) -> None:
    async def scenario() -> None:
        async with websockets.connect(stub_server.url("allow-amy")) as ws:
            await echo(ws, {"op": "echo"})

    run(scenario())
    authorizer = stub_server.events("authorizer")[-1]["env"]
    ingress = stub_server.events("ingress")[-1]["env"]
    # The authorizer reads the secret from Secrets Manager by ARN, as on AWS; the secret itself
    # (the process's DYNAMOWAVE_JWT_SECRET, which picks it) is no function's variable.
    assert ":secretsmanager:" in authorizer["JWT_SECRET_ARN"] and authorizer["CONNECTIONS_TABLE"] is None
    assert authorizer["DYNAMOWAVE_JWT_SECRET"] is None
    assert ingress["CONNECTIONS_TABLE"] == "dynamowave-connections" and ingress["MESSAGES_TABLE"]
    assert ingress["FANOUT_DLQ_URL"] is None and ingress["JWT_SECRET_ARN"] is None


def test_lambda_context_looks_real(stub_server: Server) -> None:
    async def scenario() -> None:
        async with websockets.connect(stub_server.url("allow-amy")) as ws:
            await echo(ws, {"op": "echo"})

    run(scenario())
    record = stub_server.events("ingress")[-2]
    context = record["context"]
    assert context["function_name"] == "ingress"
    # Lambda's request id is its own, not the gateway's requestId.
    assert context["aws_request_id"] != record["event"]["requestContext"]["requestId"]
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", context["aws_request_id"]
    )
    assert context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:ingress"
    assert context["memory_limit_in_mb"] == 512
    assert 0 < context["remaining_ms"] <= 29_000


# ----- routes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "route"),
    [
        ({"action": "join", "room": "a"}, "join"),
        ({"action": "sendmessage"}, "sendmessage"),
        ({"action": "nope"}, "$default"),
        ({"action": 5}, "$default"),
        ({"no": "action"}, "$default"),
        ([1, 2], "$default"),
        ("not json at all", "$default"),
    ],
)
def test_route_selection_on_body_action_with_default_fallback(
    stub_server: Server, frame: Any, route: str
) -> None:
    async def scenario() -> dict[str, Any]:
        async with websockets.connect(stub_server.url("allow-amy")) as ws:
            return await echo(ws, frame)

    reply = run(scenario())
    assert reply["route"] == route
    assert reply["event"]["requestContext"]["routeKey"] == route


def test_binary_frame_closes_1003_as_api_gateway_does(stub_server: Server) -> None:
    """API Gateway supports no binary frames in incoming payloads: it closes with 1003, and no
    route is invoked for the frame."""

    async def send_binary(ws: Any, connection: str) -> None:
        await ws.send(b"\x00\x01binary")

    connection, code = closed_after(stub_server, send_binary)
    assert code == 1003
    disconnect = wait_until(lambda: disconnects_of(stub_server, connection))[0]
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1003
    routed = [
        e for e in stub_server.events("ingress") if e["event"]["requestContext"]["connectionId"] == connection
    ]
    assert [e["event"]["requestContext"]["routeKey"] for e in routed] == [
        "$connect",
        "$default",
        "$disconnect",
    ]


def test_integration_error_sends_internal_server_error_frame(stub_server: Server) -> None:
    async def scenario() -> tuple[dict[str, Any], str]:
        async with websockets.connect(stub_server.url("allow-amy")) as ws:
            connection = await connection_id(ws)
            reply = await echo(ws, {"action": "ping", "op": "raise"})
            still_open = await echo(ws, {"op": "echo"})
            assert still_open["route"] == "$default"
            return reply, connection

    reply, connection = run(scenario())
    assert reply["message"] == "Internal server error"
    assert reply["connectionId"] == connection
    assert reply["requestId"]


def test_no_body_means_no_route_response(stub_server: Server) -> None:
    async def scenario() -> dict[str, Any]:
        async with websockets.connect(stub_server.url("allow-amy")) as ws:
            await ws.send(json.dumps({"op": "silent"}))
            await ws.send(json.dumps({"op": "echo", "n": 2}))
            return await recv_json(ws)

    reply = run(scenario())
    assert json.loads(reply["event"]["body"])["n"] == 2


# ----- limits -----------------------------------------------------------------------------------


def close_code_after(server: Server, send: Callable[[Any], Awaitable[None]]) -> int | None:
    async def scenario() -> int | None:
        async with websockets.connect(server.url("allow-amy"), max_size=None) as ws:
            await send(ws)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None

    return run(scenario())


def test_single_frame_over_32_kb_closes_1009(stub_server: Server) -> None:
    async def send(ws: Any) -> None:
        await ws.send(json.dumps({"op": "echo", "pad": "x" * 33_000}))

    assert close_code_after(stub_server, send) == 1009


def test_fragmented_message_under_128_kb_in_small_frames_is_accepted(stub_server: Server) -> None:
    async def scenario() -> dict[str, Any]:
        async with websockets.connect(stub_server.url("allow-amy"), max_size=None) as ws:
            text = json.dumps({"op": "silent", "pad": "y" * 90_000})
            await ws.send([text[i : i + 30_000] for i in range(0, len(text), 30_000)])
            return await echo(ws, {"op": "echo"})

    assert run(scenario())["route"] == "$default"


def test_fragmented_message_over_128_kb_closes_1009(stub_server: Server) -> None:
    async def send(ws: Any) -> None:
        text = "z" * 140_000
        await ws.send([text[i : i + 30_000] for i in range(0, len(text), 30_000)])

    assert close_code_after(stub_server, send) == 1009


# ----- $disconnect ------------------------------------------------------------------------------


def test_disconnect_runs_once_after_client_close(stub_server: Server) -> None:
    async def scenario() -> str:
        async with websockets.connect(stub_server.url("allow-amy")) as ws:
            return await connection_id(ws)

    connection = run(scenario())
    events = wait_until(lambda: disconnects_of(stub_server, connection))
    time.sleep(0.3)
    assert len(disconnects_of(stub_server, connection)) == 1
    context = events[0]["requestContext"]
    assert context["eventType"] == "DISCONNECT"
    # In requestContext, where API Gateway puts them (not at the event's top level).
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1000, "")
    assert "disconnectStatusCode" not in events[0] and "disconnectReason" not in events[0]
    assert events[0]["requestContext"]["authorizer"]["userId"] == "amy"


def test_disconnect_runs_after_abrupt_tcp_drop(stub_server: Server) -> None:
    async def scenario() -> str:
        ws = await websockets.connect(stub_server.url("allow-amy"))
        connection = await connection_id(ws)
        ws.transport.abort()  # no close frame: the network went away
        return connection

    connection = run(scenario())
    events = wait_until(lambda: disconnects_of(stub_server, connection))
    assert events[0]["requestContext"]["disconnectStatusCode"] == 1006


def test_delete_connection_closes_and_runs_disconnect_and_then_gone(stub_server: Server) -> None:
    client = stub_server.boto3_client("apigatewaymanagementapi")

    async def delete(ws: Any, connection: str) -> None:
        await asyncio.to_thread(client.delete_connection, ConnectionId=connection)

    connection, code = closed_after(stub_server, delete)
    assert code == 1000
    disconnects = wait_until(lambda: disconnects_of(stub_server, connection))
    assert len(disconnects) == 1
    context = disconnects[0]["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (
        1000,
        "Connection Closed Normally",
    )
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection, Data=b"late")


def test_dropped_behind_the_runtimes_back_has_no_disconnect_and_is_gone(stub_server: Server) -> None:
    client = stub_server.boto3_client("apigatewaymanagementapi")

    async def scenario() -> str:
        async with websockets.connect(stub_server.url("allow-amy")) as ws:
            connection = await connection_id(ws)
            status, _ = await asyncio.to_thread(
                stub_server.http, "POST", f"/dev/connections/{connection}/drop"
            )
            assert status == 204
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return connection

    connection = run(scenario())
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection, Data=b"hello?")
    time.sleep(0.5)
    assert disconnects_of(stub_server, connection) == []


# ----- Management API ---------------------------------------------------------------------------


def test_management_api_post_get_and_errors_with_boto3(stub_server: Server) -> None:
    client = stub_server.boto3_client("apigatewaymanagementapi")

    async def scenario() -> None:
        async with websockets.connect(stub_server.url("allow-amy"), user_agent_header="agent-x") as ws:
            connection = await connection_id(ws)
            await asyncio.to_thread(client.post_to_connection, ConnectionId=connection, Data=b'{"type":"hi"}')
            assert await recv_json(ws) == {"type": "hi"}
            info = await asyncio.to_thread(client.get_connection, ConnectionId=connection)
            assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "agent-x"}
            assert info["ConnectedAt"] <= info["LastActiveAt"]
            with pytest.raises(client.exceptions.PayloadTooLargeException):
                await asyncio.to_thread(
                    client.post_to_connection, ConnectionId=connection, Data=b"x" * 140_000
                )

    run(scenario())
    for call in (client.post_to_connection, client.get_connection, client.delete_connection):
        kwargs: dict[str, Any] = {"ConnectionId": "Ab3dEfGhIAMCJ-Q="}
        if call == client.post_to_connection:
            kwargs["Data"] = b"x"
        with pytest.raises(client.exceptions.GoneException) as caught:
            call(**kwargs)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


def test_management_api_without_stage_prefix(stub_server: Server) -> None:
    status, _ = stub_server.http("POST", "/@connections/unknown", {"x": 1}, signed=True)
    assert status == 410


def test_management_api_refuses_unsigned_and_wrongly_signed_calls(stub_server: Server) -> None:
    """API Gateway authenticates every @connections call: an unsigned one is 403 Missing
    Authentication Token, a wrong secret 403 InvalidSignatureException, and nothing is delivered."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    async def scenario() -> None:
        async with websockets.connect(stub_server.url("allow-alice")) as ws:
            connection = await connection_id(ws)
            path = f"/local/@connections/{quote(connection, safe='')}"
            for method in ("POST", "GET", "DELETE"):
                status, body = stub_server.http(method, path, {"x": 1})
                assert status == 403, (method, status, body)
                assert body["message"] == "Missing Authentication Token"
            wrong = boto3.session.Session(
                aws_access_key_id="testing", aws_secret_access_key="wrong", aws_session_token="testing"
            ).client(
                "apigatewaymanagementapi",
                endpoint_url=stub_server.management_endpoint,
                region_name="us-east-1",
                config=Config(retries={"total_max_attempts": 1}),
            )
            with pytest.raises(ClientError) as caught:
                wrong.post_to_connection(ConnectionId=connection, Data=b"not delivered")
            assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            with pytest.raises(ClientError) as caught:
                wrong.delete_connection(ConnectionId=connection)
            assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
            # The connection is still open and received nothing but what a signed call sends.
            stub_server.boto3_client("apigatewaymanagementapi").post_to_connection(
                ConnectionId=connection, Data=b"signed"
            )
            assert await asyncio.wait_for(ws.recv(), 10) == "signed"

    run(scenario())


def test_post_fault_injection_throttle_and_error(stub_server: Server) -> None:
    client = stub_server.boto3_client("apigatewaymanagementapi")
    try:
        status, _ = stub_server.http("PUT", "/dev/faults", {"post_to_connection": {"throttle_rate": 1.0}})
        assert status == 200
        with pytest.raises(client.exceptions.LimitExceededException):
            client.post_to_connection(ConnectionId="whatever", Data=b"x")
        stub_server.http("PUT", "/dev/faults", {"post_to_connection": {"error_rate": 1.0}})
        with pytest.raises(client.exceptions.ClientError) as caught:
            client.post_to_connection(ConnectionId="whatever", Data=b"x")
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    finally:
        stub_server.http("PUT", "/dev/faults", {})


def test_gone_fault_drops_the_live_connection_silently(stub_server: Server) -> None:
    client = stub_server.boto3_client("apigatewaymanagementapi")

    async def scenario() -> str:
        async with websockets.connect(stub_server.url("allow-amy")) as ws:
            connection = await connection_id(ws)
            stub_server.http("PUT", "/dev/faults", {"post_to_connection": {"gone_rate": 1.0}})
            try:
                with pytest.raises(client.exceptions.GoneException):
                    await asyncio.to_thread(client.post_to_connection, ConnectionId=connection, Data=b"x")
            finally:
                stub_server.http("PUT", "/dev/faults", {})
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return connection

    connection = run(scenario())
    time.sleep(0.3)
    assert disconnects_of(stub_server, connection) == []


def test_invalid_faults_are_refused(stub_server: Server) -> None:
    status, body = stub_server.http("PUT", "/dev/faults", {"post_to_connection": {"throttle_rate": 2}})
    assert status == 400
    assert "throttle_rate" in body["message"]


# ----- HTTP surface -----------------------------------------------------------------------------


def test_healthz_index_and_dev_token(stub_server: Server) -> None:
    assert stub_server.http("GET", "/healthz") == (200, "ok")
    status, page = stub_server.http("GET", "/")
    assert status == 200 and "<" in page
    status, body = stub_server.http("GET", "/dev/token?user=alice&name=Alice&rooms=a,b")
    assert status == 200
    assert body["url"] == f"{stub_server.ws_url}/"
    from functions.chat.auth import verify_token
    from tests.e2e.conftest import SECRET

    identity = verify_token(body["token"], SECRET)
    assert (identity.user_id, identity.name, identity.rooms) == ("alice", "Alice", ("a", "b"))
    assert stub_server.http("GET", "/dev/token?user=bad%20user")[0] == 400
    assert stub_server.http("GET", "/static/../../pyproject.toml")[0] == 404


# ----- throttling and timeouts (their own servers) ----------------------------------------------


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(
        tmp_path_factory.mktemp("limited"),
        *STUBS,
        "--idle-timeout",
        "1.5",
        "--max-duration",
        "4",
        "--throttle-rate",
        "2",
        "--throttle-burst",
        "5",
        "--janitor-interval",
        "0",
    )
    yield server
    server.stop()


def test_stage_throttling_answers_too_many_requests_and_429(limited_server: Server) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with websockets.connect(limited_server.url("allow-amy")) as ws:
            for n in range(8):
                await ws.send(json.dumps({"op": "echo", "n": n}))
            return [await recv_json(ws) for _ in range(8)]

    time.sleep(3)  # a full bucket
    replies = run(scenario())
    throttled = [r for r in replies if r.get("message") == "Too Many Requests"]
    assert throttled, replies
    assert all(r["connectionId"] and r["requestId"] for r in throttled)
    statuses = [handshake_status(limited_server, limited_server.url("allow-amy")) for _ in range(8)]
    assert 429 in statuses


def test_idle_timeout_closes_1001_and_runs_disconnect(limited_server: Server) -> None:
    async def scenario() -> tuple[str, int | None, str | None]:
        await asyncio.sleep(3)  # refill the throttle bucket
        async with websockets.connect(limited_server.url("allow-amy"), ping_interval=None) as ws:
            connection = await connection_id(ws)
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as exc:
                return connection, exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else None
        raise AssertionError("not closed")

    connection, code, reason = run(scenario())
    assert (code, reason) == (1001, "Going away")
    context = wait_until(lambda: disconnects_of(limited_server, connection))[0]["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1001, "Going away")


def test_client_pings_do_not_keep_a_connection_open(limited_server: Server) -> None:
    """Pings are answered but are not activity: a client that only pings meets the idle timeout
    (aiohttp's own receive timeout restarts on each ping, which kept such a socket open forever)."""

    async def scenario() -> tuple[int | None, float]:
        await asyncio.sleep(3)  # refill the throttle bucket
        async with websockets.connect(limited_server.url("allow-amy"), ping_interval=0.2) as ws:
            opened = time.monotonic()
            try:
                await asyncio.wait_for(ws.recv(), 15)
            except ConnectionClosed as exc:
                return (exc.rcvd.code if exc.rcvd else None), time.monotonic() - opened
        raise AssertionError("not closed")

    code, after = run(scenario())
    assert code == 1001
    assert after < 4  # the 1.5 s idle timeout, not the 4 s maximum duration


def test_maximum_duration_closes_even_an_active_connection(limited_server: Server) -> None:
    async def scenario() -> int | None:
        await asyncio.sleep(3)
        async with websockets.connect(limited_server.url("allow-amy")) as ws:
            try:
                for _ in range(20):  # active every 0.5 s: the idle timeout never fires
                    await ws.send(json.dumps({"op": "silent"}))
                    await asyncio.sleep(0.5)
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None
        return None

    assert run(scenario()) == 1001
