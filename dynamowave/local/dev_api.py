"""Local-only HTTP endpoints: the web client, ``/dev/token``, ``/healthz`` and the test hooks.

Everything under ``/dev/`` answers only same-origin requests from a loopback address (403
otherwise; `dynamowave.local.guard` decides for every route): it mints tokens and breaks things
on purpose, which no deployed stack offers.

* ``GET  /dev/token?user=U[&name=N][&rooms=a,b][&mod=a,b|*]`` -> ``{"token", "url"}``
* ``GET  /dev/faults`` / ``PUT /dev/faults`` (the faults JSON) -> the active fault config
* ``GET  /dev/connections`` -> ``{"connections": [ids], "unsent": {id: bytes}}`` (bytes held for
  each, not yet handed to the kernel: a slow reader's backlog, cut off past 1 MiB)
* ``POST /dev/connections/{id}/drop`` -> 204: the socket is aborted and the runtime forgets the
  connection without running ``$disconnect`` (its DynamoDB records go stale)
* ``POST /dev/janitor`` -> runs the janitor now, returns ``{"ok", "result", "error"}``
* ``GET  /dev/info`` -> endpoints, table names, queue URLs, counters
* ``GET  /dev/iam`` -> ``{"enforced", "granted", "revoked", "denials"}`` under ``serve --iam``
  (each a list of ``{"function", "action", "resource"}``; 404 without --iam)
* ``PUT  /dev/iam`` ``{"revoked": [{"function", "action", "resource"}]}`` -> takes those grants
  away (``resource``: an ARN pattern, ``*`` by default) until the next PUT (``[]`` restores)
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from dynamowave.local.dev_tokens import TokenRequestError, mint, parse_mod, parse_rooms
from dynamowave.local.faults import FaultConfig, FaultConfigError, FaultInjector
from dynamowave.local.gateway import WebSocketGateway, unsent_bytes
from dynamowave.local.iam import Call, Policies


class DevApi:
    def __init__(
        self,
        gateway: WebSocketGateway,
        faults: FaultInjector,
        *,
        secret: str,
        web_dir: Path,
        ws_url: Callable[[], str],
        run_janitor: Callable[[], Awaitable[Any]],
        info: Callable[[], dict[str, Any]],
        policies: Callable[[], Policies | None] = lambda: None,
    ) -> None:
        self._gateway = gateway
        self._faults = faults
        self._secret = secret
        self._web_dir = web_dir
        self._ws_url = ws_url
        self._run_janitor = run_janitor
        self._info = info
        self._policies = policies  # set once the functions are configured (serve --iam)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/static/{name:.+}", self.static)
        app.router.add_get("/dev/token", self.token)
        app.router.add_get("/dev/faults", self.get_faults)
        app.router.add_put("/dev/faults", self.put_faults)
        app.router.add_get("/dev/connections", self.connections)
        app.router.add_post("/dev/connections/{connection_id}/drop", self.drop)
        app.router.add_post("/dev/janitor", self.janitor)
        app.router.add_get("/dev/info", self.info)
        app.router.add_get("/dev/iam", self.get_iam)
        app.router.add_put("/dev/iam", self.put_iam)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        return self._file(request.match_info["name"])

    def _file(self, name: str) -> web.StreamResponse:
        root = self._web_dir.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            if name == "index.html":
                return web.Response(
                    text="<!doctype html><title>DynamoWave</title><p>The web client is not installed.</p>",
                    content_type="text/html",
                )
            raise web.HTTPNotFound()
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    async def token(self, request: web.Request) -> web.Response:
        user = request.query.get("user", "")
        name = request.query.get("name") or None
        try:
            rooms = parse_rooms(request.query.get("rooms"))
            mod = parse_mod(request.query.get("mod"))
            token = mint(self._secret, user, name=name, rooms=rooms, mod=mod, ttl_seconds=12 * 3600)
        except TokenRequestError as exc:
            return web.json_response({"message": str(exc)}, status=400)
        return web.json_response({"token": token, "url": self._ws_url()})

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults.config.to_json())

    async def put_faults(self, request: web.Request) -> web.Response:
        try:
            config = FaultConfig.from_json(json.loads(await request.text()))
        except (ValueError, FaultConfigError) as exc:
            return web.json_response({"message": f"invalid faults: {exc}"}, status=400)
        self._faults.configure(config)
        return web.json_response(config.to_json())

    async def connections(self, request: web.Request) -> web.Response:
        unsent: dict[str, int] = {}
        for connection_id in self._gateway.registry.ids():
            connection = self._gateway.registry.get(connection_id)
            if connection is not None:
                unsent[connection_id] = unsent_bytes(connection)
        return web.json_response({"connections": list(unsent), "unsent": unsent})

    async def drop(self, request: web.Request) -> web.Response:
        connection = self._gateway.registry.get(request.match_info["connection_id"])
        if connection is None:
            return web.json_response({"message": "no such connection"}, status=404)
        self._gateway.drop_silently(connection)
        return web.Response(status=204)

    async def janitor(self, request: web.Request) -> web.Response:
        invocation = await self._run_janitor()
        return web.json_response(
            {
                "ok": invocation.ok,
                "result": _jsonable(invocation.result),
                "error": None if invocation.error is None else str(invocation.error),
            }
        )

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response(self._info())

    def _iam_state(self, policies: Policies) -> web.Response:
        return web.json_response(
            {
                "enforced": True,
                "granted": [call.to_json() for call in policies.granted()],
                "revoked": [call.to_json() for call in policies.revoked],
                "denials": [call.to_json() for call in policies.denials()],
            }
        )

    async def get_iam(self, request: web.Request) -> web.Response:
        policies = self._policies()
        if policies is None:
            return web.json_response({"message": "IAM is not enforced (dynamowave serve --iam)"}, status=404)
        return self._iam_state(policies)

    async def put_iam(self, request: web.Request) -> web.Response:
        policies = self._policies()
        if policies is None:
            return web.json_response({"message": "IAM is not enforced (dynamowave serve --iam)"}, status=404)
        try:
            revoked = _calls(json.loads(await request.text()))
        except ValueError as exc:
            return web.json_response({"message": f"invalid IAM revocation: {exc}"}, status=400)
        policies.revoke(revoked)
        return self._iam_state(policies)


def _calls(body: Any) -> list[Call]:
    """``{"revoked": [{"function", "action", "resource"?}, ...]}`` -> the calls to deny."""
    if not isinstance(body, dict) or not isinstance(body.get("revoked"), list):
        raise ValueError('expected {"revoked": [{"function", "action", "resource"}]}')
    calls = []
    for entry in body["revoked"]:
        if not isinstance(entry, dict):
            raise ValueError("each revoked grant is an object")
        function, action, resource = entry.get("function"), entry.get("action"), entry.get("resource", "*")
        if not all(isinstance(v, str) and v for v in (function, action, resource)):
            raise ValueError("function, action and resource must be non-empty strings")
        calls.append(Call(str(function), str(action), str(resource)))
    return calls


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
