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
from typing import Any

from aiohttp import web

from dynamowave.local.faults import FaultInjector
from dynamowave.local.gateway import Connection, WebSocketGateway, iso_time

log = logging.getLogger("dynamowave.management")

# DeleteConnection: API Gateway closes the socket normally (the client sees 1000).
DELETE_CLOSE_CODE = 1000


def error_response(status: int, error_type: str, message: str | None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"message": message, "__type": error_type}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": _request_id()},
    )


def _request_id() -> str:
    import uuid

    return str(uuid.uuid4())


def gone() -> web.Response:
    return error_response(410, "GoneException", None)


class ManagementApi:
    def __init__(self, gateway: WebSocketGateway, faults: FaultInjector) -> None:
        self._gateway = gateway
        self._faults = faults
        self.posts = 0

    def add_routes(self, app: web.Application, stage: str) -> None:
        for prefix in (f"/{stage}", ""):
            path = prefix + "/@connections/{connection_id}"
            app.router.add_post(path, self.post)
            app.router.add_get(path, self.get)
            app.router.add_delete(path, self.delete)

    async def _fault(self, *, allow_gone: bool, connection: Connection | None) -> web.Response | None:
        latency = self._faults.management_latency_seconds()
        if latency > 0:
            await asyncio.sleep(latency)
        fault = self._faults.management_fault(allow_gone=allow_gone)
        if fault == "throttle":
            return error_response(429, "LimitExceededException", "Rate exceeded")
        if fault == "error":
            return error_response(500, "InternalServerErrorException", "Internal server error")
        if fault == "gone" and connection is not None:
            # The connection vanishes the way a lost one does: no $disconnect, stale records stay.
            self._gateway.drop_silently(connection)
            return gone()
        return None

    def _live(self, request: web.Request) -> Connection | None:
        connection = self._gateway.registry.get(request.match_info["connection_id"])
        if connection is None or connection.closing or connection.ws.closed:
            return None
        return connection

    async def post(self, request: web.Request) -> web.Response:
        self.posts += 1
        connection = self._live(request)
        fault = await self._fault(allow_gone=True, connection=connection)
        if fault is not None:
            return fault
        data = await request.read()
        if len(data) > self._gateway.config.message_limit:
            return error_response(413, "PayloadTooLargeException", "Message too long")
        connection = self._live(request)  # it may have closed while the body was read
        if connection is None:
            return gone()
        try:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                await connection.ws.send_bytes(data)
            else:
                await connection.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            return gone()
        return web.Response(status=200)

    async def get(self, request: web.Request) -> web.Response:
        connection = self._live(request)
        fault = await self._fault(allow_gone=False, connection=connection)
        if fault is not None:
            return fault
        if connection is None:
            return gone()
        body: dict[str, Any] = {
            "connectedAt": iso_time(connection.connected_at),
            "lastActiveAt": iso_time(connection.last_active),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
        }
        return web.json_response(body)

    async def delete(self, request: web.Request) -> web.Response:
        connection = self._live(request)
        fault = await self._fault(allow_gone=False, connection=connection)
        if fault is not None:
            return fault
        if connection is None:
            return gone()
        # Unregistered now (posts answer 410 at once); the close handshake and $disconnect follow.
        task = asyncio.create_task(self._gateway.close_connection(connection, DELETE_CLOSE_CODE, ""))
        self._gateway.track(task)
        return web.Response(status=204)
