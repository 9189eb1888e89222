"""A flood is refused without a DynamoDB write per frame, and the limiter's answers do not change.

The limiter (GCRA, `ChatStore.touch_connection`) keeps `tat` on the connection item; it only
grows, so the highest `tat` a process has seen is a lower bound of the stored one. Frames whose
limit is below it are refused by the process itself. Before, each refused frame of a flood cost
a conditional UpdateItem (on the local runtime: a call into the one serialized moto that every
other client waits on), and each frame inside a burst cost two (case 1, bound to fail, then
case 2).
"""

from __future__ import annotations

from typing import Any, cast

from botocore.exceptions import ClientError

from functions.chat.adapters.dynamodb.store import ChatStore
from functions.chat.domain.ports import RateLimited
from functions.chat.settings import Settings


class ConnectionItem:
    """One connection item under the two conditional updates the limiter makes."""

    def __init__(self) -> None:
        self.item: dict[str, Any] = {"connectionId": {"S": "c1"}, "userId": {"S": "u"}}
        self.writes = 0

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.writes += 1
        values = {key: int(value["N"]) for key, value in request["ExpressionAttributeValues"].items()}
        tat = int(self.item["tat"]["N"]) if "tat" in self.item else None
        if ":next" in values:  # case 1: a full bucket
            allowed, new = tat is None or tat <= values[":now"], values[":next"]
        else:  # case 2: tokens left
            allowed = tat is not None and values[":now"] < tat <= values[":limit"]
            new = (tat or 0) + values[":interval"]
        if not allowed:
            failed = {
                "Error": {"Code": "ConditionalCheckFailedException", "Message": "no"},
                "Item": dict(self.item),
            }
            raise ClientError(cast(Any, failed), "UpdateItem")
        self.item["tat"] = {"N": str(new)}
        self.item["lastSeen"] = {"N": str(values[":now"])}
        return {"Attributes": dict(self.item)}


def answers(store: ChatStore, times: list[int]) -> list[str]:
    out = []
    for now in times:
        try:
            store.touch_connection("c1", now)
            out.append("ok")
        except RateLimited:
            out.append("limited")
    return out


def test_a_flood_past_the_burst_costs_no_write_and_the_bucket_refills() -> None:
    item = ConnectionItem()
    store = ChatStore(cast(Any, item), Settings(rate_limit_per_second=10, rate_limit_burst=5))
    # 50 frames in the same millisecond: the burst of 5 passes, the rest are refused.
    assert answers(store, [1000] * 50) == ["ok"] * 5 + ["limited"] * 45
    # One write per allowed frame and none for the 45 refused ones (before: 54, a failed case 1
    # ahead of each of the 4 spends and one refused write per refused frame).
    assert item.writes == 5
    # 300 ms later three tokens are back (10/s), exactly as the stored state says.
    assert answers(store, [1300] * 4) == ["ok"] * 3 + ["limited"]


def test_the_process_floor_never_refuses_what_the_table_allows() -> None:
    """Two processes (two stores) spend the same connection's tokens; each refuses on its own
    only below what it has seen, which the stored `tat` is always at or above."""
    item = ConnectionItem()
    settings = Settings(rate_limit_per_second=10, rate_limit_burst=3)
    one, two = ChatStore(cast(Any, item), settings), ChatStore(cast(Any, item), settings)
    assert answers(one, [0, 0, 0, 0]) == ["ok", "ok", "ok", "limited"]
    assert answers(two, [0]) == ["limited"]  # learnt from the table: a write was needed
    assert answers(two, [250]) == ["ok"]  # two tokens back after 250 ms (one spent here)
    assert answers(one, [250]) == ["ok"]  # `one` remembers an older tat: still asks the table
    assert answers(one, [250]) == ["limited"]
