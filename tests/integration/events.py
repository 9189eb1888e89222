"""API Gateway WebSocket and authorizer events, shaped as AWS sends them."""

from __future__ import annotations

import uuid
from typing import Any

from dynamowave.testing.aws import LambdaContext
from functions.chat.auth import Identity
from functions.chat.clock import now_ms

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/test/$connect"


def authorizer_event(token: str | None) -> dict[str, Any]:
    query = {} if token is None else {"token": token}
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "queryStringParameters": query,
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "conn-x"},
    }


def authorize(token: str | None) -> dict[str, Any]:
    """The authorizer's answer to a $connect carrying `token`, called as API Gateway calls it."""
    from functions.authorizer.handler import handler

    result: dict[str, Any] = handler(authorizer_event(token), LambdaContext())
    return result


def route_event(
    route: str, connection_id: str, identity: Identity | None, body: str | None = None
) -> dict[str, Any]:
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    request_context: dict[str, Any] = {
        "routeKey": route,
        "eventType": event_type,
        "messageDirection": "IN",
        "stage": "test",
        "connectedAt": now_ms(),
        "requestTimeEpoch": now_ms(),
        "identity": {"sourceIp": "127.0.0.1"},
        "requestId": uuid.uuid4().hex,
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "connectionId": connection_id,
        "apiId": "abc123",
    }
    if identity is not None:
        request_context["authorizer"] = {"principalId": identity.user_id, **identity.to_context()}
    event: dict[str, Any] = {"requestContext": request_context, "isBase64Encoded": False}
    if body is not None:
        event["body"] = body
    return event


def http_api_event(method: str, path: str, body: Any = None, query: str = "") -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for an IAM-authorized operator API call."""
    from urllib.parse import parse_qsl

    raw = body if isinstance(body, str) or body is None else __import__("json").dumps(body)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "op.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "op",
            "authorizer": {
                "iam": {
                    "accessKey": "AKIA",
                    "accountId": "123456789012",
                    "userArn": "arn:aws:iam::123456789012:user/ops",
                }
            },
            "domainName": "op.execute-api.us-east-1.amazonaws.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "10.0.0.1",
                "userAgent": "test",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:00:00:00 +0000",
            "timeEpoch": now_ms(),
        },
        "isBase64Encoded": False,
    }
    if raw is not None:
        event["body"] = raw
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query))
    return event
