"""The operator API under ``/admin`` on the runtime's port, as API Gateway's HTTP API serves it.

What API Gateway does with an IAM-authorized route, in its order: the SigV4 signature is
verified (unsigned or wrongly signed: 403, nothing invoked), then the ``operator`` function is
invoked with a payload format 2.0 event for the path below ``/admin``, and its
``{statusCode, headers, body}`` answer is the HTTP response. docs/operator-api.md.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import web

from dynamowave.local.config import RuntimeConfig
from dynamowave.local.lambda_runner import LambdaRunner
from dynamowave.local.sigv4 import SignatureRejected, SigV4Verifier, Verified

PREFIX: Final = "/admin"
OPERATOR_FUNCTION: Final = "operator"


def http_api_event(
    request: web.Request, body: bytes, verified: Verified, config: RuntimeConfig
) -> dict[str, Any]:
    """API Gateway HTTP API payload format 2.0, for the path below the /admin prefix."""
    path = request.raw_path.split("?", 1)[0][len(PREFIX) :] or "/"
    query = request.query_string
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {name.lower(): value for name, value in request.headers.items()},
        "requestContext": {
            "accountId": config.account_id,
            "apiId": "local-operator",
            "authorizer": {
                "iam": {
                    "accessKey": verified.credentials.access_key,
                    "accountId": config.account_id,
                    "userArn": f"arn:aws:iam::{config.account_id}:user/{verified.principal}",
                }
            },
            "domainName": request.host,
            "http": {
                "method": request.method,
                "path": path,
                "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                "sourceIp": request.remote or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "body": body.decode("utf-8", "replace") if body else None,
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
    return event


class OperatorApi:
    def __init__(self, runner: LambdaRunner, verifier: SigV4Verifier, config: RuntimeConfig) -> None:
        self._runner = runner
        self._verifier = verifier
        self._config = config

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", PREFIX + "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
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
        event = http_api_event(request, body, verified, self._config)
        invocation = await self._runner.invoke(OPERATOR_FUNCTION, event, trigger=f"{request.method} {PREFIX}")
        result = invocation.result
        if invocation.error is not None or not isinstance(result, dict):
            # API Gateway's answer to a failed integration.
            return web.json_response({"message": "Internal Server Error"}, status=500)
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        return web.Response(
            status=int(result.get("statusCode", 200)), body=str(result.get("body") or ""), headers=headers
        )
