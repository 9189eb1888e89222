"""The WebSocket half of the local API Gateway: handshake, authorizer, routes, limits, lifecycle.

What API Gateway does, in the order it does it:

1. ``$connect``: stage throttle (HTTP 429), identity source (no ``token`` -> HTTP 401 without
   calling the authorizer), the REQUEST authorizer (``Unauthorized`` -> 401, Deny -> 403), then
   the ``$connect`` integration (non-2xx -> the handshake is refused with that status). Only then
   is the handshake completed and the connection registered.
2. Each message: stage throttle (a ``Too Many Requests`` frame), route selection on
   ``$request.body.action`` with ``$default`` as fallback, the integration (a raised error or a
   timeout -> an ``Internal server error`` frame), the route response for two-way routes.
   Messages of one connection are invoked concurrently, as on AWS (order is not guaranteed),
   at most `MAX_INTEGRATIONS_PER_CONNECTION` at a time.
3. Limits: a frame over 32 KB or a message over 128 KB closes with 1009; idle timeout and
   maximum duration close with 1001 ``Going away``.
4. ``$disconnect`` runs exactly once on every close, after the connection is unregistered (so
   PostToConnection to it answers 410), except for a connection dropped "behind the runtime's
   back" by the test hook, which vanishes without it (the stale-record case).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WebSocketError, WSMsgType, web

from dynamowave.compat.aiohttp_frames import GatewayWebSocket
from dynamowave.local import fair_share
from dynamowave.local.config import RuntimeConfig
from dynamowave.local.lambda_runner import (
    Invocation,
    LambdaRunner,
    api_gateway_id,
)
from functions.chat.clock import now_ms

log = logging.getLogger("dynamowave.gateway")

TOKEN_PARAMETER = "token"
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008
# Bytes a connection may have waiting to be written (route responses and posts alike); past it
# the reader is too slow and is closed. API Gateway's own buffer is undocumented.
MAX_BACKLOG_BYTES = 1024 * 1024
SLOW_READER_REASON = "Slow reader: send backlog full"
# A connection's frames in its integration at once; the rest wait in arrival order (their
# requestTimeEpoch is their arrival). On AWS each invocation is its own sandbox; here every
# invocation shares one process, so without a bound one flooding connection takes the CPU and
# the serialized moto from everyone else (docs/local-runtime.md).
MAX_INTEGRATIONS_PER_CONNECTION = 2
# Every server-side close (idle, DeleteConnection, shutdown, a slow reader) ends within this.
CLOSE_TIMEOUT_SECONDS = 2.0
# The disconnectReason API Gateway gives when the client's close frame carries no status code.
NO_STATUS_REASON = "Client-side close frame status not set"
# API Gateway supports no binary frames in incoming payloads: it closes the connection with 1003.
BINARY_REASON = "Binary frames are not supported"
INTERNAL_ERROR = "Internal server error"
TOO_MANY_REQUESTS = "Too Many Requests"  # a message over the stage throttle
TIMED_OUT = "Endpoint request timed out"  # the frame API Gateway sends past the integration timeout


class TokenBucket:
    """API Gateway's stage throttle: ``rate`` requests per second with a bucket of ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._updated = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def request_time(epoch_ms: int) -> str:
    """``21/Nov/2026:23:15:01 +0000``, API Gateway's requestTime format."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def iso_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Connection:
    id: str
    ws: GatewayWebSocket
    request: web.Request
    connected_at: int
    source_ip: str
    user_agent: str | None
    authorizer: dict[str, Any]
    last_active: int = 0
    closing: bool = False
    silent: bool = False  # dropped behind the runtime's back: no $disconnect
    close_code: int | None = None
    close_reason: str = ""
    inflight: set[asyncio.Task[None]] = field(default_factory=set)
    # Frames of this connection in its integration at once (`MAX_INTEGRATIONS_PER_CONNECTION`).
    integrations: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_INTEGRATIONS_PER_CONNECTION)
    )
    # Bytes of posts waiting their turn behind a slow reader (the Management API's backlog);
    # frames already written wait in the transport's buffer instead (see `unsent_bytes`).
    unsent: int = 0

    def mark_closing(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.close_code = code
            self.close_reason = reason


class ConnectionRegistry:
    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}

    def register(self, connection: Connection) -> None:
        self._connections[connection.id] = connection

    def unregister(self, connection_id: str) -> Connection | None:
        return self._connections.pop(connection_id, None)

    def get(self, connection_id: str) -> Connection | None:
        return self._connections.get(connection_id)

    def ids(self) -> list[str]:
        return list(self._connections)

    def __len__(self) -> int:
        return len(self._connections)


def policy_effect(response: Any, method_arn: str) -> str:
    """ "Allow" or "Deny" from an authorizer's IAM policy (an explicit Deny wins, no Allow denies)."""
    if not isinstance(response, dict) or not response.get("principalId"):
        raise ValueError("authorizer response has no principalId")
    document = response.get("policyDocument")
    if not isinstance(document, dict):
        raise ValueError("authorizer response has no policyDocument")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        raise ValueError("policyDocument has no Statement")
    allowed = False
    for statement in statements:
        if not isinstance(statement, dict) or not _covers(statement.get("Resource"), method_arn):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        if statement.get("Effect") == "Allow":
            allowed = True
    return "Allow" if allowed else "Deny"


