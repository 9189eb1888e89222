"""Contention on one room's seq never surfaces as `internal` to a sender within its rate limit.

A crowd of senders in one room keeps winning the optimistic seq race: each lost race returns
the winner's seq and the sender retries. It used to give up after 60 attempts with StoreBusy
(`internal`, "the room is busy"); now it keeps its turn within a time budget. Senders that share
a process do not race at all: they take turns.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from functions.chat.adapters.dynamodb import messages as messages_module
from functions.chat.adapters.dynamodb.store import ChatStore
from functions.chat.domain.ports import StoreBusy
from functions.chat.settings import Settings


def lost_race(winner_seq: int) -> ClientError:
    """What DynamoDB answers a store whose message Put found its seq taken (ALL_OLD: the winner's)."""
    return ClientError(
        cast(
            Any,
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": [
                    {"Code": "ConditionalCheckFailed", "Item": {"seq": {"N": str(winner_seq)}}},
                    {"Code": "None"},
                ],
            },
        ),
        "TransactWriteItems",
    )


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
            raise lost_race(self.seq)
        return {}


class SharedRoom(CrowdedRoom):
    """One room's messages, each seq taken once as `attribute_not_exists(seq)` checks it, with a
    commit slow enough (a few ms, the GIL released) that concurrent senders overlap."""

    def __init__(self) -> None:
        super().__init__(losses=0)
        self._lock = threading.Lock()

    def query(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            return super().query(**request)

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        seq = int(TransactItems[0]["Put"]["Item"]["seq"]["N"])
        time.sleep(0.005)
        with self._lock:
            self.attempts += 1
            if seq <= self.seq:
                raise lost_race(self.seq)
            self.seq = seq
        return {}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages_module, "backoff", lambda attempt: None)


def test_a_sender_outlasts_a_long_run_of_lost_races() -> None:
    room = CrowdedRoom(losses=500)
    stored = ChatStore(cast(Any, room), Settings()).store_message("busy", "alice", "Alice", "hi", "c1", 1)
    assert stored.item["seq"] == 501  # right after the 500 that won before it
    assert room.attempts == 501


def test_only_a_room_stuck_past_the_budget_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages_module, "SEQ_BUDGET_SECONDS", 0.05)
    with pytest.raises(StoreBusy):
        ChatStore(cast(Any, CrowdedRoom(losses=10**9)), Settings()).store_message(
            "busy", "a", "A", "t", "c", 1
        )


def test_senders_in_one_process_take_turns_instead_of_racing() -> None:
    """Before: 16 threads sending into one room (the local runtime's invocations under a flood)
    lost races to each other, each loss a whole transaction, and under load the retries made
    every send slower until they ran out of budget (`internal`, "the room is busy")."""
    room = SharedRoom()
    store = ChatStore(cast(Any, room), Settings())
    seqs: list[int] = []

    def send(sender: int) -> None:
        for n in range(5):
            stored = store.store_message("busy", f"u{sender}", "U", "hi", f"c{n}", 1)
            seqs.append(int(stored.item["seq"]))

    threads = [threading.Thread(target=send, args=(sender,)) for sender in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seqs) == list(range(1, 81))
    assert room.attempts == 80  # one transaction per message: no race was lost
