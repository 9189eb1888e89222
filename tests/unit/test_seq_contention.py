"""Contention on one room's seq never surfaces as `internal` to a sender within its rate limit.

A crowd of senders in one room keeps winning the optimistic seq race: each lost race returns
the winner's seq and the sender retries. It used to give up after 60 attempts with StoreBusy
(`internal`, "the room is busy"); now it keeps its turn within a time budget.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from functions.chat import store as store_module
from functions.chat.settings import Settings
from functions.chat.store import ChatStore, StoreBusy


class CrowdedRoom:
    """A DynamoDB client whose room's next seq is taken before every attempt, `losses` times."""

    def __init__(self, losses: int) -> None:
        self.losses = losses
        self.seq = 0
        self.attempts = 0

    def query(self, **_: Any) -> dict[str, Any]:  # the newest message
        return {"Items": [{"seq": {"N": str(self.seq)}}] if self.seq else []}

    def update_item(self, **_: Any) -> dict[str, Any]:  # META's counter, raised after the store
        return {}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.attempts += 1
        if self.attempts <= self.losses:
            self.seq += 1  # another sender committed first
            # The shape botocore parses a cancelled transaction into (wider than its TypedDict).
            error: Any = {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": [
                    {"Code": "ConditionalCheckFailed", "Item": {"seq": {"N": str(self.seq)}}},
                    {"Code": "None"},
                ],
            }
            raise ClientError(error, "TransactWriteItems")
        return {}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_backoff", lambda attempt: None)


def test_a_sender_outlasts_a_long_run_of_lost_races() -> None:
    room = CrowdedRoom(losses=500)
    stored = ChatStore(cast(Any, room), Settings()).store_message("busy", "alice", "Alice", "hi", "c1", 1)
    assert stored.item["seq"] == 501  # right after the 500 that won before it
    assert room.attempts == 501


def test_only_a_room_stuck_past_the_budget_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "SEQ_BUDGET_SECONDS", 0.05)
    with pytest.raises(StoreBusy):
        ChatStore(cast(Any, CrowdedRoom(losses=10**9)), Settings()).store_message(
            "busy", "a", "A", "t", "c", 1
        )