def _covers(resource: Any, method_arn: str) -> bool:
    import fnmatch

    resources = resource if isinstance(resource, list) else [resource]
    return any(isinstance(r, str) and fnmatch.fnmatchcase(method_arn, r) for r in resources)


def select_route(body: str | None, routes: frozenset[str]) -> str:
    """``$request.body.action`` if it names a configured route, else ``$default``."""
    if body is None:
        return "$default"
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        # Too deep for the parser (a 2 KB frame can nest 1,000 arrays): the function gets it on
        # $default and answers bad_request, as it does for any frame that is not JSON.
        return "$default"
    if isinstance(parsed, dict):
        action = parsed.get("action")
        if isinstance(action, str) and action in routes:
            return action
    return "$default"


class WebSocketGateway:
    def __init__(
        self,
        config: RuntimeConfig,
        runner: LambdaRunner,
        *,
        routes: tuple[str, ...],
        two_way: tuple[str, ...],
    ) -> None:
        self.config = config
        self.runner = runner
        self.registry = ConnectionRegistry()
        self.throttle = TokenBucket(config.throttle_rate, config.throttle_burst)
        self._routes = frozenset(routes)
        self._two_way = frozenset(two_way)
        self._handlers: set[asyncio.Task[Any]] = set()
        self.domain_name = f"{config.host}:{config.port}"
        self.throttled = 0

    # ----- events -----------------------------------------------------------------------------

    def _request_context(
        self,
        connection_id: str,
        connected_at: int,
        route_key: str,
        event_type: str,
        request_id: str,
        source_ip: str,
        user_agent: str | None,
        authorizer: dict[str, Any] | None,
    ) -> dict[str, Any]:
        epoch = now_ms()
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": request_time(epoch),
            "messageDirection": "IN",
            "stage": self.config.stage,
            "connectedAt": connected_at,
            "requestTimeEpoch": epoch,
            "identity": request_identity(source_ip, user_agent),
            "requestId": request_id,
            "domainName": self.domain_name,
            "connectionId": connection_id,
            "apiId": self.config.api_id,
        }
        if authorizer is not None:
            context["authorizer"] = dict(authorizer)
        return context

    def _method_arn(self) -> str:
        c = self.config
        return f"arn:aws:execute-api:{c.region}:{c.account_id}:{c.api_id}/{c.stage}/$connect"

    # ----- handshake --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET / (or /{stage}): a WebSocket upgrade; anything else is the caller's business."""
        if not self.throttle.take():
            self.throttled += 1
            return _json_response(429, {"message": "Too Many Requests"})
        token = request.query.get(TOKEN_PARAMETER, "")
        if not token:
            # Identity source missing: API Gateway answers without calling the authorizer.
            return _json_response(401, {"message": "Unauthorized"})
        connection_id = api_gateway_id()
        connected_at = now_ms()
        source_ip = request.remote or "127.0.0.1"
        user_agent = request.headers.get("User-Agent")
        multi_headers = forwarded_headers(request, source_ip)
        headers = {key: values[-1] for key, values in multi_headers.items()}
        query = dict(request.query)
        multi_query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            multi_query.setdefault(key, []).append(value)

        request_id = api_gateway_id()
        context = self._request_context(
            connection_id, connected_at, "$connect", "CONNECT", request_id, source_ip, user_agent, None
        )
        authorizer_event = {
            "type": "REQUEST",
            "methodArn": self._method_arn(),
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "stageVariables": {},
            "requestContext": context,
        }
        auth = await self.runner.invoke("authorizer", authorizer_event, trigger="$connect authorizer")
        if auth.error is not None:
            if str(auth.error) == "Unauthorized":
                return _json_response(401, {"message": "Unauthorized"})
            return _json_response(500, {"message": "Internal server error"})
        try:
            effect = policy_effect(auth.result, self._method_arn())
        except ValueError as exc:
            log.warning("authorizer returned an invalid response: %s", exc)
            return _json_response(500, {"message": "Internal server error"})
        if effect != "Allow":
            return _json_response(403, {"message": "Forbidden"})
        try:
            authorizer = authorizer_context(auth.result)
        except ValueError as exc:
            log.warning("authorizer returned an invalid context: %s", exc)
            return _json_response(500, {"message": INTERNAL_ERROR})

        connect_event = {
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "requestContext": self._request_context(
                connection_id,
                connected_at,
                "$connect",
                "CONNECT",
                request_id,
                source_ip,
                user_agent,
                authorizer,
            ),
            "isBase64Encoded": False,
        }
        connect = await self.runner.invoke("ingress", connect_event, trigger="$connect")
        if connect.error is not None:
            return _json_response(500, {"message": INTERNAL_ERROR})
        status = _status_code(connect.result)
        if not 200 <= status < 300:
            return _json_response(status, {"message": "Forbidden" if status == 403 else "Connection refused"})

        ws = GatewayWebSocket(
            frame_limit=self.config.frame_limit,
            max_msg_size=self.config.message_limit,
            autoping=True,
            heartbeat=None,
            # API Gateway negotiates no permessage-deflate: limits apply to what is on the wire.
            compress=False,
            # The subprotocol is the $connect integration's choice (its Sec-WebSocket-Protocol header).
            protocols=selected_subprotocol(connect.result),
        )
        # Handshake failures (a client gone already) raise here, before anything is registered.
        await ws.prepare(request)
        connection = Connection(
            id=connection_id,
            ws=ws,
            request=request,
            connected_at=connected_at,
            source_ip=source_ip,
            user_agent=user_agent,
            authorizer=authorizer,
            # The idle timer starts once the connection exists (after $connect), not before it.
            last_active=now_ms(),
        )
        self.registry.register(connection)
        try:
            await self._serve(connection)
        finally:
            self.registry.unregister(connection_id)
            connection.closing = True
            await self._finish(connection)
            fair_share.forget(connection_id)
        return ws

    # ----- messages ---------------------------------------------------------------------------

    async def _serve(self, connection: Connection) -> None:
        ws = connection.ws
        while True:
            idle_left = self.config.idle_timeout - (now_ms() - connection.last_active) / 1000
            age_left = self.config.max_duration - (now_ms() - connection.connected_at) / 1000
            remaining = min(idle_left, age_left)
            if remaining <= 0:
                reason = "idle timeout" if idle_left <= age_left else "maximum duration"
                log.info("closing %s: %s", connection.id, reason)
                connection.mark_closing(CLOSE_GOING_AWAY, "Going away")
                await bounded_close(connection, CLOSE_GOING_AWAY, "Going away")
                return
            try:
                # The deadline is ours, not receive(timeout=): aiohttp restarts that timeout on
                # every ping it answers, so a pinging client would never meet the 2-hour close.
                async with asyncio.timeout(remaining):
                    message = await ws.receive()
            except TimeoutError:
                continue  # the loop head decides which limit expired
            if message.type is WSMsgType.TEXT:
                connection.last_active = now_ms()
                self._dispatch(connection, message.data)
                continue
            if message.type is WSMsgType.BINARY:
                connection.mark_closing(CLOSE_UNSUPPORTED_DATA, BINARY_REASON)
                await bounded_close(connection, CLOSE_UNSUPPORTED_DATA, BINARY_REASON)
                return
            if message.type is WSMsgType.CLOSE or (message.type is WSMsgType.CLOSING and ws.close_code):
                code = int(message.data or ws.close_code or CLOSE_NO_STATUS)
                reason = str(message.extra or "") or (NO_STATUS_REASON if code == CLOSE_NO_STATUS else "")
                connection.mark_closing(code, reason)
            elif message.type is WSMsgType.ERROR:
                error = message.data
                if isinstance(error, WebSocketError) and error.code == CLOSE_TOO_BIG:
                    connection.mark_closing(CLOSE_TOO_BIG, "Message too big")
                else:
                    connection.mark_closing(CLOSE_ABNORMAL, "")
            else:  # CLOSED without a close frame: the TCP connection went away
                connection.mark_closing(CLOSE_ABNORMAL, "")
            return

    def _dispatch(self, connection: Connection, text: str) -> None:
        task = asyncio.create_task(self._route(connection, text))
        connection.inflight.add(task)
        task.add_done_callback(connection.inflight.discard)

    async def _route(self, connection: Connection, text: str) -> None:
        request_id = api_gateway_id()
        if not self.throttle.take():
            self.throttled += 1
            await self._send_quietly(connection, self._error_frame(connection, TOO_MANY_REQUESTS, request_id))
            return
        route_key = select_route(text, self._routes)
        context = self._request_context(
            connection.id,
            connection.connected_at,
            route_key,
            "MESSAGE",
            request_id,
            connection.source_ip,
            connection.user_agent,
            connection.authorizer,
        )
        context["messageId"] = api_gateway_id()
        event = {"requestContext": context, "body": text, "isBase64Encoded": False}
        if len(connection.inflight) > 1:
            # Another of its frames is still being handled: it sends faster than it is served,
            # so its AWS calls yield to other connections' for a while (fair_share.py).
            fair_share.mark_backlogged(connection.id)
        try:
            async with connection.integrations, asyncio.timeout(self.config.integration_timeout):
                invocation = await self.runner.invoke("ingress", event, trigger=route_key)
        except TimeoutError:
            # API Gateway stops waiting (the function runs on); only then this frame.
            await self._send_quietly(connection, self._error_frame(connection, TIMED_OUT, request_id))
            return
        if invocation.error is not None:
            # A raised error and Lambda's own timeout (10 s for the ingress) are both a failed
            # integration to API Gateway.
            await self._send_quietly(connection, self._error_frame(connection, INTERNAL_ERROR, request_id))
            return
        if route_key in self._two_way:
            reply = _route_response(invocation)
            if reply is not None:
                await self._send_quietly(connection, reply)

    @staticmethod
    def _error_frame(connection: Connection, message: str, request_id: str) -> dict[str, str]:
        """API Gateway's own frames (not the function's): throttled, failed, timed out."""
        return {"message": message, "connectionId": connection.id, "requestId": request_id}

    async def _send_quietly(self, connection: Connection, frame: dict[str, Any] | str) -> None:
        if connection.closing or connection.ws.closed:
            return
        text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
        if self.over_backlog(connection, len(text)):
            return
        # The frame goes into the transport's buffer at once (no compression); only then does
        # send_str wait for a slow reader's socket to drain, holding up this route alone.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await connection.ws.send_str(text)

    def over_backlog(self, connection: Connection, size: int) -> bool:
        """True, and the connection is `cut_off`, if `size` more bytes would put it over
        `MAX_BACKLOG_BYTES` unsent: the frame is not sent."""
        if unsent_bytes(connection) + size <= MAX_BACKLOG_BYTES:
            return False
        self.cut_off(connection)
        return True

    def cut_off(self, connection: Connection) -> None:
        """A reader more than `MAX_BACKLOG_BYTES` behind is closed (1008), not fed: dropping its
        frames would break at-least-once delivery without the client knowing; closed, it
        reconnects and recovers what it missed with `join` + `since` (docs/local-runtime.md)."""
        if connection.closing:
            return
        log.warning("closing %s: more than %d bytes unsent (slow reader)", connection.id, MAX_BACKLOG_BYTES)
        self.track(asyncio.create_task(self.close_connection(connection, CLOSE_POLICY, SLOW_READER_REASON)))

    # ----- teardown ---------------------------------------------------------------------------

    async def _finish(self, connection: Connection) -> None:
        if connection.inflight:
            # Let integrations already running finish (their replies are dropped), so that
            # $disconnect sees the state they wrote.
            await asyncio.wait(
                set(connection.inflight), timeout=self.runner.config("ingress").timeout_seconds
            )
        if connection.silent:
            log.info("connection %s dropped behind the runtime's back: no $disconnect", connection.id)
            return
        request_id = api_gateway_id()
        context = self._request_context(
            connection.id,
            connection.connected_at,
            "$disconnect",
            "DISCONNECT",
            request_id,
            connection.source_ip,
            connection.user_agent,
            connection.authorizer,
        )
        # API Gateway puts the close code and reason in requestContext (docs/local-runtime.md).
        context["disconnectStatusCode"] = (
            connection.close_code if connection.close_code is not None else CLOSE_ABNORMAL
        )
        context["disconnectReason"] = connection.close_reason
        # The headers API Gateway sends with $disconnect (none of the client's but Host).
        headers = {"Host": self.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
        event = {
            "headers": headers,
            "multiValueHeaders": {key: [value] for key, value in headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }
        await self.runner.invoke("ingress", event, trigger="$disconnect")

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keeps a background task referenced until it ends (asyncio holds only weak references)."""
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def close_connection(self, connection: Connection, code: int, reason: str) -> None:
        """Server-side close (DeleteConnection): unregistered at once, $disconnect follows."""
        self.registry.unregister(connection.id)
        connection.mark_closing(code, reason)
        await bounded_close(connection, code, reason)

    def drop_silently(self, connection: Connection) -> None:
        """Test hook: the socket dies and the runtime forgets it, without $disconnect."""
        self.registry.unregister(connection.id)
        connection.silent = True
        connection.mark_closing(CLOSE_ABNORMAL, "")
        reset(connection)

    async def shutdown(self) -> None:
        """Closes every connection (1001 Going away) side by side, all within one
        `CLOSE_TIMEOUT_SECONDS` (a stuck reader is cut off); each runs its $disconnect."""
        closing = []
        for connection_id in self.registry.ids():
            connection = self.registry.get(connection_id)
            if connection is not None:
                connection.mark_closing(CLOSE_GOING_AWAY, "Going away")
                closing.append(bounded_close(connection, CLOSE_GOING_AWAY, "Going away"))
        await asyncio.gather(*closing)


def unsent_bytes(connection: Connection) -> int:
    """Bytes accepted for `connection` and not yet handed to the kernel: posts waiting their turn
    and the transport's buffer (none past the socket's end). The kernel's own send buffer (up to
    `tcp_wmem`'s maximum, 4 MB on Linux) comes on top and is not counted."""
    transport = None if connection.request is None else connection.request.transport
    return connection.unsent + (0 if transport is None else transport.get_write_buffer_size())


async def bounded_close(connection: Connection, code: int, reason: str) -> None:
    """A close handshake that ends within `CLOSE_TIMEOUT_SECONDS`, whatever the peer does.

    aiohttp's close first writes the close frame, which waits for the socket to drain (forever,
    for a client that stopped reading), then waits for the peer's close frame. Past the bound
    the TCP connection is aborted: the client sees it drop (1006) and `$disconnect` follows.
    """
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await connection.ws.close(code=code, message=reason.encode())
        return
    except TimeoutError:
        log.info("closing %s took over %.0f s: connection aborted", connection.id, CLOSE_TIMEOUT_SECONDS)
    except Exception as error:  # a socket already gone: nothing left to close politely
        log.debug("closing %s: %s", connection.id, error)
    reset(connection)


def reset(connection: Connection) -> None:
    """Drop the TCP connection at once with a RST, discarding whatever is still queued.

    A plain close (or asyncio's ``abort``, which only skips the user-space buffer) leaves the
    kernel to deliver the bytes already in the socket's send buffer (up to 4 MB, `tcp_wmem`)
    before its FIN: to a client that stopped reading, never. The socket then sits in FIN_WAIT1
    with that buffer, and the client never learns it was closed. SO_LINGER with a zero timeout
    makes the close a reset (the client sees ECONNRESET, a WebSocket client 1006).
    """
    transport = connection.request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def request_identity(source_ip: str, user_agent: str | None) -> dict[str, str]:
    """requestContext.identity (and GetConnection's Identity): API Gateway leaves userAgent out
    when the client sent none."""
    identity = {"sourceIp": source_ip}
    if user_agent is not None:
        identity["userAgent"] = user_agent
    return identity


def trace_id(epoch_seconds: float | None = None) -> str:
    """An X-Ray trace header as API Gateway adds it: ``Root=1-{8 hex epoch}-{24 hex}``."""
    epoch = int(time.time() if epoch_seconds is None else epoch_seconds)
    return f"Root=1-{epoch:08x}-{secrets.token_hex(12)}"


def forwarded_headers(request: web.BaseRequest, source_ip: str) -> dict[str, list[str]]:
    """The handshake's headers as the integration sees them: the client's, plus what API Gateway
    adds (X-Forwarded-For/-Proto/-Port with this listener's scheme and port, X-Amzn-Trace-Id)."""
    multi: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        multi.setdefault(key, []).append(value)
    added = {"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Amzn-Trace-Id"}
    client_forwarded = ", ".join(v for k, vs in multi.items() if k.lower() == "x-forwarded-for" for v in vs)
    for key in [k for k in multi if k in added or k.lower() in {a.lower() for a in added}]:
        del multi[key]
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    port = str(sockname[1]) if sockname else ""
    # A client's own X-Forwarded-For is kept, with the address API Gateway saw appended.
    multi["X-Forwarded-For"] = [f"{client_forwarded}, {source_ip}" if client_forwarded else source_ip]
    multi["X-Forwarded-Proto"] = [request.scheme]
    multi["X-Forwarded-Port"] = [port]
    multi["X-Amzn-Trace-Id"] = [trace_id()]
    return multi


def authorizer_context(response: dict[str, Any]) -> dict[str, Any]:
    """requestContext.authorizer from a (valid) authorizer response: its ``context``, whose values
    API Gateway allows to be strings, numbers and booleans only, plus ``principalId``."""
    context = response.get("context") or {}
    if not isinstance(context, dict):
        raise ValueError("context must be an object")
    for key, value in context.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(
                f"context[{key!r}] is a {type(value).__name__}: only strings, numbers and booleans"
            )
    authorizer = {key: value for key, value in context.items() if value is not None}
    authorizer["principalId"] = response["principalId"]
    return authorizer


def selected_subprotocol(result: Any) -> tuple[str, ...]:
    """The Sec-WebSocket-Protocol the $connect integration answered with, if any."""
    if not isinstance(result, dict) or not isinstance(result.get("headers"), dict):
        return ()
    for key, value in result["headers"].items():
        if str(key).lower() == "sec-websocket-protocol" and isinstance(value, str) and value.strip():
            return (value.strip(),)
    return ()


def _status_code(result: Any) -> int:
    if isinstance(result, dict):
        status = result.get("statusCode", 200)
        try:
            return int(status)
        except (TypeError, ValueError):
            return 500
    return 200  # a Lambda proxy integration that returns nothing counts as success


def _route_response(invocation: Invocation) -> str | None:
    result = invocation.result
    if not isinstance(result, dict) or "body" not in result or result["body"] is None:
        return None
    body = result["body"]
    return body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))


def _json_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)
