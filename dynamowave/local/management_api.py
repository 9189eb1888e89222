"""The ``@connections`` Management API on the gateway's port, answering as API Gateway answers.

boto3's ``apigatewaymanagementapi`` client is a rest-json client: it reads the error code from
the ``x-amzn-ErrorType`` header (``GoneException:...``) or the body's ``__type``/``code``, and the
message from ``message``. Every error below sets both, so botocore raises the modelled
exception (``client.exceptions.GoneException`` and friends) with the right status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

from aiohttp import web
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders

from dynamowave.compat.botocore_hooks import add_builtin_handler
from dynamowave.local.faults import FaultInjector
from dynamowave.local.gateway import (
    Connection,
    WebSocketGateway,
    iso_time,
    request_identity,
    unsent_bytes,
)
from dynamowave.local.sigv4 import SignatureRejected, SigV4Verifier

if TYPE_CHECKING:
    from dynamowave.local.iam import Policies

log = logging.getLogger("dynamowave.management")

# DeleteConnection: API Gateway closes the socket normally (the client sees 1000), and its
# $disconnect event says so in these words.
DELETE_CLOSE_CODE = 1000
DELETE_CLOSE_REASON = "Connection Closed Normally"
# A post answered in process waits at most this long for the event loop (botocore's read timeout).
IN_PROCESS_TIMEOUT_SECONDS: Final = 5.0
# A connection with more unsent bytes than this is a slow reader: its frames queue on their own.
SLOW_READER_BYTES: Final = 64 * 1024


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

    def as_aws_response(self, url: str) -> AWSResponse:
        """This answer as botocore reads one off the wire (for calls answered without HTTP)."""
        return AWSResponse(url, self.status, HTTPHeaders.from_dict(self.headers()), BytesBody(self.body()))

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


class PostAuthority:
    """Who may call ``@connections``: the SigV4 signature first (as API Gateway authenticates every
    call), then under `serve --iam` the signer's ``execute-api:ManageConnections`` grant.

    Checked wherever a call arrives: over HTTP, in process (`InProcessPosts`) and in a fan-out
    worker process (dynamowave/local/workers.py), so every path answers the same 403s.
    """

    def __init__(
        self, verifier: SigV4Verifier | None, *, region: str, account_id: str, api_id: str, stage: str
    ) -> None:
        self.verifier = verifier
        # `serve --iam`: the functions' grants (dynamowave/local/iam.py); None allows every signer.
        self.policies: Policies | None = None
        self._arn_prefix = f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}"

    def check(self, method: str, url: str, headers: Any, body: bytes) -> Answer | None:
        """None if the call is signed by credentials the runtime knows and allowed, else the 403."""
        if self.verifier is None:
            return None
        try:
            verified = self.verifier.verify(method, url, headers, body)
        except SignatureRejected as rejected:
            return Answer(
                rejected.rejection.status, rejected.rejection.error_type, rejected.rejection.message
            )
        return self._authorize(verified.principal, method, url)

    def _authorize(self, principal: str, method: str, url: str) -> Answer | None:
        """`serve --iam`: execute-api:ManageConnections on this method's @connections ARN."""
        policies = self.policies
        if policies is None or not policies.governs(principal):
            return None
        connection_id = unquote(urlsplit(url).path.rsplit("/", 1)[-1])  # the ID, not its URL form
        resource = f"{self._arn_prefix}/{method.upper()}/@connections/{connection_id}"
        if policies.allows(principal, "execute-api:ManageConnections", resource):
            return None
        return Answer(
            403,
            "AccessDeniedException",
            policies.deny(principal, "execute-api:ManageConnections", resource),
        )


