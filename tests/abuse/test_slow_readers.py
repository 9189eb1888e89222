"""Clients that stop reading, against a real `dynamowave serve`: backlogs are capped, closes end.

A raw TCP client does the WebSocket handshake by hand and never reads again, so its socket
buffers fill: first the kernel's (the server's send buffer autotunes up to `tcp_wmem`'s 4 MB on
loopback), then the runtime's own. What is asserted is what the client and the kernel see:
- past 1 MiB held by the runtime (posts or route responses), the connection is cut off: reset,
  unregistered, `$disconnect` run, later posts 410, and the bytes held never pass the cap;
- the idle close of such a reader resets its TCP connection within the close bound (before,
  the close waited forever on a drain, or left the socket in FIN_WAIT1 with megabytes queued
  and the client never told);
- SIGTERM with 20 such readers stops within one bound, every socket reset;
- `--host ::` serves both stacks.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from websockets.sync.client import connect

from tests.abuse.live import Client, DevApi
from tests.clients.local_runtime import LocalRuntime, post_messages, runtime_available, start_local_runtime

pytestmark = [
    pytest.mark.skipif(runtime_available() is not None, reason=f"runtime missing: {runtime_available()}"),
    pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux TCP_INFO"),
]

TCP_ESTABLISHED = 1  # tcpi_state, the first byte of struct tcp_info
MAX_BACKLOG_BYTES = 1024 * 1024  # dynamowave/local/gateway.py: past it a reader is cut off
CLOSE_BOUND_SECONDS = 2.0  # gateway.CLOSE_TIMEOUT_SECONDS
IDLE_TIMEOUT = 10
# Held by the runtime beyond the kernel's buffers: over the transport's 64 KiB high-water mark
# (so a close frame has to wait for a drain that never comes), well under the cap.
STUCK_BYTES = 256 * 1024
FILLER = json.dumps({"type": "filler", "data": "x" * 100_000}).encode()
BIG_ROOM = "bulky"


class StalledClient:
    """A WebSocket client that sends what it is told and never reads a byte after the handshake."""

    def __init__(self, dev: DevApi, user: str) -> None:
        runtime = dev.runtime
        before = set(dev.connections())
        port = int(runtime.ws_url.rsplit(":", 1)[1])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up quickly
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        path = "/?" + urllib.parse.urlencode({"token": runtime.token(user)})
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(1)  # byte by byte: nothing past the handshake is read
            assert chunk, "connection closed during the handshake"
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response
        wait_until(lambda: len(set(dev.connections()) - before) == 1, timeout=20)
        (self.connection_id,) = set(dev.connections()) - before

    def send(self, frame: dict[str, object]) -> None:
        payload = json.dumps(frame).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def reset(self) -> bool:
        """The server let go of the TCP connection (a RST arrived): it is no longer established.
        Read from the kernel, without reading or sending a byte."""
        return self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != TCP_ESTABLISHED

    def close(self) -> None:
        self.sock.close()


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        time.sleep(0.2)
    return time.monotonic() - started


class Poster:
    """PostToConnection through the runtime's Management API (SigV4-signed, over HTTP).

    A post that is not answered within a second is left running: a runtime that waits for a
    slow reader's socket to drain before it answers must not stall the test."""

    def __init__(self, dev: DevApi) -> None:
        self._pool = ThreadPoolExecutor(max_workers=8)
        session: Any = boto3.session.Session()
        self._client = session.client(
            "apigatewaymanagementapi",
            endpoint_url=dev.info["management_endpoint"],
            region_name=dev.info["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            config=Config(read_timeout=1, connect_timeout=5, retries={"max_attempts": 1}),
        )

    def post(self, connection_id: str, data: bytes) -> str:
        """ "ok", the error code, or "no answer"."""
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except self._client.exceptions.ClientError as error:
            return str(error.response["Error"]["Code"])
        except Exception:
            return "no answer"
        return "ok"

    def post_all(self, connection_ids: list[str], data: bytes) -> list[str]:
        return list(self._pool.map(lambda connection_id: self.post(connection_id, data), connection_ids))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def fill(dev: DevApi, poster: Poster, clients: list[StalledClient], held: int) -> None:
    """Post 100 KB frames to each client until the runtime itself holds `held` bytes for it
    (so the kernel's buffers are full: every further byte waits in the runtime)."""
    deadline = time.monotonic() + 120
    waiting = [client.connection_id for client in clients]
    while waiting:
        assert time.monotonic() < deadline, f"not filled: {dev.unsent()}"
        poster.post_all(waiting, FILLER)
        unsent = dev.unsent()
        missing = [connection_id for connection_id in waiting if connection_id not in unsent]
        assert not missing, f"closed while filling: {missing}"
        waiting = [connection_id for connection_id in waiting if unsent[connection_id] < held]


def disconnected(dev: DevApi, connection_id: str) -> bool:
    """`$disconnect` ran: the connection's item is gone from the connections table."""
    item = dev.client("dynamodb").get_item(
        TableName=dev.info["tables"]["connections"], Key={"connectionId": {"S": connection_id}}
    )
    return "Item" not in item


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevApi]:
    runtime = start_local_runtime(
        Path(tmp_path_factory.mktemp("slow-readers")), "--idle-timeout", str(IDLE_TIMEOUT), "--quiet"
    )
    try:
        yield DevApi(runtime)
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def poster(dev: DevApi) -> Iterator[Poster]:
    poster = Poster(dev)
    yield poster
    poster.close()


