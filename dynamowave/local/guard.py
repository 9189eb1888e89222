"""One middleware between the local runtime's port and everything served on it (docs/operations.md).

A developer's browser can reach the runtime on loopback, so any page it opens can too. The guard
decides, before any route runs:

* **Host** (DNS rebinding): the ``Host`` header must name the runtime: ``127.0.0.1``, ``::1``,
  ``localhost``, the bound address, or a name in ``allowed_hosts``; when bound to a wildcard
  (``0.0.0.0``, ``::``) any IP literal too (a rebinding page can only name a host name). Else 403.
* **Origin** (cross-site requests): a request other than a page read (GET/HEAD of ``/``, the
  stage path, ``/static/``, ``/healthz``) must carry no ``Origin`` or the runtime's own, and no
  ``Sec-Fetch-Site`` other than ``same-origin`` / ``none``. This covers ``/dev/``, ``/admin/``,
  the Management API and any route added later. Else 403.
* **WebSocket upgrades**: no ``Origin`` (a non-browser client), the runtime's own, or one in
  ``allowed_origins``. Else 403. On AWS the authorizer applies the same allow-list
  (``ALLOWED_ORIGINS``, functions/chat/auth.py).
* **Loopback only**: ``/dev/``, the Management API (``/@connections``) and Lambda's Invoke API
  answer only requests from a loopback address, whatever the bound address.

Every refusal is JSON ``{"message": ...}``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from functions.chat.settings import normalize_origin, normalize_origins

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::", ""})
# What a browser may fetch from another origin: the web client's page and files, the health check.
PAGE_PREFIXES: Final = ("/static/",)
PAGE_PATHS: Final = frozenset({"/", "/healthz"})
SAFE_FETCH_SITES: Final = frozenset({"same-origin", "none"})
# Lambda's Invoke API, which the runtime serves for functions that invoke functions.
LAMBDA_API_PREFIX: Final = "/2015-03-31/functions/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback_address(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def host_name(authority: str) -> str:
    """``127.0.0.1:8765`` -> ``127.0.0.1``; ``[::1]:8765`` -> ``::1``; lower-cased."""
    try:
        return (urlsplit(f"//{authority}").hostname or "").lower()
    except ValueError:
        return ""


def forbidden(message: str) -> web.Response:
    return web.json_response({"message": message}, status=403)


@dataclass(frozen=True)
class AccessPolicy:
    """Who may use the local runtime's port; see the module docstring."""

    bound_host: str = "127.0.0.1"
    stage: str = "local"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    _hosts: frozenset[str] = field(init=False, repr=False)
    _origins: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hosts = set(LOOPBACK_HOSTS) | {host.lower() for host in self.allowed_hosts}
        bound = self.bound_host.strip("[]").lower()
        if bound not in WILDCARD_HOSTS:
            hosts.add(bound)
        object.__setattr__(self, "_hosts", frozenset(hosts))
        object.__setattr__(self, "_origins", frozenset(normalize_origins(self.allowed_origins)))

    @property
    def wildcard(self) -> bool:
        return self.bound_host.strip("[]") in WILDCARD_HOSTS

    def host_allowed(self, host: str | None) -> bool:
        if host is None:
            return True  # HTTP/1.0 without Host: not a browser, so not a rebinding page
        name = host_name(host)
        return name in self._hosts or (self.wildcard and is_ip_literal(name))

    def same_origin(self, origin: str, host: str | None) -> bool:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and host is not None and parts.netloc.lower() == host.lower()

    def is_page_read(self, request: web.Request) -> bool:
        if request.method not in ("GET", "HEAD"):
            return False
        path = request.path
        stage = f"/{self.stage}"
        return path in PAGE_PATHS or path in (stage, stage + "/") or path.startswith(PAGE_PREFIXES)

    def is_loopback_only(self, path: str) -> bool:
        stage = f"/{self.stage}"
        return path.startswith(("/dev/", "/@connections", stage + "/@connections", LAMBDA_API_PREFIX))

    def refusal(self, request: web.Request) -> str | None:
        """Why `request` is refused, or None."""
        host = request.headers.get("Host")
        if not self.host_allowed(host):
            return f"host {host!r} is not served here (allowed: {', '.join(sorted(self._hosts))})"
        if self.is_loopback_only(request.path) and not is_loopback_address(request.remote):
            return "local development endpoint: loopback only"
        origin = request.headers.get("Origin")
        own = origin is not None and self.same_origin(origin, host)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if origin is None or own or normalize_origin(origin) in self._origins:
                return None
            return f"origin {origin!r} may not open a connection"
        if self.is_page_read(request):
            return None
        if origin is not None and not own:
            return f"cross-origin request from {origin!r} refused"
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site.lower() not in SAFE_FETCH_SITES:
            return f"cross-site request ({fetch_site}) refused"
        return None


def guard_middleware(policy: AccessPolicy) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = policy.refusal(request)
        if refused is not None:
            return forbidden(refused)
        return await handler(request)

    return guard
