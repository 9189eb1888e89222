"""Least privilege proven by running the real code: `dynamowave serve --iam`, one grant taken away.

Every server the test suites start runs with --iam and fails its teardown if any call was refused
(tests/e2e/conftest.py, tests/clients/local_runtime.py): the calls the functions make are all
granted. Here, for each function, one of its grants (stacks/grants.py) is revoked through
``PUT /dev/iam`` and the real code, driven by real WebSocket clients and real queues, fails
exactly there with AccessDeniedException, as it would on AWS without that statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from dynamowave.testing.waits import wait_until
from tests.e2e.conftest import Server, start_server
from tests.e2e.test_e2e_chat import chat, connect_with_id, run, unique

ANY = "*"


@contextmanager
def revoked(server: Server, function: str, action: str, resource: str = ANY) -> Iterator[None]:
    status, body = server.http(
        "PUT", "/dev/iam", {"revoked": [{"function": function, "action": action, "resource": resource}]}
    )
    assert status == 200, body
    try:
        yield
    finally:
        assert server.http("PUT", "/dev/iam", {"revoked": []})[0] == 200


def denied(server: Server, function: str, action: str, resource_suffix: str = "") -> dict[str, str]:
    """The refusal of `action` to `function` (waits for it: some calls are asynchronous)."""

    def find() -> dict[str, str] | None:
        return next(
            (
                d
                for d in server.denials()
                if d["function"] == function
                and d["action"] == action
                and d["resource"].endswith(resource_suffix)
            ),
            None,
        )

    return wait_until(find, timeout=30)


def authorizer_without_its_secret(server: Server) -> Exception | None:
    """A handshake while the authorizer may not read the JWT secret. Done first, before any
    other handshake: the authorizer caches the secret (5 min, as on AWS)."""
    with revoked(server, "authorizer", "secretsmanager:GetSecretValue"):

        async def attempt() -> None:
            async with websockets.connect(server.url(server.token("nosecret"))):
                pass

        try:
            run(attempt())
        except Exception as exc:  # what the client saw, asserted by the test
            return exc
    return None


@pytest.fixture(scope="module")
def iam_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Exception | None]]:
    server = start_server(
        tmp_path_factory.mktemp("iam"),
        "--janitor-interval",
        "0",
        "--review-handler",
        "tests.e2e.review_stubs.handler",
        "--review-timeout",
        "5000",
    )
    server.expect_no_denials = False  # this suite's refusals are on purpose
    try:
        yield server, authorizer_without_its_secret(server)
    finally:
        server.stop()


@pytest.fixture
def server(iam_server: tuple[Server, Exception | None]) -> Server:
    return iam_server[0]


def test_dev_iam_lists_the_stack_grants_for_every_function(server: Server) -> None:
    status, body = server.http("GET", "/dev/iam")
    assert status == 200 and body["enforced"] is True
    functions = {grant["function"] for grant in body["granted"]}
    assert functions == {"authorizer", "ingress", "fanout", "janitor", "redriver", "operator"}
    ingress = {
        (g["action"], g["resource"].rsplit(":", 1)[-1]) for g in body["granted"] if g["function"] == "ingress"
    }
    assert ("lambda:InvokeFunction", "review") in ingress  # the review function: configured here
    assert not any(action.startswith("execute-api") for action, _ in ingress)  # replies are route responses
    status, body = server.http("PUT", "/dev/iam", {"revoked": [{"function": "ingress"}]})
    assert status == 400 and "action" in body["message"]


def test_authorizer_without_secretsmanager_get_secret_value_refuses_every_handshake(
    iam_server: tuple[Server, Exception | None],
) -> None:
    server, refused = iam_server
    assert isinstance(refused, InvalidStatus), refused
    assert refused.response.status_code == 500  # the authorizer failed: API Gateway answers 500
    denial = denied(server, "authorizer", "secretsmanager:GetSecretValue")
    assert ":secret:dynamowave-jwt" in denial["resource"]


def test_ingress_without_sqs_send_message_cannot_fan_out(server: Server) -> None:
    room = unique("iam-ingress")

    async def scenario() -> dict[str, Any]:
        async with chat(server, "ann") as ann, chat(server, "bob") as bob:
            await ann.join(room)
            await bob.join(room)
            with revoked(server, "ingress", "sqs:SendMessage"):
                await ann.send(action="sendmessage", room=room, text="never fanned out", clientMsgId="i1")
                refusal = await ann.expect("error", clientMsgId="i1")
            assert not [f for f in await bob.drain(1.0) if f.get("text") == "never fanned out"]
            return refusal

    refusal = run(scenario())
    assert refusal["code"] == "internal"
    assert denied(server, "ingress", "sqs:SendMessage")["resource"].endswith(":dynamowave-fanout")


def test_ingress_without_lambda_invoke_function_falls_back_on_review(server: Server) -> None:
    room = unique("iam-review")

    async def scenario() -> None:
        async with chat(server, "ann") as ann:
            await ann.join(room)
            with revoked(server, "ingress", "lambda:InvokeFunction"):
                # The review cannot run; the fallback (allow, the default) decides.
                await ann.say(room, "reviewed or not")

    run(scenario())
    assert denied(server, "ingress", "lambda:InvokeFunction")["resource"].endswith(":function:review")


def fanout_without(server: Server, action: str, resource_suffix: str = "") -> None:
    """ann says something while the fan-out lacks `action`: bob gets nothing, the refusal is listed."""
    room = unique("iam-fanout")

    async def scenario() -> None:
        ws, bob, bob_id = await connect_with_id(server, "bob")
        try:
            async with chat(server, "ann") as ann:
                await ann.join(room)
                await bob.join(room)
                with revoked(server, "fanout", action):
                    await ann.say(room, "not posted")
                    # The post to bob's connection is refused before it reaches the gateway.
                    denied(server, "fanout", action, resource_suffix.format(bob_id=bob_id))
                    assert not [f for f in await bob.drain(0.5) if f.get("text") == "not posted"]
        finally:
            await ws.close()

    run(scenario())


def test_fanout_without_manage_connections_post_delivers_nothing(server: Server) -> None:
    fanout_without(server, "execute-api:ManageConnections", "/POST/@connections/{bob_id}")


@pytest.fixture(scope="module")
def worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The fan-out in a worker process (`--fanout-workers 1`): its grants are enforced there."""
    server = start_server(
        tmp_path_factory.mktemp("iam-workers"), "--janitor-interval", "0", "--fanout-workers", "1"
    )
    server.expect_no_denials = False
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("action", "resource_suffix"),
    [
        ("execute-api:ManageConnections", "/POST/@connections/{bob_id}"),  # the post's own check
        ("dynamodb:Query", ":table/dynamowave-rooms"),  # every botocore call of the worker
    ],
)
def test_fanout_in_a_worker_process_is_held_to_its_grants(
    worker_server: Server, action: str, resource_suffix: str
) -> None:
    fanout_without(worker_server, action, resource_suffix)
    assert worker_server.info()["fanout_workers"]["invocations"] > 0


