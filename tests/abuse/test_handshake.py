"""Abuse at the WebSocket handshake and frame level, against a real `dynamowave serve`.

- every hostile token of tests/abuse/hostile_tokens.py is refused with 403 (401 without a token), and
  no connection record is written;
- frames API Gateway would not pass: over 32 KB in one frame, over 128 KB in all, text that is
  not UTF-8 (the socket is closed; the server carries on and keeps no record of the socket);
- a binary frame closes the socket with 1003, as API Gateway closes it (no binary media types),
  and leaves no record; a fragmented message under the limits reaches the function and is
  refused with a protocol error, not a crash.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from tests.abuse.hostile_tokens import KINDS, REFUSED, valid_token
from tests.abuse.live import SECRET, Client, DevApi
from tests.clients.local_runtime import LocalRuntime, runtime_available, start_local_runtime

pytestmark = pytest.mark.skipif(
    runtime_available() is not None, reason=f"runtime missing: {runtime_available()}"
)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevApi]:
    runtime: LocalRuntime = start_local_runtime(
        Path(tmp_path_factory.mktemp("abuse-handshake")), "--janitor-interval", "0"
    )
    try:
        yield DevApi(runtime)
    finally:
        runtime.stop()


def handshake_status(dev: DevApi, query: str, headers: dict[str, str] | None = None) -> int:
    try:
        with connect(f"{dev.runtime.ws_url}/{query}", open_timeout=30, additional_headers=headers):
            return 101
    except InvalidStatus as refused:
        return int(refused.response.status_code)


def no_trace(dev: DevApi) -> None:
    assert dev.connections() == []
    assert dev.state().connections == []


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_token_is_refused_at_the_handshake(dev: DevApi, kind: str) -> None:
    token = REFUSED[kind](SECRET)
    assert handshake_status(dev, f"?token={token}") == 403
    no_trace(dev)


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("", None),
        ("?token=", None),
        ("?Token=x", None),
        ("", {"Authorization": "Bearer " + valid_token(SECRET)}),  # the identity source is the query
    ],
)
def test_missing_token_is_unauthorized(dev: DevApi, query: str, headers: dict[str, str] | None) -> None:
    assert handshake_status(dev, query, headers) == 401
    no_trace(dev)


def test_the_valid_token_connects_and_leaves_no_record_after_closing(dev: DevApi) -> None:
    client = Client(dev, "control")
    assert client.connection_id in dev.state().connection_ids()
    client.close()
    deadline = time.monotonic() + 20
    while dev.state().connections and time.monotonic() < deadline:
        time.sleep(0.1)
    no_trace(dev)


def closed_with(client: Client, code: int) -> None:
    closed = client.wait_closed()
    assert closed is not None and closed[0] == code, closed


def wait_no_trace(dev: DevApi) -> None:
    deadline = time.monotonic() + 20
    while (dev.connections() or dev.state().connections) and time.monotonic() < deadline:
        time.sleep(0.1)
    no_trace(dev)


def test_a_frame_over_32_kb_closes_with_1009(dev: DevApi) -> None:
    client = Client(dev, "big-frame")
    client.send(action="ping", pad="x" * (33 * 1024))
    closed_with(client, 1009)
    wait_no_trace(dev)


def test_a_message_over_128_kb_in_small_frames_closes_with_1009(dev: DevApi) -> None:
    client = Client(dev, "big-message")
    body = json.dumps({"action": "ping", "pad": "x" * (130 * 1024)})
    with contextlib.suppress(ConnectionClosed):  # the server may close before the last fragment
        client.ws.send([body[i : i + 16 * 1024] for i in range(0, len(body), 16 * 1024)])
    closed_with(client, 1009)
    wait_no_trace(dev)


def test_a_fragmented_message_under_the_limits_gets_a_protocol_error(dev: DevApi) -> None:
    client = Client(dev, "fragments")
    client.join("lobby")
    body = json.dumps(
        {"action": "sendmessage", "room": "lobby", "clientMsgId": "big", "text": "y" * (100 * 1024)}
    )
    client.ws.send([body[i : i + 30 * 1024] for i in range(0, len(body), 30 * 1024)])
    reply = client.wait_for(lambda f: f.get("type") == "error")
    assert reply is not None and reply["code"] == "too_large", reply
    client.send(action="ping")
    assert client.wait_for(lambda f: f.get("type") == "pong") is not None  # still open
    assert [m for m in dev.state().messages if m["room"] == "lobby"] == []
    client.close()


def test_a_binary_frame_closes_with_1003_and_leaves_no_record(dev: DevApi) -> None:
    client = Client(dev, "binary")
    client.ws.send(b'\x00\xff{"action": "ping"}')
    closed_with(client, 1003)
    wait_no_trace(dev)


def test_text_that_is_not_utf8_closes_the_socket_and_leaves_no_record(dev: DevApi) -> None:
    client = Client(dev, "not-utf8")
    with client.ws.send_context():
        client.ws.protocol.send_frame(Frame(Opcode.TEXT, b'{"action": "ping", "x": "\xff\xfe\xc0\xaf"}'))
    closed = client.wait_closed()
    assert closed is not None and closed[0] in (1007, 1002), closed  # invalid payload / protocol error
    wait_no_trace(dev)
    # The server is unharmed.
    other = Client(dev, "after-bad-utf8")
    other.send(action="ping")
    assert other.wait_for(lambda f: f.get("type") == "pong") is not None
    other.close()
