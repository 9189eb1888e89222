"""The ``@connections`` Management API on the gateway's port, answering as API Gateway answers.

boto3's ``apigatewaymanagementapi`` client is a rest-json client: it reads the error code from
the ``x-amzn-ErrorType`` header (``GoneException:...``) or the body's ``__type``/``code``, and the
message from ``message``. Every error below sets both, so botocore raises the modelled
exception (``client.exceptions.GoneException`` and friends) with the right status code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, Final
from urllib.parse import unquote

from aiohttp import web
from botocore import handlers
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders

from dynamowave.local.faults import FaultInjector
from dynamowave.local.gateway import Connection, WebSocketGateway, iso_time

log = logging.getLogger("dynamowave.management")

# DeleteConnection: API Gateway closes the socket normally (the client sees 1000).
DELETE_CLOSE_CODE = 1000
# A post answered in process waits at most this long for the event loop (botocore's read timeout).
IN_PROCESS_TIMEOUT_SECONDS: Final = 5.0


@dataclass(frozen=True)
class Answer:
    """What API Gateway answers a Management API call: a status and, for errors, a typed body."""

    status: int
    error_type: str = ""
    message: str | None = None

    def body(self) -> bytes:
        if not self.error_type:
            return b""
        return json.dumps({"message": self.message, "__type": self.error_type}).encode("utf-8")

    def headers(self) -> dict[str, str]:
        if not self.error_type:
            return {}
        return {
            "x-amzn-ErrorType": self.error_type,
            "x-amzn-RequestId": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }


OK = Answer(200)
GONE = Answer(410, "GoneException", None)


def respond(answer: Answer) -> web.Response:
    return web.Response(status=answer.status, body=answer.body(), headers=answer.headers())


class ManagementApi:
    def __init__(self, gateway: WebSocketGateway, faults: FaultInjector) -> None:
        self._gateway = gateway
        self._faults = faults
        self.posts = 0  # PostToConnection calls received, over HTTP or in process

    def add_routes(self, app: web.Application, stage: str) -> None:
        for prefix in (f"/{stage}", ""):
            path = prefix + "/@connections/{connection_id}"
            app.router.add_post(path, self.post)
            app.router.add_get(path, self.get)
            app.router.add_delete(path, self.delete)

    async def _fault(self, *, allow_gone: bool, connection: Connection | None) -> Answer | None:
        latency = self._faults.management_latency_seconds()
        if latency > 0:
            await asyncio.sleep(latency)
        fault = self._faults.management_fault(allow_gone=allow_gone)
        if fault == "throttle":
            return Answer(429, "LimitExceededException", "Rate exceeded")
        if fault == "error":
            return Answer(500, "InternalServerErrorException", "Internal server error")
        if fault == "gone" and connection is not None:
            # The connection vanishes the way a lost one does: no $disconnect, stale records stay.
            self._gateway.drop_silently(connection)
            return GONE
        return None

    def answers_at_once(self) -> bool:
        """No modelled latency: a post's only wait is a slow socket's back-pressure."""
        return self._faults.management_latency_seconds() <= 0

    def _live(self, connection_id: str) -> Connection | None:
        connection = self._gateway.registry.get(connection_id)
        if connection is None or connection.closing or connection.ws.closed:
            return None
        return connection

    async def deliver(self, connection_id: str, data: bytes) -> Answer:
        """PostToConnection: faults first (as a throttle answers before anything is sent), then
        the size limit, then the frame to the socket if it is still open."""
        self.posts += 1
        fault = await self._fault(allow_gone=True, connection=self._live(connection_id))
        if fault is not None:
            return fault
        if len(data) > self._gateway.config.message_limit:
            return Answer(413, "PayloadTooLargeException", "Message too long")
        connection = self._live(connection_id)  # it may have closed meanwhile
        if connection is None:
            return GONE
        try:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                await connection.ws.send_bytes(data)
            else:
                await connection.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            return GONE
        return OK

    async def post(self, request: web.Request) -> web.Response:
        return respond(await self.deliver(request.match_info["connection_id"], await request.read()))

    async def get(self, request: web.Request) -> web.Response:
        connection = self._live(request.match_info["connection_id"])
        fault = await self._fault(allow_gone=False, connection=connection)
        if fault is not None:
            return respond(fault)
        if connection is None:
            return respond(GONE)
        body: dict[str, Any] = {
            "connectedAt": iso_time(connection.connected_at),
            "lastActiveAt": iso_time(connection.last_active),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
        }
        return web.json_response(body)

    async def delete(self, request: web.Request) -> web.Response:
        connection = self._live(request.match_info["connection_id"])
        fault = await self._fault(allow_gone=False, connection=connection)
        if fault is not None:
            return respond(fault)
        if connection is None:
            return respond(GONE)
        # Unregistered now (posts answer 410 at once); the close handshake and $disconnect follow.
        task = asyncio.create_task(self._gateway.close_connection(connection, DELETE_CLOSE_CODE, ""))
        self._gateway.track(task)
        return web.Response(status=204)


class _Body:
    """The raw stream an AWSResponse reads its content from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _body_bytes(body: object) -> bytes:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if body is None:
        return b""
    data = body.read()  # type: ignore[attr-defined]
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


