"""The baseline: the AWS WebSocket chat tutorial's `sendmessage`, as a Lambda handler for the runtime.

What aws-samples/simple-websockets-chat-app (and the API Gateway docs tutorial) do per message:
Scan the whole connections table, then PostToConnection to every connection found, all at
once (``Promise.all``), inside the `sendmessage` function; a 410 deletes that connection. The
tutorial has no rooms: here the Scan is filtered to the room (a FilterExpression, billed for
every item it reads, matching or not), and it is paginated so that it delivers at all past 1 MB
of connections (the sample reads one page and silently misses the rest).

Every other route (connect, join, ...) is DynamoWave's own ingress, so both systems hold the
same connections and memberships and the client cannot tell them apart: only the path of a
message differs. Used by `dynamowave bench` as
``--handler ingress=dynamowave.bench.tutorial.handler``; never deployed.
"""

from __future__ import annotations

import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.chat.clock import now_ms
from functions.chat.settings import ENV
from functions.ingress.handler import handler as ingress_handler

# The JavaScript SDK v3's default HTTP agent keeps at most 50 sockets per host: that is how
# "concurrently" Promise.all posts in the sample.
POST_CONCURRENCY: Final = 50


@cache
def _dynamodb() -> Any:
    return boto3.session.Session().client("dynamodb")


@cache
def _management_api() -> Any:
    config = Config(retries={"total_max_attempts": 1}, max_pool_connections=POST_CONCURRENCY)
    endpoint = os.environ[ENV.MANAGEMENT_API_ENDPOINT]
    return boto3.session.Session().client("apigatewaymanagementapi", endpoint_url=endpoint, config=config)


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=POST_CONCURRENCY, thread_name_prefix="tutorial-post")


def room_connections(room: str) -> list[str]:
    """Scan the whole connections table for members of `room` (every page)."""
    table = os.environ[ENV.CONNECTIONS_TABLE]
    found: list[str] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "connectionId",
        "FilterExpression": "attribute_exists(joined.#room)",
        "ExpressionAttributeNames": {"#room": room},
    }
    while True:
        page = _dynamodb().scan(**kwargs)
        found.extend(item["connectionId"]["S"] for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _post(connection_id: str, data: bytes) -> None:
    try:
        _management_api().post_to_connection(ConnectionId=connection_id, Data=data)
    except ClientError as error:
        if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 410:
            # The sample's stale-connection cleanup: delete the record of the gone connection.
            _dynamodb().delete_item(
                TableName=os.environ[ENV.CONNECTIONS_TABLE], Key={"connectionId": {"S": connection_id}}
            )
        else:
            raise


def send_message(event: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(event.get("body") or "{}")
    authorizer = event["requestContext"].get("authorizer") or {}
    room = str(body.get("room", ""))
    frame = {
        "type": "message",
        "room": room,
        "id": uuid.uuid4().hex,
        "user": authorizer.get("userId", ""),
        "name": authorizer.get("name", ""),
        "text": body.get("text", ""),
        "ts": now_ms(),
        "clientMsgId": body.get("clientMsgId"),
    }
    data = json.dumps(frame, separators=(",", ":")).encode("utf-8")
    connections = room_connections(room)
    # Promise.all: every post in flight at once (up to the HTTP pool), the first error fails the call.
    for future in [_pool().submit(_post, connection_id, data) for connection_id in connections]:
        future.result()
    return {"statusCode": 200}


def handler(event: dict[str, Any], context: Any) -> Any:
    if event.get("requestContext", {}).get("routeKey") == "sendmessage":
        return send_message(event)
    return ingress_handler(event, context)