class ManagementApiEmulator:
    def __init__(
        self, gateway: WebSocketGateway, faults: FaultInjector, verifier: SigV4Verifier | None = None
    ) -> None:
        self._gateway = gateway
        self._faults = faults
        config = gateway.config
        self.authority = PostAuthority(
            verifier,
            region=config.region,
            account_id=config.account_id,
            api_id=config.api_id,
            stage=config.stage,
        )
        self._posts = 0
        self._posts_lock = threading.Lock()  # in-process posts are counted on the callers' threads
        # Frames waiting behind a slow reader's full socket buffer, per connection, in order.
        self._backlogs: dict[str, deque[bytes]] = {}

    @property
    def policies(self) -> Policies | None:
        return self.authority.policies

    @policies.setter
    def policies(self, policies: Policies | None) -> None:
        self.authority.policies = policies

    @property
    def posts(self) -> int:
        """PostToConnection calls received, over HTTP, in process or from a worker process."""
        return self._posts

    def _count_post(self) -> None:
        with self._posts_lock:
            self._posts += 1

    def add_routes(self, app: web.Application, stage: str) -> None:
        for prefix in (f"/{stage}", ""):
            path = prefix + "/@connections/{connection_id}"
            app.router.add_post(path, self.post)
            app.router.add_get(path, self.get)
            app.router.add_delete(path, self.delete)

    def authenticate(self, method: str, url: str, headers: Any, body: bytes) -> Answer | None:
        """None if the request is signed by credentials the runtime knows, else API Gateway's 403."""
        return self.authority.check(method, url, headers, body)

    async def _refusal(self, request: web.Request) -> tuple[Answer | None, bytes]:
        """The HTTP request's signature check, and its body (read once for both)."""
        body = await request.read()
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        return self.authenticate(request.method, url, request.headers, body), body

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
        """No fault or latency configured: a post's answer depends only on the connection."""
        return self._faults.management_faultless()

    def _live(self, connection_id: str) -> Connection | None:
        connection = self._gateway.registry.get(connection_id)
        if connection is None or connection.closing or connection.ws.closed:
            return None
        return connection

    async def deliver(self, connection_id: str, data: bytes) -> Answer:
        """PostToConnection: faults first (as a throttle answers before anything is sent), then
        the size limit, then the frame to the socket if it is still open."""
        self._count_post()
        fault = await self._fault(allow_gone=True, connection=self._live(connection_id))
        if fault is not None:
            return fault
        if len(data) > self._gateway.config.message_limit:
            return Answer(413, "PayloadTooLargeException", "Message too long")
        # It may have closed meanwhile; like an accepted post, it waits behind a slow reader's
        # backlog rather than holding this answer until the socket drains.
        return OK if await self.send_accepted(connection_id, data) else GONE

    def accept(self, connection_id: str, data: bytes) -> Answer:
        """PostToConnection without faults, answered on the caller's thread as API Gateway
        answers: 200 once the frame is accepted for an open connection, not once it is written.
        The frame is then `send_accepted` on the loop."""
        self._count_post()
        if len(data) > self._gateway.config.message_limit:
            return Answer(413, "PayloadTooLargeException", "Message too long")
        return GONE if self._live(connection_id) is None else OK

    async def send_accepted(self, connection_id: str, data: bytes) -> bool:
        """Write a post's frame, or queue it behind the connection's backlog; never waits for
        a socket to drain.

        False if the connection is gone (closed after its post was accepted: lost with the
        socket, as on AWS) or this frame would put it over `MAX_BACKLOG_BYTES` (it is cut off).
        """
        connection = self._live(connection_id)
        if connection is None or self._gateway.over_backlog(connection, len(data)):
            return False
        backlog = self._backlogs.get(connection_id)
        if backlog is None and unsent_bytes(connection) + len(data) <= SLOW_READER_BYTES:
            # Stays under the transport's high-water mark (64 KiB), so the write does not wait
            # for a drain. (A socket that closes under it: its own close handling follows.)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await _write(connection, data)
            return True
        if backlog is None:
            # This reader is behind: its frames wait in order on their own task, so that its
            # back-pressure never holds up the frames of every other connection.
            backlog = self._backlogs[connection_id] = deque()
            self._gateway.track(asyncio.create_task(self._send_backlog(connection, backlog)))
        backlog.append(data)
        connection.unsent += len(data)
        return True

    async def _send_backlog(self, connection: Connection, backlog: deque[bytes]) -> None:
        try:
            while backlog:
                data = backlog.popleft()
                connection.unsent -= len(data)  # from here on it is in the transport's buffer
                await _write(connection, data)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            connection.unsent -= sum(map(len, backlog))
            if self._backlogs.get(connection.id) is backlog:
                del self._backlogs[connection.id]

    async def post(self, request: web.Request) -> web.Response:
        refusal, body = await self._refusal(request)
        if refusal is not None:
            return respond(refusal)
        return respond(await self.deliver(request.match_info["connection_id"], body))

    async def _addressed(self, request: web.Request) -> Connection | web.Response:
        """The live connection a GET or DELETE names, or the answer that refuses it (a signature,
        an injected fault, 410)."""
        refusal, _ = await self._refusal(request)
        if refusal is not None:
            return respond(refusal)
        connection = self._live(request.match_info["connection_id"])
        fault = await self._fault(allow_gone=False, connection=connection)
        if fault is not None:
            return respond(fault)
        return respond(GONE) if connection is None else connection

    async def get(self, request: web.Request) -> web.Response:
        connection = await self._addressed(request)
        if isinstance(connection, web.Response):
            return connection
        body: dict[str, Any] = {
            "connectedAt": iso_time(connection.connected_at),
            "lastActiveAt": iso_time(connection.last_active),
            "identity": request_identity(connection.source_ip, connection.user_agent),
        }
        return web.json_response(body)

    async def delete(self, request: web.Request) -> web.Response:
        connection = await self._addressed(request)
        if isinstance(connection, web.Response):
            return connection
        # Unregistered now (posts answer 410 at once); the close handshake and $disconnect follow.
        task = asyncio.create_task(
            self._gateway.close_connection(connection, DELETE_CLOSE_CODE, DELETE_CLOSE_REASON)
        )
        self._gateway.track(task)
        return web.Response(status=204)