def test_posts_to_a_slow_reader_are_capped_and_it_is_cut_off(dev: DevApi, poster: Poster) -> None:
    """Before the cap the runtime kept every post for a reader that never reads (RSS grew
    without bound with 20 of them); now it holds at most 1 MiB, then closes the connection."""
    stalled = StalledClient(dev, "stalled-posts")
    bystander = Client(dev, "bystander-posts")
    try:
        held, answers, sent_to_bystander = 0, [], 0
        deadline = time.monotonic() + 90
        while stalled.connection_id in dev.connections():
            assert time.monotonic() < deadline, f"never cut off; holds {dev.unsent()}"
            answers += poster.post_all([stalled.connection_id] * 4, FILLER)
            poster.post(
                bystander.connection_id, json.dumps({"type": "tick", "n": sent_to_bystander}).encode()
            )
            sent_to_bystander += 1
            held = max(held, dev.unsent().get(stalled.connection_id, 0))
            assert held <= MAX_BACKLOG_BYTES, f"{held} bytes held for a reader that does not read"
        wait_until(stalled.reset, timeout=CLOSE_BOUND_SECONDS + 10)
        wait_until(lambda: disconnected(dev, stalled.connection_id), timeout=20)
        assert poster.post(stalled.connection_id, b'{"type":"late"}') == "GoneException"
        # The slow reader never held up anyone else's frames.
        ticks = bystander.wait_for(lambda f: f.get("n") == sent_to_bystander - 1, timeout=10)
        assert ticks is not None, bystander.frames[-3:]
        assert [f["n"] for _, f in bystander.frames if f.get("type") == "tick"] == list(
            range(sent_to_bystander)
        )
        print(
            f"\nslow reader cut off after {answers.count('ok')} posts of {len(FILLER)} bytes; "
            f"the runtime held at most {held} bytes for it"
        )
    finally:
        stalled.close()
        bystander.close()


def test_route_responses_to_a_slow_reader_are_capped(dev: DevApi) -> None:
    """The same cap for route responses (history replies of about 100 KB each)."""
    post_messages(dev.runtime, "writer", BIG_ROOM, ["w" * 4000 for _ in range(25)])
    stalled = StalledClient(dev, "stalled-replies")
    try:
        stalled.send({"action": "join", "room": BIG_ROOM})
        # The replies must come after the join (frames of one connection run side by side).
        wait_until(lambda: joined(dev, stalled), timeout=20)
        held, requests = 0, 0
        deadline = time.monotonic() + 120
        while stalled.connection_id in dev.connections():
            assert time.monotonic() < deadline, f"never cut off; holds {dev.unsent()}"
            stalled.send({"action": "history", "room": BIG_ROOM, "limit": 100})
            requests += 1
            time.sleep(0.1)
            held = max(held, dev.unsent().get(stalled.connection_id, 0))
            assert held <= MAX_BACKLOG_BYTES, f"{held} bytes held for a reader that does not read"
        wait_until(stalled.reset, timeout=CLOSE_BOUND_SECONDS + 10)
        wait_until(lambda: disconnected(dev, stalled.connection_id), timeout=20)
        print(
            f"\nslow reader cut off after {requests} history requests; the runtime held at most {held} bytes"
        )
    finally:
        stalled.close()


