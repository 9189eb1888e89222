"""The operator API under ``/admin`` on the runtime's port, as API Gateway's HTTP API serves it.

What API Gateway does with an IAM-authorized route, in its order: the request is matched to
one of the operator handler's routes (the HTTP API's routes on AWS; none matches: 404
``{"message": "Not Found"}``, nothing invoked), the SigV4 signature is verified (unsigned or
wrongly signed: 403, nothing invoked), then the ``operator`` function is invoked with a payload
format 2.0 event for the path below ``/admin`` (its route key and path parameters as AWS sets
them), and its ``{statusCode, headers, body}`` answer is the HTTP response. docs/operator-api.md.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from dynamowave.local.config import RuntimeConfig
from dynamowave.local.lambda_runner import LambdaRunner
from dynamowave.local.sigv4 import SignatureRejected, SigV4Verifier, Verified
from functions.operator.handler import routes

PREFIX: Final = "/admin"
OPERATOR_FUNCTION: Final = "operator"
STAGE: Final = "$default"  # the HTTP API's one stage: no stage name in the path
_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class RouteMatch:
    route_key: str  # "POST /rooms/{room}/messages", as API Gateway names the route
    path_parameters: dict[str, str]


class Routes:
    """The HTTP API's route table: a method and path either match one route or none."""

    def __init__(self, table: tuple[tuple[str, str], ...]) -> None:
        self._routes = [(method, path, _path_pattern(path)) for method, path in table]

    def match(self, method: str, path: str) -> RouteMatch | None:
        for route_method, route_path, pattern in self._routes:
            found = pattern.match(path)
            if found and route_method == method:
                # API Gateway gives path parameters percent-decoded; rawPath keeps them as sent.
                parameters = {name: unquote(value) for name, value in found.groupdict().items()}
                return RouteMatch(f"{route_method} {route_path}", parameters)
        return None


def _path_pattern(path: str) -> re.Pattern[str]:
    """``/rooms/{room}/messages`` -> a pattern whose groups are the path parameters (one
    segment each, as API Gateway matches them)."""
    parts = _PARAMETER.split(path)  # literal, name, literal, name, ..., literal
    return re.compile(
        "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
        + r"\Z"
    )


def http_api_event(
    request: web.Request, body: bytes, verified: Verified, config: RuntimeConfig, route: RouteMatch
) -> dict[str, Any]:
    """API Gateway HTTP API payload format 2.0, for the path below the /admin prefix."""
    path = _path_below_prefix(request)
    query = request.query_string
    now = time.time()
    host = request.host
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": path,
        "rawQueryString": query,
        # Cookies arrive as `cookies`, not as a header (payload format 2.0).
        "headers": {
            name.lower(): value for name, value in request.headers.items() if name.lower() != "cookie"
        },
        "requestContext": {
            "accountId": config.account_id,
            "apiId": "local-operator",
            "authorizer": {
                "iam": {
                    "accessKey": verified.credentials.access_key,
                    "accountId": config.account_id,
                    # AWS gives the principal's unique id (AIDA..., AROA...:session); locally
                    # there is none, so its access key stands in.
                    "callerId": verified.credentials.access_key,
                    # Set by AWS for Cognito identity-pool credentials and AWS Organizations only.
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": f"arn:aws:iam::{config.account_id}:user/{verified.principal}",
                    "userId": verified.credentials.access_key,
                }
            },
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": path,
                "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                "sourceIp": request.remote or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": STAGE,
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if body:  # API Gateway leaves `body` out of a request that has none
        event["body"] = body.decode("utf-8", "replace")
    cookies = [c.strip() for c in request.headers.get("Cookie", "").split(";") if c.strip()]
    if cookies:
        event["cookies"] = cookies
    if route.path_parameters:
        event["pathParameters"] = route.path_parameters
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
    return event


def _path_below_prefix(request: web.Request) -> str:
    return request.raw_path.split("?", 1)[0][len(PREFIX) :] or "/"


class OperatorApi:
    def __init__(self, runner: LambdaRunner, verifier: SigV4Verifier, config: RuntimeConfig) -> None:
        self._runner = runner
        self._verifier = verifier
        self._config = config
        self._routes = Routes(routes())

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", PREFIX + "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        route = self._routes.match(request.method, _path_below_prefix(request))
        if route is None:
            # API Gateway's own answer when no route matches (no authorizer, no integration runs).
            return web.json_response({"message": "Not Found"}, status=404)
        body = await request.read()
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        try:
            verified = self._verifier.verify(request.method, url, request.headers, body)
        except SignatureRejected as rejected:
            refusal = rejected.rejection
            return web.json_response(
                {"code": "forbidden", "message": refusal.message},
                status=refusal.status,
                headers={"x-amzn-ErrorType": refusal.error_type},
            )
        event = http_api_event(request, body, verified, self._config, route)
        invocation = await self._runner.invoke(OPERATOR_FUNCTION, event, trigger=f"{request.method} {PREFIX}")
        result = invocation.result
        if invocation.error is not None or not isinstance(result, dict):
            # API Gateway's answer to a failed integration.
            return web.json_response({"message": "Internal Server Error"}, status=500)
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        return web.Response(
            status=int(result.get("statusCode", 200)), body=str(result.get("body") or ""), headers=headers
        )
