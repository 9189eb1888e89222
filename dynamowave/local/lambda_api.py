"""Lambda's Invoke API on the runtime's port, for the functions that call another function.

The ingress invokes the message review function synchronously (docs/protocol.md, "Message
review") with boto3's ``lambda`` client, as on AWS; the runtime points that client here
(``AWS_ENDPOINT_URL_LAMBDA``) and runs the named function in its Lambda runner. Answers are
Lambda's: 200 with the function's JSON result, 200 with ``X-Amz-Function-Error: Unhandled``
and ``{errorMessage, errorType}`` when it raised or timed out, 404 for a function it does not
run, 400 for a payload that is not JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from dynamowave.local.lambda_runner import LambdaRunner

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"Type": "User", "message": message}, status=status, headers={"x-amzn-ErrorType": error_type}
    )


class LambdaInvokeApi:
    def __init__(self, runner: LambdaRunner, invocable: Iterable[str]) -> None:
        self._runner = runner
        self._invocable = frozenset(invocable)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(INVOKE_PATH, self.invoke)

    async def invoke(self, request: web.Request) -> web.Response:
        # FunctionName may be a name or an ARN (arn:aws:lambda:region:account:function:name).
        name = request.match_info["name"].rsplit(":function:", 1)[-1].split(":", 1)[0]
        if name not in self._invocable:
            return _error(404, "ResourceNotFoundException", f"Function not found: {name}")
        if request.headers.get("X-Amz-Invocation-Type", "RequestResponse") != "RequestResponse":
            return _error(400, "InvalidParameterValueException", "only RequestResponse is emulated")
        raw = await request.read()
        try:
            event: Any = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
        invocation = await self._runner.invoke(name, event, trigger="invoke")
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if invocation.error is not None:
            body = {"errorMessage": str(invocation.error), "errorType": type(invocation.error).__name__}
            return web.json_response(body, headers={**headers, "X-Amz-Function-Error": "Unhandled"})
        return web.json_response(invocation.result, headers=headers)