def joined(dev: DevApi, client: StalledClient) -> bool:
    item = dev.client("dynamodb").get_item(
        TableName=dev.info["tables"]["connections"], Key={"connectionId": {"S": client.connection_id}}
    )
    return BIG_ROOM in item.get("Item", {}).get("joined", {}).get("M", {})


def test_an_idle_slow_reader_is_reset_within_the_bound(dev: DevApi, poster: Poster) -> None:
    """Before: the idle close waited on a drain that never came (the probe saw sockets open
    with 2.8 MB queued 195 s later); then the abort left the socket in FIN_WAIT1 behind its
    queued bytes, so the client never learnt that it was closed."""
    stalled = StalledClient(dev, "stalled-idle")
    try:
        fill(dev, poster, [stalled], STUCK_BYTES)
        stalled.send({"action": "ping"})  # the idle timer starts again here
        elapsed = wait_until(stalled.reset, timeout=IDLE_TIMEOUT + CLOSE_BOUND_SECONDS + 15)
        print(
            f"\nidle slow reader reset {elapsed:.1f} s after its last frame (idle timeout {IDLE_TIMEOUT} s)"
        )
        assert stalled.connection_id not in dev.connections()
        wait_until(lambda: disconnected(dev, stalled.connection_id), timeout=20)
    finally:
        stalled.close()


def test_shutdown_resets_twenty_stuck_connections_at_once(tmp_path: Path) -> None:
    """SIGTERM with 20 readers whose close frames cannot be written: before, 2 s each, one
    after another (44.6 s for 20 in the probe)."""
    runtime = start_local_runtime(tmp_path, "--quiet")
    clients: list[StalledClient] = []
    try:
        dev = DevApi(runtime)
        clients = [StalledClient(dev, f"stuck-{n}") for n in range(20)]
        poster = Poster(dev)
        try:
            fill(dev, poster, clients, STUCK_BYTES)
        finally:
            poster.close()
        started = time.monotonic()
        runtime.process.send_signal(signal.SIGTERM)
        runtime.process.wait(timeout=60)
        elapsed = time.monotonic() - started
        print(f"\nSIGTERM with 20 stuck connections: stopped in {elapsed:.1f} s")
        # 20 serial closes of 2 s each would take 40 s; one bound for all, and the runtime's own
        # shutdown (the functions' $disconnect, moto), stays well under 20 s.
        assert elapsed < 15, f"shutdown took {elapsed:.1f} s"
        assert runtime.process.returncode == 0
        assert all(client.reset() for client in clients), "a socket was left open behind its backlog"
    finally:
        for client in clients:
            client.close()
        runtime.stop()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_host_ipv6_wildcard_serves_both_stacks_and_prints_a_reachable_url(tmp_path: Path) -> None:
    runtime: LocalRuntime = start_local_runtime(tmp_path, "--host", "::", "--quiet")
    try:
        port = int(runtime.ws_url.rsplit(":", 1)[1])
        token = runtime.token("dual")  # through the printed http:// URL
        query = urllib.parse.urlencode({"token": token})
        for url in (f"{runtime.ws_url}/?{query}", f"ws://[::1]:{port}/?{query}"):
            with connect(url, open_timeout=20) as ws:
                ws.send(json.dumps({"action": "ping"}))
                assert json.loads(ws.recv(timeout=20))["type"] == "pong", url
    finally:
        runtime.stop()