class InProcessPosts:
    """Answers the PostToConnection calls this process's functions make to this runtime's
    endpoint without the loopback HTTP hop, as moto's mock answers boto3 in tests.

    A botocore ``before-send`` handler, installed for every botocore session created while the
    runtime runs (the way moto installs its own): the functions still build, sign and send the
    real request; only parsing it again as HTTP on the event loop is skipped, which was about
    40 % of the runtime's CPU under fan-out (docs/benchmarks.md). The answer is the endpoint's
    own (`ManagementApi.deliver`: faults, 413, 410). Other processes (redrive, curl, tests)
    reach the same logic over HTTP.
    """

    EVENT: Final = "before-send.apigatewaymanagementapi"

    def __init__(self, api: ManagementApi, endpoint: str, loop: asyncio.AbstractEventLoop) -> None:
        self._api = api
        self._prefix = endpoint.rstrip("/") + "/@connections/"
        self._loop = loop
        self._loop_thread = threading.get_ident()  # built on the loop's own thread
        # Posts wait here for the loop; one wake-up takes every post queued by then (a fan-out
        # has dozens in flight), instead of a thread-safe call and a task per post.
        self._lock = threading.Lock()
        self._waiting: list[tuple[str, bytes, SimpleQueue[Answer | BaseException]]] = []
        self._wake_scheduled = False

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if request.method != "POST" or not request.url.startswith(self._prefix):
            return None
        if threading.get_ident() == self._loop_thread:
            return None  # waiting here would block the loop that must answer: take the HTTP path
        # A one-slot queue, C-implemented: the cheapest way for the loop to hand back an answer.
        answered: SimpleQueue[Answer | BaseException] = SimpleQueue()
        post = (unquote(request.url[len(self._prefix) :]), _body_bytes(request.body), answered)
        with self._lock:
            self._waiting.append(post)
            wake, self._wake_scheduled = not self._wake_scheduled, True
        if wake:
            self._loop.call_soon_threadsafe(self._take_waiting)
        try:
            answer = answered.get(timeout=IN_PROCESS_TIMEOUT_SECONDS)
        except Empty:
            answer = Answer(504, "GatewayTimeoutException", "no answer from the gateway in time")
        if isinstance(answer, BaseException):
            raise answer
        headers = HTTPHeaders.from_dict(answer.headers())
        return AWSResponse(request.url, answer.status, headers, _Body(answer.body()))

    def _take_waiting(self) -> None:
        with self._lock:
            posts, self._waiting, self._wake_scheduled = self._waiting, [], False
        if self._api.answers_at_once():
            self._loop.create_task(self._deliver_in_turn(posts))
        else:  # modelled latency: the posts wait side by side, as concurrent HTTP calls would
            for post in posts:
                self._loop.create_task(self._deliver_in_turn([post]))

    async def _deliver_in_turn(
        self, posts: list[tuple[str, bytes, SimpleQueue[Answer | BaseException]]]
    ) -> None:
        for connection_id, data, answered in posts:
            try:
                answered.put(await self._api.deliver(connection_id, data))
            except Exception as error:  # never leave a posting thread waiting
                answered.put(error)

    def install(self) -> None:
        handlers.BUILTIN_HANDLERS.append((self.EVENT, self))

    def uninstall(self) -> None:
        if (self.EVENT, self) in handlers.BUILTIN_HANDLERS:
            handlers.BUILTIN_HANDLERS.remove((self.EVENT, self))
