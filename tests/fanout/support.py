"""Test doubles shared by the fan-out, janitor and redrive tests.

`FakeManagementApi` is API Gateway's ``@connections`` API on 127.0.0.1 (port 0), answering each
call with a scripted status, because moto's never answers 410 or 429. The functions reach it
through the real boto3 ``apigatewaymanagementapi`` client (MANAGEMENT_API_ENDPOINT), so the
errors are parsed by botocore exactly as AWS's are.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import boto3
import pytest

from dynamowave.local.provisioning import Resources
from dynamowave.testing.aws import configure_functions, moto_resources
from functions.chat.clock import now_ms
from functions.chat.settings import ENV

STAGE = "test"
ERROR_TYPES = {
    403: "ForbiddenException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
    500: "InternalServerErrorException",
    503: "ServiceUnavailableException",
}


@dataclass
class Call:
    method: str
    connection_id: str
    status: int
    body: bytes = b""


@dataclass
class FakeManagementApi:
    """Scripted ``POST/GET/DELETE /{stage}/@connections/{id}``.

    * `script(id, 429, 429)`: the next calls on `id` answer those statuses, whatever else holds.
    * `gone`: ids answering 410 (closed connections); a successful DELETE adds its id.
    * `default_status`: what every other call answers (200).
    * `info`: GetConnection's (connectedAt, lastActiveAt) per id, epoch ms (default: now).
    * `on_request`: called with each Call before it is answered (tests end budgets from it).
    """

    gone: set[str] = field(default_factory=set)
    default_status: int = 200
    info: dict[str, tuple[int, int]] = field(default_factory=dict)
    on_request: Callable[[Call], None] | None = None
    calls: list[Call] = field(default_factory=list)
    _scripts: dict[str, deque[int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def script(self, connection_id: str, *statuses: int) -> None:
        with self._lock:
            self._scripts.setdefault(connection_id, deque()).extend(statuses)

    def answer(self, method: str, connection_id: str, body: bytes) -> int:
        with self._lock:
            if self._scripts.get(connection_id):
                status = self._scripts[connection_id].popleft()
            elif connection_id in self.gone:
                status = 410
            else:
                status = self.default_status
            if method == "DELETE" and status < 300:
                self.gone.add(connection_id)  # API Gateway closes it: later calls answer 410
            call = Call(method, connection_id, status, body)
            self.calls.append(call)
        if self.on_request is not None:
            self.on_request(call)
        return status

    # -- what the tests read ----------------------------------------------------------------------

    def delivered(self) -> list[tuple[str, dict[str, Any]]]:
        """(connection id, frame) of every POST that was answered 200."""
        with self._lock:
            return [
                (c.connection_id, json.loads(c.body))
                for c in self.calls
                if c.method == "POST" and c.status == 200
            ]

    def delivered_to(self, connection_id: str) -> list[dict[str, Any]]:
        return [frame for target, frame in self.delivered() if target == connection_id]

    def attempts(self, method: str, connection_id: str) -> list[int]:
        with self._lock:
            return [c.status for c in self.calls if c.method == method and c.connection_id == connection_id]

    def methods_for(self, connection_id: str) -> list[str]:
        with self._lock:
            return [c.method for c in self.calls if c.connection_id == connection_id]

    # -- server -----------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/{STAGE}"

    def start(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                marker = "/@connections/"
                if marker not in path:
                    self._send(404, {"message": "not found"})
                    return
                connection_id = unquote(path.split(marker, 1)[1])
                status = api.answer(method, connection_id, body)
                if status >= 300:
                    error_type = ERROR_TYPES.get(status, "BadRequestException")
                    self._send(status, {"message": None, "__type": error_type}, error_type)
                elif method == "GET":
                    connected, active = api.info.get(connection_id, (now_ms(), now_ms()))
                    self._send(
                        200,
                        {
                            "connectedAt": _iso(connected),
                            "lastActiveAt": _iso(active),
                            "identity": {"sourceIp": "127.0.0.1", "userAgent": "test"},
                        },
                    )
                else:
                    self._send(200 if method == "POST" else 204, None)

            def _send(self, status: int, payload: Any, error_type: str | None = None) -> None:
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="fake-management-api", daemon=True).start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def sqs_event(bodies: Iterable[str], queue_arn: str) -> dict[str, Any]:
    """An SQS event as Lambda's event source mapping builds it."""
    records = []
    for body in bodies:
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(now_ms()),
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": str(now_ms()),
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def drain(queue_url: str) -> list[str]:
    """Every visible message body on a queue (received and deleted)."""
    sqs = boto3.client("sqs")
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def management_api() -> Iterator[FakeManagementApi]:
    api = FakeManagementApi()
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def aws() -> Iterator[Resources]:
    """moto in-process, with the tables and queues the stack creates (from functions.chat.schema)."""
    with moto_resources("fo") as resources:
        yield resources


def configure(
    monkeypatch: pytest.MonkeyPatch, resources: Resources, endpoint: str, **overrides: str | int
) -> None:
    """The functions' environment, as the stack sets it, then a fresh set of cached clients."""
    fast: dict[str, str | int] = {
        # Fast, deterministic tests: tiny backoffs, no SQS delay between attempts.
        ENV.POST_BACKOFF_BASE_MS: 1,
        ENV.POST_BACKOFF_CAP_MS: 5,
        ENV.FANOUT_RETRY_DELAY_SECONDS: 0,
        ENV.FANOUT_DEADLINE_SAFETY_MS: 1000,
        ENV.JANITOR_BUDGET_SAFETY_MS: 1000,
    }
    configure_functions(
        monkeypatch,
        resources,
        management_endpoint=endpoint,
        jwt_secret="fanout-test-secret-0123456789abcdef",
        overrides={**fast, **overrides},
    )
