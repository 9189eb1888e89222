"""What every DynamoDB adapter of the chat shares: the client, the table names, paged
Query and BatchGetItem, the rooms' counters and the pause after a transaction conflict."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from functions.chat.adapters.dynamodb.keys import (
    MEMBER_COUNTER_PREFIX,
    META,
    attr_values,
    deserialize,
    room_pk,
    serialize,
)
from functions.chat.domain.ports import StoreBusy
from functions.chat.retry import CONFLICT_BACKOFF
from functions.chat.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_LIMIT: Final = 100  # BatchGetItem's keys per request


BATCH_GET_RETRIES: Final = 8


class Tables:
    """The chat's three tables through one boto3 client (one per process)."""

    def __init__(self, client: DynamoDBClient, settings: Settings) -> None:
        self._db = client
        self._connections = settings.connections_table
        self._rooms = settings.rooms_table
        self._messages = settings.messages_table
        self._settings = settings

    @property
    def client(self) -> DynamoDBClient:
        """The shared DynamoDB client (the change store, functions/chat/adapters/dynamodb/changes.py, uses it too)."""
        return self._db

    def room_counters(self, room: str, *, consistent: bool = False) -> tuple[int, int]:
        """(latest seq, member count) of a room; (0, 0) for a room never joined.

        One Query of the room's counter items: `META` (seq) and the `MEMBERS#k` shards a join
        or leave adds to (docs/data-model.md, "Per-key budget"), summed; a `members` left on
        META by an older version counts too."""
        seq = members = 0
        for item in self._query(
            TableName=self._rooms,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :meta",
            ExpressionAttributeValues=attr_values(pk=room_pk(room), first=MEMBER_COUNTER_PREFIX, meta=META),
            ProjectionExpression="sk, seq, members",
            ConsistentRead=consistent,
        ):
            members += int(item.get("members", 0))
            if item.get("sk") == META:
                seq = int(item.get("seq", 0))
        return seq, members

    def _batch_get(
        self,
        table: str,
        keys: list[dict[str, Any]],
        *,
        projection: str | None = None,
        consistent: bool = False,
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                "Keys": [serialize(key) for key in keys[start : start + BATCH_GET_LIMIT]],
                "ConsistentRead": consistent,
            }
            if projection:
                request["ProjectionExpression"] = projection
            pending: Any = {table: request}
            for attempt in range(BATCH_GET_RETRIES + 1):
                response = self._db.batch_get_item(RequestItems=pending)
                items.extend(deserialize(item) for item in response.get("Responses", {}).get(table, []))
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                if attempt == BATCH_GET_RETRIES:
                    raise StoreBusy(f"BatchGetItem on {table} kept leaving keys unprocessed")
                backoff(attempt)
        return items

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            response = self._db.query(**kwargs)
            for item in response.get("Items", []):
                yield deserialize(item)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last


def backoff(attempt: int) -> None:
    """A transaction conflict's pause (functions/chat/retry.py)."""
    CONFLICT_BACKOFF.sleep(attempt)
