"""The chat client's rules with no I/O: what to hold of a room, what to send again, when to reconnect.

Every Python client of the wire contract (docs/protocol.md) follows the same rules, so they live
here, under no socket and no event loop (as websockets keeps its protocol core apart from its
asyncio layer): the terminal client (`dynamowave chat`), the benchmark's members and the locust
users feed it the frames they receive and send the frames it returns. The web client's
dynamowave/web/client_core.js follows the same structure in JavaScript (docs/clients.md).

* `RoomLog`: the messages held of one room, de-duplicated by seq (delivery is at least once),
  the recovery mark a re-join asks from (`since`: the highest seq with no hole below it), the
  newest state of each changed message (by `rev`) and the room's history epoch.
* `Outbox`: sends waiting for their ack; each is sent again, with the same clientMsgId (sends
  are idempotent), once per connection after the room is joined on it.
* `reconnect_delay`: exponential backoff with jitter, so a restarted server is not hit by
  every client at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

RECONNECT_BASE_SECONDS: Final = 0.5
RECONNECT_CAP_SECONDS: Final = 30.0


def reconnect_delay(attempt: int, draw: Callable[[float, float], float] = random.uniform) -> float:
    """The pause before reconnect `attempt` (1, 2, ...): uniform in [ceiling / 2, ceiling], the
    ceiling doubling from 0.5 s to at most 30 s."""
    ceiling = min(RECONNECT_CAP_SECONDS, RECONNECT_BASE_SECONDS * 2 ** min(max(attempt - 1, 0), 30))
    return draw(ceiling / 2, ceiling)


@dataclass
class RoomLog:
    """What a client holds of one room's history (docs/protocol.md, recovery and de-duplication)."""

    name: str
    since: int | None = None  # `since` for the first join; afterwards the recovery mark
    seen: set[int] = field(default_factory=set)
    latest: int = 0
    joined: bool = False  # joined on the current connection
    ever_joined: bool = False
    history_exhausted: bool = False
    rev: int = 0  # the room's last change seen (v2 lifecycle): `join` recovers changes after it
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> newest state seen
    epoch: str | None = None  # the room's history epoch

    def record(self, seq: int) -> bool:
        """Note message `seq` as held; False if it already was (a duplicate delivery)."""
        if seq in self.seen:
            return False
        self.seen.add(seq)
        self.latest = max(self.latest, seq)
        return True

    def unseen(self, messages: Iterable[Any]) -> list[dict[str, Any]]:
        """The messages not held yet, in seq order (anything without an integer seq is ignored)."""
        fresh = [
            m
            for m in messages
            if isinstance(m, dict) and isinstance(m.get("seq"), int) and m["seq"] not in self.seen
        ]
        return sorted(fresh, key=lambda m: int(m["seq"]))

    def apply(self, state: dict[str, Any]) -> bool:
        """Keep a message's state if its rev is newer than the one held (updates arrive in any
        order, possibly twice); True if it was."""
        seq, rev = state.get("seq"), state.get("rev")
        if not isinstance(seq, int) or not isinstance(rev, int):
            return False
        held = self.versions.get(seq)
        if held is not None and int(held.get("rev", 0)) >= rev:
            return False
        self.versions[seq] = state
        return True

    def new_epoch(self, epoch: object) -> bool:
        """Record the room's epoch; True if it changed (its history was reset: drop the cache)."""
        if not isinstance(epoch, str) or not epoch:
            return False
        changed = self.epoch is not None and epoch != self.epoch
        self.epoch = epoch
        if changed:
            self.forget()
        return changed

    def forget(self) -> None:
        """Drop what is held of the room's history (a new epoch: seq 1 is a new message)."""
        self.seen.clear()
        self.latest = 0
        self.since = None
        self.history_exhausted = False
        self.rev = 0
        self.versions.clear()

    def lowest(self) -> int:
        return min(self.seen) if self.seen else 0

    def recovery_mark(self) -> int:
        """Highest seq up to which every message since the lowest held is held (no hole): the
        fan-out may deliver 7 before 6, and a re-join from 7 would lose 6."""
        if not self.seen:
            return self.latest
        seq = self.lowest()
        while seq + 1 in self.seen:
            seq += 1
        return seq

    def holes(self, after: int) -> list[int]:
        """Seqs above `after` and below the highest held that are not held (lost, or not yet)."""
        if not self.seen:
            return []
        return [seq for seq in range(after + 1, max(self.seen) + 1) if seq not in self.seen]

    def join_frame(self) -> dict[str, Any]:
        """`join`, with the recovery mark and rev once the room was joined before."""
        frame: dict[str, Any] = {"action": "join", "room": self.name}
        if self.ever_joined:
            frame["since"] = self.recovery_mark()
            frame["rev"] = self.rev
        elif self.since is not None:
            frame["since"] = self.since
        return frame


@dataclass
class Outgoing:
    room: str
    text: str
    client_msg_id: str
    sent_on: int = 0  # connection number it was last sent on (0: not yet)

    def frame(self) -> dict[str, Any]:
        # The same clientMsgId on every send: the server stores and fans out a message once.
        return {
            "action": "sendmessage",
            "room": self.room,
            "text": self.text,
            "clientMsgId": self.client_msg_id,
        }


@dataclass
class Outbox:
    """Sends not acknowledged yet, by clientMsgId."""

    pending: dict[str, Outgoing] = field(default_factory=dict)

    def add(self, room: str, text: str, client_msg_id: str) -> Outgoing:
        outgoing = Outgoing(room, text, client_msg_id)
        self.pending[client_msg_id] = outgoing
        return outgoing

    def acknowledged(self, client_msg_id: str) -> Outgoing | None:
        """The ack (or the sender's own copy, which may overtake it) settles the send."""
        return self.pending.pop(client_msg_id, None)

    def due(self, outgoing: Outgoing, *, room_joined: bool, connection: int) -> bool:
        """Send now? Only into a room joined on this connection, and once per connection."""
        return room_joined and outgoing.sent_on != connection

    def for_room(self, room: str) -> list[Outgoing]:
        return [outgoing for outgoing in self.pending.values() if outgoing.room == room]

    def __len__(self) -> int:
        return len(self.pending)

    def __bool__(self) -> bool:
        return bool(self.pending)