def test_fanout_event_source_without_receive_message_reads_no_job(server: Server) -> None:
    with revoked(server, "fanout", "sqs:ReceiveMessage"):
        denial = denied(server, "fanout", "sqs:ReceiveMessage")  # the mapping polls all the time
    assert denial["resource"].endswith(":dynamowave-fanout")


def test_janitor_without_dynamodb_scan_fails_its_run(server: Server) -> None:
    with revoked(server, "janitor", "dynamodb:Scan"):
        status, body = server.http("POST", "/dev/janitor")
    assert status == 200 and body["ok"] is False
    assert "AccessDeniedException" in body["error"]
    assert denied(server, "janitor", "dynamodb:Scan")["resource"].endswith("table/dynamowave-connections")
    status, body = server.http("POST", "/dev/janitor")
    assert status == 200 and body["ok"] is True, body  # granted again: the same run succeeds


def test_redriver_without_sqs_send_message_cannot_redrive_or_park(server: Server) -> None:
    sqs = server.boto3_client("sqs")
    dlq = server.info()["fanout_dlq_url"]
    with revoked(server, "redriver", "sqs:SendMessage"):
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"not": "a job"}))
        denial = denied(server, "redriver", "sqs:SendMessage")
    assert denial["resource"].endswith(":dynamowave-fanout-parked")  # not a job: parked
