"""Tiny stand-ins for the real handlers, to test the runtime itself (gateway, runner, event source).

Loaded by `dynamowave serve --handler NAME=stub_functions.X` with tests/e2e on PYTHONPATH. Every
invocation is appended as one JSON line to $STUB_EVENTS_FILE so tests can see what was invoked.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

_lock = threading.Lock()
_RESOURCE_VARIABLES = (
    "CONNECTIONS_TABLE",
    "MESSAGES_TABLE",
    "FANOUT_DLQ_URL",
    "JWT_SECRET_ARN",
    "DYNAMOWAVE_JWT_SECRET",
)


def _record(function: str, event: Any, context: Any) -> None:
    path = os.environ.get("STUB_EVENTS_FILE")
    if not path:
        return
    line = json.dumps(
        {
            "function": function,
            "event": event,
            "context": {
                "function_name": context.function_name,
                "aws_request_id": context.aws_request_id,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "invoked_function_arn": context.invoked_function_arn,
                "remaining_ms": context.get_remaining_time_in_millis(),
            },
            # What this function sees of the variables the stack gives some functions only.
            "env": {name: os.environ.get(name) for name in _RESOURCE_VARIABLES},
        }
    )
    with _lock, open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """token "allow-USER" -> Allow; "deny" -> Deny policy; "crash" -> 500; else Unauthorized."""
    _record("authorizer", event, context)
    token = (event.get("queryStringParameters") or {}).get("token", "")
    if token == "crash":
        raise RuntimeError("authorizer bug")
    if token == "deny":
        return _policy("someone", "Deny", event["methodArn"], {})
    if token.startswith("allow-"):
        user = token.removeprefix("allow-")
        return _policy(
            user, "Allow", event["methodArn"], {"userId": user, "name": user.title(), "rooms": "*"}
        )
    raise Exception("Unauthorized")


def _policy(principal: str, effect: str, resource: str, context: dict[str, str]) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }


def ingress(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """$connect: ?refuse=STATUS refuses. Messages: {"op": "echo"|"raise"|"sleep"|"silent"}."""
    _record("ingress", event, context)
    route = event["requestContext"]["routeKey"]
    if route == "$connect":
        query = event.get("queryStringParameters") or {}
        refuse = query.get("refuse")
        if refuse:
            return {"statusCode": int(refuse)}
        if query.get("subprotocol"):  # ?subprotocol=P: the integration chooses P
            return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": query["subprotocol"]}}
        return {"statusCode": 200}
    if route == "$disconnect":
        return {"statusCode": 200}
    try:
        body = json.loads(event.get("body") or "")
    except ValueError:
        body = {}
    op = body.get("op") if isinstance(body, dict) else None
    if op == "raise":
        raise RuntimeError("integration bug")
    if op == "sleep":
        time.sleep(float(body.get("seconds", 0.5)))
    if op == "silent":
        return {"statusCode": 200}
    return {"statusCode": 200, "body": json.dumps({"route": route, "event": event})}


def fanout(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Each record body is JSON: {"fail": true} -> reported in batchItemFailures;
    {"raise": true} -> the whole invocation raises."""
    _record("fanout", event, context)
    failures = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        if body.get("raise"):
            raise RuntimeError("fan-out crash")
        if body.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def janitor(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record("janitor", event, context)
    return {"pruned": 0}


def operator(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers 200 with the route API Gateway matched and its path parameters."""
    _record("operator", event, context)
    body = {"routeKey": event["routeKey"], "pathParameters": event.get("pathParameters")}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
