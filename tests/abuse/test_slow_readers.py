"""Clients that stop reading, against a real `dynamowave serve`: every close is bounded.

A raw TCP client does the WebSocket handshake by hand and then never reads again, so its
socket buffers fill and the server's writes (and its close frame) wait on a drain that never
comes: the idle close still ends, and SIGTERM closes 20 such connections at once within one
bound. And `--host ::` serves both stacks.
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
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.clients.local_runtime import LocalRuntime, post_messages, runtime_available, start_local_runtime

pytestmark = pytest.mark.skipif(
    runtime_available() is not None, reason=f"runtime missing: {runtime_available()}"
)


class StalledClient:
    """A WebSocket client that sends what it is told and never reads a byte after the handshake."""

    def __init__(self, runtime: LocalRuntime, token: str) -> None:
        port = int(runtime.ws_url.rsplit(":", 1)[1])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up quickly
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        path = "/?" + urllib.parse.urlencode({"token": token})
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

    def close(self) -> None:
        self.sock.close()


def connections(runtime: LocalRuntime) -> list[str]:
    import urllib.request

    with urllib.request.urlopen(f"{runtime.http_url}dev/connections", timeout=30) as response:
        return list(json.loads(response.read())["connections"])


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        time.sleep(0.2)
    return time.monotonic() - started


BIG_ROOM = "bulky"
# Enough unread replies to fill the socket buffers, so that the close frame cannot be written.
IDLE_REPLIES = int(os.environ.get("DYNAMOWAVE_IDLE_REPLIES", "12"))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> LocalRuntime:
    server = start_local_runtime(
        Path(tmp_path_factory.mktemp("slow-readers")), "--idle-timeout", "20", "--quiet"
    )
    # 25 messages of 4,000 characters: one `history` reply is about 100 KB.
    post_messages(server, "writer", BIG_ROOM, ["w" * 4000 for _ in range(25)])
    yield server  # type: ignore[misc]
    server.stop()


def stall_with_a_backlog(runtime: LocalRuntime, user: str, replies: int) -> StalledClient:
    client = StalledClient(runtime, runtime.token(user))
    client.send({"action": "join", "room": BIG_ROOM})
    for _ in range(replies):
        client.send({"action": "history", "room": BIG_ROOM, "limit": 100})
    return client


def test_an_idle_slow_reader_is_closed_within_the_bound(runtime: LocalRuntime) -> None:
    """Before: aiohttp's close waited on a drain that never came (> 195 s after the idle close)."""
    before = set(connections(runtime))
    client = stall_with_a_backlog(runtime, "stalled-idle", replies=IDLE_REPLIES)
    try:
        wait_until(lambda: len(set(connections(runtime)) - before) == 1, timeout=20)
        # Idle timeout 20 s, the close bound 2 s, and slack for a loaded machine.
        elapsed = wait_until(lambda: not set(connections(runtime)) - before, timeout=45)
        print(f"\nslow reader closed {elapsed:.1f} s after it was first listed")
    finally:
        client.close()


def test_shutdown_closes_twenty_stuck_connections_at_once(tmp_path: Path) -> None:
    """SIGTERM with 20 slow readers whose close frames cannot be written: before, 2 s each, one
    after another (44.6 s for 20 in the probe)."""
    runtime = start_local_runtime(tmp_path, "--quiet")
    clients: list[StalledClient] = []
    try:
        post_messages(runtime, "writer", BIG_ROOM, ["w" * 4000 for _ in range(25)])
        clients = [stall_with_a_backlog(runtime, f"stuck-{n}", IDLE_REPLIES) for n in range(20)]
        wait_until(lambda: len(connections(runtime)) == 20, timeout=30)
        time.sleep(3)  # their replies are written (and stuck) by now
        started = time.monotonic()
        runtime.process.send_signal(signal.SIGTERM)
        runtime.process.wait(timeout=60)
        elapsed = time.monotonic() - started
        print(f"\nSIGTERM with 20 stuck connections: stopped in {elapsed:.1f} s")
        assert elapsed < 20, f"shutdown took {elapsed:.1f} s"
        assert runtime.process.returncode == 0
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
    runtime = start_local_runtime(tmp_path, "--host", "::", "--quiet")
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
