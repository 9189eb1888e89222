"""Per-connection bookkeeping of a load-test user, with no locust and no sockets (unit-testable).

A member must receive every message whose seq is above the `seq` its `joined` frame reported
(docs/protocol.md: at-least-once to every member of the room when the message was acked). Deliveries
are de-duplicated by seq; what is missing below the highest seq seen is a lost delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dynamowave.client_core import RoomLog


@dataclass
class RoomTracker:
    """The clients' room log (dynamowave/client_core.py) plus the counts the load test reports."""

    joined_seq: int | None = None
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0

    def __post_init__(self) -> None:
        self.log = RoomLog("load", seen=self.seen)

    def delivered(self, seq: int) -> bool:
        """Record a delivery; False if it was a duplicate (already seen)."""
        if not self.log.record(seq):
            self.duplicates += 1
            return False
        return True

    def missing(self) -> list[int]:
        """Seqs after the join that never arrived, up to the highest one that did."""
        return [] if self.joined_seq is None else self.log.holes(self.joined_seq)


@dataclass
class PendingSends:
    """clientMsgId -> send time (s), until the ack (and, for own messages, the delivery) arrive."""

    awaiting_ack: dict[str, float] = field(default_factory=dict)
    awaiting_delivery: dict[str, float] = field(default_factory=dict)

    def sent(self, client_msg_id: str, at: float) -> None:
        self.awaiting_ack[client_msg_id] = at
        self.awaiting_delivery[client_msg_id] = at

    def acked(self, client_msg_id: str) -> float | None:
        return self.awaiting_ack.pop(client_msg_id, None)

    def delivered(self, client_msg_id: str) -> float | None:
        return self.awaiting_delivery.pop(client_msg_id, None)

    def refused(self, client_msg_id: str) -> None:
        self.awaiting_ack.pop(client_msg_id, None)
        self.awaiting_delivery.pop(client_msg_id, None)

    def overdue(self, now: float, timeout: float) -> list[str]:
        """Sends without an ack for `timeout` seconds (forgotten once reported)."""
        late = [cid for cid, at in self.awaiting_ack.items() if now - at > timeout]
        for cid in late:
            self.refused(cid)
        return late
