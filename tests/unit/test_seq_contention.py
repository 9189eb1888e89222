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


class CountingRoom(SharedRoom):
    """SharedRoom that counts its reads of the newest seq and holds the first commit at a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.queries = 0
        self.gate = threading.Event()
        self.first_commit_started = threading.Event()

    def query(self, **request: Any) -> dict[str, Any]:
        self.queries += 1
        return super().query(**request)

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        if not self.first_commit_started.is_set():
            self.first_commit_started.set()
            assert self.gate.wait(10)
        return super().transact_write_items(TransactItems)


class WatchedLock:
    """The turn's lock, telling when somebody starts to wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking:
            self.waiting.set()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()


def _send_behind_a_first_sender(room: CountingRoom, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sender 1 holds the room's turn in its commit while sender 2 waits for it; `room.seq` may
    move meanwhile (another process). Returns the two seqs, in sender order."""
    store = ChatStore(cast(Any, room), Settings())
    turn = messages_module.seq_turn_of("busy")
    lock = WatchedLock()
    monkeypatch.setattr(turn, "lock", lock)
    monkeypatch.setattr(turn, "handed_on", None)
    seqs = [0, 0]

    def send(index: int) -> None:
        seqs[index] = int(store.store_message("busy", f"u{index}", "U", "hi", f"c{index}", 1).item["seq"])

    first = threading.Thread(target=send, args=(0,))
    first.start()
    assert room.first_commit_started.wait(10)
    lock.waiting.clear()
    second = threading.Thread(target=send, args=(1,))
    second.start()
    assert lock.waiting.wait(10)  # the second sender is waiting for the turn
    room.gate.set()
    first.join(10)
    second.join(10)
    return seqs


def test_a_sender_that_waited_for_its_turn_starts_after_its_predecessor_without_a_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = CountingRoom()
    assert _send_behind_a_first_sender(room, monkeypatch) == [1, 2]
    assert room.queries == 1  # only the first sender read the newest seq
    assert room.attempts == 2  # and neither lost a race


def test_a_hand_off_overtaken_elsewhere_loses_one_race_and_leaves_no_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = CountingRoom()
    original = room.transact_write_items

    def then_another_process_stores(TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        answer = original(TransactItems)
        if room.seq == 1:
            room.seq = 2  # seq 2 is taken by a sender in another process
        return answer

    monkeypatch.setattr(room, "transact_write_items", then_another_process_stores)
    assert _send_behind_a_first_sender(room, monkeypatch) == [1, 3]
    assert room.attempts == 3  # the hand-off's 2 was refused, then 3 after reading the newest


def test_a_sender_that_did_not_wait_reads_the_newest_seq(monkeypatch: pytest.MonkeyPatch) -> None:
    room = CountingRoom()
    room.gate.set()
    store = ChatStore(cast(Any, room), Settings())
    monkeypatch.setattr(messages_module.seq_turn_of("busy"), "handed_on", None)
    assert store.store_message("busy", "a", "A", "hi", "c1", 1).item["seq"] == 1
    room.seq = 7  # other processes stored meanwhile
    assert store.store_message("busy", "b", "B", "hi", "c2", 1).item["seq"] == 8
    assert room.queries == 2 and room.attempts == 2  # each read, neither lost a race


def test_the_counter_is_raised_after_the_turn_is_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """META's counter write is not on the room's critical path: the next sender may start."""
    room = CountingRoom()
    room.gate.set()
    turn = messages_module.seq_turn_of("busy")
    held_while_raising: list[bool] = []

    def update_item(**request: Any) -> dict[str, Any]:
        held_while_raising.append(turn.lock.locked())
        return {}

    monkeypatch.setattr(room, "update_item", update_item)
    ChatStore(cast(Any, room), Settings()).store_message("busy", "a", "A", "hi", "c1", 1)
    assert held_while_raising == [False]