async def _write(connection: Connection, data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        await connection.ws.send_bytes(data)
    else:
        await connection.ws.send_str(text)


class BytesBody:
    """The raw stream an AWSResponse reads its content from, for answers made in process."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def body_bytes(body: object) -> bytes:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if body is None:
        return b""
    data = body.read()  # type: ignore[attr-defined]
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


# (connection id, frame, where the caller waits for the loop's answer, or None: already answered)
_Post = tuple[str, bytes, "SimpleQueue[Answer | BaseException] | None"]


class InProcessPosts:
    """Answers the PostToConnection calls this process's functions make to this runtime's
    endpoint without the loopback HTTP hop, as moto's mock answers boto3 in tests.

    A botocore ``before-send`` handler, installed for every botocore session created while the
    runtime runs (the way moto installs its own): the functions still build, sign and send the
    real request; only parsing it again as HTTP on the event loop is skipped, which was about
    40 % of the runtime's CPU under fan-out (docs/benchmarks.md). The answer is the endpoint's
    own (`ManagementApiEmulator.deliver`: faults, 413, 410). Other processes (redrive, curl, tests)
    reach the same logic over HTTP.
    """

    EVENT: Final = "before-send.apigatewaymanagementapi"

    def __init__(self, api: ManagementApiEmulator, endpoint: str, loop: asyncio.AbstractEventLoop) -> None:
        self._api = api
        self._prefix = endpoint.rstrip("/") + "/@connections/"
        self._loop = loop
        self._loop_thread = threading.get_ident()  # built on the loop's own thread
        # Posts queue here for the loop; one wake-up takes every post queued by then (a fan-out
        # has dozens in flight), instead of a thread-safe call and a task per post.
        self._lock = threading.Lock()
        self._waiting: list[_Post] = []
        self._wake_scheduled = False
        self._remove: Callable[[], None] = lambda: None

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if request.method != "POST" or not request.url.startswith(self._prefix):
            return None
        if threading.get_ident() == self._loop_thread:
            return None  # waiting here would block the loop that must answer: take the HTTP path
        connection_id, data = unquote(request.url[len(self._prefix) :]), body_bytes(request.body)
        refusal = self._api.authenticate(request.method, request.url, request.headers.items(), data)
        if refusal is not None:
            answer = refusal
        elif self._api.answers_at_once():
            answer = self._api.accept(connection_id, data)
            if answer is OK:
                self._hand_to_loop((connection_id, data, None))
        else:
            answer = self._wait_for_answer(connection_id, data)
        return answer.as_aws_response(request.url)

    def _wait_for_answer(self, connection_id: str, data: bytes) -> Answer:
        """Faults or latency are configured: the loop decides the answer, as over HTTP."""
        # A one-slot queue, C-implemented: the cheapest way for the loop to hand back an answer.
        answered: SimpleQueue[Answer | BaseException] = SimpleQueue()
        self._hand_to_loop((connection_id, data, answered))
        try:
            answer = answered.get(timeout=IN_PROCESS_TIMEOUT_SECONDS)
        except Empty:
            return Answer(504, "GatewayTimeoutException", "no answer from the gateway in time")
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _hand_to_loop(self, post: _Post) -> None:
        with self._lock:
            self._waiting.append(post)
            wake, self._wake_scheduled = not self._wake_scheduled, True
        if wake:
            self._loop.call_soon_threadsafe(self._take_waiting)

    def _take_waiting(self) -> None:
        with self._lock:
            posts, self._waiting, self._wake_scheduled = self._waiting, [], False
        accepted = [post for post in posts if post[2] is None]
        if accepted:  # in order, one task: ack before the sender's own copy, as they were posted
            self._loop.create_task(self._send_in_turn(accepted))
        for post in posts:  # answers the loop decides wait side by side, as concurrent HTTP calls
            if post[2] is not None:
                self._loop.create_task(self._deliver(post[0], post[1], post[2]))

    async def _send_in_turn(self, posts: list[_Post]) -> None:
        for connection_id, data, _ in posts:
            await self._api.send_accepted(connection_id, data)

    async def _deliver(
        self, connection_id: str, data: bytes, answered: SimpleQueue[Answer | BaseException]
    ) -> None:
        try:
            answered.put(await self._api.deliver(connection_id, data))
        except Exception as error:  # never leave a posting thread waiting
            answered.put(error)

    def install(self) -> None:
        self.uninstall()
        self._remove = add_builtin_handler(self.EVENT, self)

    def uninstall(self) -> None:
        self._remove()
