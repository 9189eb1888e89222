"""The janitor's resume point: where its last Scan stopped (docs/fanout.md, "The janitor")."""

from __future__ import annotations

from typing import Any

from functions.chat.adapters.dynamodb.keys import CONSISTENT, serialize
from functions.chat.adapters.dynamodb.tables import Tables


class JanitorCursorTable(Tables):
    """One item on the rooms table (`JANITOR` / `CURSOR`)."""

    def load_janitor_cursor(self) -> dict[str, Any] | None:
        response = self._db.get_item(
            TableName=self._rooms, Key=serialize({"pk": "JANITOR", "sk": "CURSOR"}), ConsistentRead=CONSISTENT
        )
        item = response.get("Item")
        if item is None or "cursor" not in item:
            return None
        return dict(item["cursor"]["M"])

    def save_janitor_cursor(self, cursor: dict[str, Any] | None, now_ms: int) -> None:
        item: dict[str, Any] = {
            "pk": {"S": "JANITOR"},
            "sk": {"S": "CURSOR"},
            "updatedAt": {"N": str(now_ms)},
        }
        if cursor:
            item["cursor"] = {"M": cursor}  # a raw LastEvaluatedKey, kept in wire form
        self._db.put_item(TableName=self._rooms, Item=item)
