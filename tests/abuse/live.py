"""Helpers for tests against a real `dynamowave serve` (subprocess): clients, /dev hooks, tables.

Used by the handshake and flooding tests here and by the runtime chaos test.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
from websockets.sync.client import ClientConnection, connect

from functions.chat import protocol
from tests.chaos.invariants import State
from tests.clients.local_runtime import SECRET, LocalRuntime
from tests.queues import peek_jobs

__all__ = ["SECRET", "Client", "DevApi"]

Frame = dict[str, Any]


class DevApi:
    """The runtime's local-only endpoints, and its embedded moto read with the test's own client."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.base = runtime.http_url.rstrip("/")
        self.info = self.call("GET", "/dev/info")[1]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw, status = response.read(), response.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        return status, (json.loads(raw) if raw else None)

    def connections(self) -> list[str]:
        return list(self.call("GET", "/dev/connections")[1]["connections"])

    def unsent(self) -> dict[str, int]:
        """Bytes the runtime holds for each open connection, not yet handed to the kernel."""
        return {key: int(value) for key, value in self.call("GET", "/dev/connections")[1]["unsent"].items()}

    def drop(self, connection_id: str) -> None:
        status, body = self.call(
            "POST", f"/dev/connections/{urllib.parse.quote(connection_id, safe='')}/drop"
        )
        assert status == 204, (status, body)

    def faults(self, config: dict[str, Any]) -> None:
        status, body = self.call("PUT", "/dev/faults", config)
        assert status == 200, body

    def janitor(self) -> dict[str, Any]:
        status, body = self.call("POST", "/dev/janitor")
        assert status == 200 and body["ok"], body
        return dict(body["result"] or {})

    def client(self, service: str) -> Any:
        session: Any = boto3.session.Session()
        return session.client(
            service,
            endpoint_url=self.info["aws_endpoint"],
            region_name=self.info["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def state(self) -> State:
        return State.read(self.client("dynamodb"), self.info["tables"])

    def queue_depth(self, url_key: str = "fanout_queue_url") -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.info[url_key],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def dead_letters(self) -> list[Frame]:
        return peek_jobs(self.client("sqs"), self.info["fanout_dlq_url"], visibility_timeout=60)


class Client:
    """One WebSocket connection with a reader thread that keeps every frame (and its arrival time)."""

    def __init__(
        self, dev: DevApi, user: str, *, rooms: list[str] | None = None, batch: bool = False
    ) -> None:
        self.user = user
        query = {"user": user, **({"rooms": ",".join(rooms)} if rooms else {})}
        token = dev.call("GET", f"/dev/token?{urllib.parse.urlencode(query)}")[1]["token"]
        before = set(dev.connections())
        url = dev.runtime.socket_url(token) + ("&batch=1" if batch else "")
        self.ws: ClientConnection = connect(url, open_timeout=30, max_size=None, compression=None)
        deadline = time.monotonic() + 10
        fresh: set[str] = set()
        while not fresh and time.monotonic() < deadline:
            fresh = set(dev.connections()) - before
        self.connection_id = fresh.pop() if len(fresh) == 1 else ""
        self.frames: list[tuple[float, Frame]] = []  # a `batch` frame's contents, one by one
        self.batches = 0  # `batch` frames received (coalesced delivery)
        self.closed: tuple[int | None, str] | None = None
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self.ws:
                frame = json.loads(message) if isinstance(message, str) else {"binary": message}
                carried = protocol.unbatch(frame)
                with self._cv:
                    self.batches += frame.get("type") == "batch"
                    self.frames.extend((time.monotonic(), f) for f in carried)
                    self._cv.notify_all()
        except Exception:
            pass
        with self._cv:
            self.closed = (self.ws.close_code, self.ws.close_reason or "")
            self._cv.notify_all()

    def send(self, **frame: Any) -> None:
        self.ws.send(json.dumps(frame))

    def wait_for(self, match: Callable[[Frame], bool], timeout: float = 20.0, start: int = 0) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for _, frame in self.frames[start:]:
                    if match(frame):
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed is not None:
                    return None
                self._cv.wait(remaining)

    def wait_closed(self, timeout: float = 20.0) -> tuple[int | None, str] | None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while self.closed is None and time.monotonic() < deadline:
                self._cv.wait(deadline - time.monotonic())
            return self.closed

    def join(self, room: str, **extra: Any) -> Frame:
        mark = len(self.frames)
        self.send(action="join", room=room, **extra)
        reply = self.wait_for(lambda f: f.get("type") in ("joined", "error"), start=mark)
        assert reply is not None and reply["type"] == "joined", reply
        return reply

    def seqs(self, room: str) -> set[int]:
        with self._cv:
            return {
                int(f["seq"]) for _, f in self.frames if f.get("type") == "message" and f.get("room") == room
            }

    def messages(self) -> list[tuple[float, Frame]]:
        with self._cv:
            return [(t, f) for t, f in self.frames if f.get("type") == "message"]

    def close(self) -> None:
        self.ws.close()
        self._thread.join(timeout=10)
