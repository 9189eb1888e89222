"""What the domain needs from the outside, as Protocols (docs/architecture.md, "Ports"), with
the records they return and the errors they raise.

The domain (service, delivery, redrive, user delivery) is typed against these, not against an
adapter: `functions.chat.adapters.queue.JobQueue` (SQS) and `functions.chat.adapters.memory.InMemoryJobSink`
both satisfy `JobSink`, and tests/contract/test_job_sink.py runs one suite against both. The
errors are defined here, so the domain catches them without importing an adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol

from functions.chat.clock import Clock
from functions.chat.jobs import FanoutJob
from functions.chat.lifecycle import MessageState

__all__ = ["Clock"]  # the clock port is functions/chat/clock.py's

# PostToConnection: (connection id, frame bytes); raises the `PostError` kinds below.
Poster = Callable[[str, bytes], None]
# Removes a connection with its memberships, announcing the users it was the last connection of
# (connection id, correlation id) -> jobs enqueued: `functions.chat.domain.removal`.
Pruner = Callable[[str, str], int]
MAX_DELAY_SECONDS: Final = 900  # the longest delay a JobSink takes (SQS's DelaySeconds limit)


# -- the Management API (PostToConnection, GetConnection, DeleteConnection) --------------------


class PostError(Exception):
    """A failed Management API call; `retryable` says whether backing off may help."""

    retryable: bool = False

    def __init__(self, connection_id: str, detail: str) -> None:
        super().__init__(f"{connection_id}: {detail}")
        self.connection_id = connection_id
        self.detail = detail


class Gone(PostError):
    """410: the connection no longer exists; its records are stale."""


class Throttled(PostError):
    """429 / LimitExceeded: the account's API Gateway throttle."""

    retryable = True


class Transient(PostError):
    """5xx or a connection error: worth retrying."""

    retryable = True


class Refused(PostError):
    """403 / 413 and other 4xx: retrying cannot help (logged and skipped)."""


@dataclass(frozen=True)
class ConnectionInfo:
    connected_at: str
    last_active_at: str
    source_ip: str


class ManagementApi(Protocol):
    """API Gateway's Management API at one endpoint; each call raises a `PostError` kind."""

    def post(self, connection_id: str, data: bytes) -> None: ...

    def get(self, connection_id: str) -> ConnectionInfo: ...

    def delete(self, connection_id: str) -> None: ...


# -- fan-out jobs --------------------------------------------------------------------------------


class JobSink(Protocol):
    """Where fan-out jobs go: the work queue, its dead-letter queue, the parked queue.

    Each call sends every job or raises (`functions.chat.adapters.queue.EnqueueFailed`), and returns the
    number of requests it took (ten jobs per request).
    """

    def enqueue(self, jobs: Sequence[FanoutJob], *, delay_seconds: int = 0) -> int: ...

    def dead_letter(self, jobs: Sequence[FanoutJob]) -> int: ...

    def park(self, bodies: Sequence[str]) -> int: ...


ROOM_KIND: Final = "room"


DM_KIND: Final = "dm"


class ConnectionGone(Exception):
    """The connection has no record (it disconnected or was pruned)."""


class NotMember(Exception):
    """The connection has not joined the room it names."""


class RateLimited(Exception):
    """The connection exceeded its per-connection frame rate."""


class Restricted(Exception):
    """A ban or mute stamped on the connection refused the frame's write; `until` in ms, 0 =
    until lifted."""

    def __init__(self, kind: Restriction, room: str, until: int) -> None:
        super().__init__(f"{kind.value} in {room}")
        self.kind = kind
        self.room = room
        self.until = until


class StoreBusy(Exception):
    """Seq assignment kept conflicting with other writers; the caller reports `internal`."""


class Restriction(StrEnum):
    """What a moderator can put on a user in a room; the value is the item's sort-key prefix."""

    BAN = "BAN"
    MUTE = "MUTE"


def restriction_stamp(kind: Restriction, room: str) -> str:
    """The connection item's attribute that carries a ban or mute of `room` (`ban#r`, `mute#r`)."""
    return f"{kind.value.lower()}#{room}"


STAMP_PREFIXES: Final = tuple(f"{kind.value.lower()}#" for kind in Restriction)


@dataclass(frozen=True)
class ConnectionRecord:
    connection_id: str
    user_id: str
    name: str
    joined: dict[str, str]  # room -> membership shard
    connected_at: int
    last_seen: int
    stamps: dict[str, int] = field(default_factory=dict)  # `ban#room` / `mute#room` -> until
    batch: bool = False  # opted in to coalesced delivery at $connect (docs/protocol.md)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ConnectionRecord:
        return cls(
            connection_id=str(item["connectionId"]),
            user_id=str(item.get("userId", "")),
            name=str(item.get("name", "")),
            joined={str(k): str(v) for k, v in dict(item.get("joined") or {}).items()},
            connected_at=int(item.get("connectedAt", 0)),
            last_seen=int(item.get("lastSeen", 0)),
            stamps={str(k): int(v) for k, v in item.items() if str(k).startswith(STAMP_PREFIXES)},
            batch=bool(item.get("batch", False)),
        )

    def restricted(self, kind: Restriction, room: str, now_ms: int) -> int | None:
        """The until (ms, 0 = until lifted) of an unexpired ban or mute stamped here, or None."""
        until = self.stamps.get(restriction_stamp(kind, room))
        return until if until is not None and (until == 0 or until > now_ms) else None


@dataclass(frozen=True)
class Member:
    connection_id: str
    user_id: str
    batch: bool = False  # takes coalesced `batch` frames (copied from its connection at join)


@dataclass(frozen=True)
class JoinResult:
    shard: str
    first_connection_of_user: bool


@dataclass(frozen=True)
class LeaveResult:
    room: str
    user_id: str
    last_connection_of_user: bool


@dataclass(frozen=True)
class StoredMessage:
    item: dict[str, Any]  # room, seq, id, user, name, text, ts, clientMsgId
    duplicate: bool
    fanned_out: bool


@dataclass(frozen=True)
class Membership:
    """A user's durable membership of a room: it lasts until leave, a kick or a ban, whatever
    happens to the user's connections (docs/data-model.md, "users")."""

    room: str
    kind: str  # "room" or "dm"
    peer: str | None  # a DM's other participant
    read: int  # the user's read marker: the highest seq they have read
    joined_at: int

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Membership:
        peer = item.get("peer")
        return cls(
            room=str(item["room"]),
            kind=str(item.get("kind", ROOM_KIND)),
            peer=None if peer is None else str(peer),
            read=int(item.get("readSeq", 0)),
            joined_at=int(item.get("joinedAt", 0)),
        )


@dataclass(frozen=True)
class RoomState:
    """What `rooms` needs of a room besides the membership: its latest seq and message."""

    seq: int
    last: dict[str, Any] | None


# -- the store's ports (functions/chat/adapters/dynamodb/ and functions/chat/adapters/memory.py) --


class ShardReader(Protocol):
    """What the fan-out reads: one membership shard's connections, page by page."""

    def shard_members(self, room: str, shard: str) -> Iterator[Member]: ...


class StaleConnections(Protocol):
    """The janitor's Scan: one page of connections idle since, or connected before, a time."""

    def scan_stale_connections(
        self,
        *,
        idle_before_ms: int,
        connected_before_ms: int,
        start_key: dict[str, Any] | None,
        page_size: int,
    ) -> tuple[list[ConnectionRecord], dict[str, Any] | None]: ...


class JanitorCursor(Protocol):
    """Where the janitor's last Scan stopped (an opaque page key), kept between runs."""

    def load_janitor_cursor(self) -> dict[str, Any] | None: ...

    def save_janitor_cursor(self, cursor: dict[str, Any] | None, now_ms: int) -> None: ...


class ShardDirectory(Protocol):
    """A room's membership shards, each the target of one fan-out job per room event."""

    def list_shards(self, room: str) -> list[str]: ...


class ConnectionRemover(Protocol):
    """Deletes a connection and every membership it holds; what it left, each once."""

    def remove_connection(self, connection_id: str) -> list[LeaveResult]: ...


class UserIndex(Protocol):
    """A user's live connections (the index `$connect` writes and every removal deletes)."""

    def user_connections(self, user_id: str, now_ms: int) -> list[str]: ...


class Connections(StaleConnections, UserIndex, Protocol):
    """The connections, each with its rate limiter and its ban and mute stamps, and each user's
    index of their live connections (docs/data-model.md, "connections")."""

    def put_connection(
        self,
        connection_id: str,
        user_id: str,
        name: str,
        rooms: Sequence[str] | None,
        now_ms: int,
        *,
        batch: bool = False,
    ) -> None: ...

    def get_connection(self, connection_id: str) -> ConnectionRecord | None: ...

    def touch_connection(
        self, connection_id: str, now_ms: int, *, member_of: str | None = None, unless_muted: bool = False
    ) -> ConnectionRecord:
        """Refresh lastSeen and spend one token of the connection's limiter, in one write that
        writes nothing when it refuses. Raises, in this order of precedence, `ConnectionGone`,
        `NotMember` (with `member_of`), `Restricted` (a live mute, with `unless_muted`),
        `RateLimited`."""
        ...

    def delete_connection_item(self, connection_id: str) -> None: ...

    def stamp_connection(
        self, connection_id: str, kind: Restriction, room: str, until_ms: int | None
    ) -> None: ...


class Memberships(ShardDirectory, ShardReader, ConnectionRemover, Protocol):
    """Subscriptions (a connection in a room's shard), the room's counters and presence, the
    users' durable memberships and read markers, DMs, bans and mutes."""

    def room_counters(self, room: str, *, consistent: bool = False) -> tuple[int, int]: ...

    def room_epoch(self, room: str) -> str: ...

    def join(
        self,
        connection: ConnectionRecord,
        room: str,
        now_ms: int,
        *,
        kind: str = ROOM_KIND,
        peer: str | None = None,
        mute_until: int | None = None,
    ) -> JoinResult:
        """All or nothing: subscription, counters, presence and membership. Raises `Restricted`
        (a live ban stamped on the connection), `ConnectionGone` or `StoreBusy`."""
        ...

    def leave(
        self, connection: ConnectionRecord, room: str, *, update_connection: bool = True
    ) -> LeaveResult | None: ...

    def online_users(self, room: str, limit: int) -> list[str]: ...

    def add_membership(
        self, user_id: str, room: str, now_ms: int, *, kind: str = ROOM_KIND, peer: str | None = None
    ) -> bool: ...

    def membership(self, user_id: str, room: str) -> Membership | None: ...

    def memberships(self, user_id: str) -> list[Membership]: ...

    def put_restriction(
        self, kind: Restriction, room: str, user_id: str, until_ms: int, reason: str, by: str, now_ms: int
    ) -> None: ...

    def delete_restriction(self, kind: Restriction, room: str, user_id: str) -> bool: ...

    def active_restrictions(self, room: str, user_id: str, now_ms: int) -> dict[Restriction, int]: ...

    def delete_membership(self, user_id: str, room: str) -> bool: ...

    def set_read(self, user_id: str, room: str, seq: int) -> tuple[Membership | None, bool]: ...

    def room_kind(self, room: str) -> tuple[str, tuple[str, ...]]: ...

    def open_dm(self, room: str, users: tuple[str, str], now_ms: int) -> None: ...

    def room_states(self, rooms: Sequence[str]) -> dict[str, RoomState]: ...


class Messages(Protocol):
    """Each room's messages under a gap-free seq, stored once per (user, room, clientMsgId)."""

    def store_message(
        self, room: str, user_id: str, name: str, text: str, client_msg_id: str, now_ms: int
    ) -> StoredMessage:
        """The next seq, or the first store's message (`duplicate`) on a resend. `StoreBusy`
        if the seq kept conflicting."""
        ...

    def latest_seq(self, room: str) -> int: ...

    def mark_fanned_out(self, user_id: str, room: str, client_msg_id: str) -> None: ...

    def messages_after(self, room: str, since: int, limit: int) -> tuple[list[dict[str, Any]], bool]: ...

    def messages_before(
        self, room: str, before: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]: ...


# -- a message's changes (edit, delete, react) -------------------------------------------------


class MessageNotFound(Exception):
    """No message with that seq in the room."""


Decide = Callable[[dict[str, Any]], MessageState | None]


@dataclass(frozen=True)
class ChangeResult:
    message: dict[str, Any]  # the message's current state after the call (no ttl)
    rev: int  # the message's rev (0: never changed)
    changed: bool  # False: the decision was "no change" (an idempotent repeat)
    fanned_out: bool  # the `update` of `rev` is known to be on the queue


@dataclass(frozen=True)
class Updates:
    """Recovery: the current state of messages (seq <= since) changed after a rev."""

    messages: list[dict[str, Any]]  # in the order of their first change after the rev
    first_revs: list[int]  # the rev of each one's first change after the rev (paging cursor)
    complete_through: int | None  # None: every change was read; else the log was cut after this rev


class ChangeLog(Protocol):
    """A room's message changes under its own gap-free rev (docs/protocol.md, "Message lifecycle")."""

    def latest_rev(self, room: str) -> int: ...

    def apply(self, room: str, seq: int, decide: Decide) -> ChangeResult: ...

    def mark_fanned_out(self, room: str, rev: int) -> None: ...

    def updates_after(self, room: str, rev: int, since: int, max_messages: int) -> Updates: ...


class ChatStorage(Connections, Memberships, Messages, JanitorCursor, Protocol):
    """Everything the chat keeps, as the services take it: the DynamoDB `ChatStore`, or the
    in-memory `functions.chat.adapters.memory.InMemoryChatStore`."""

    @property
    def changes(self) -> ChangeLog: ...


# -- message review (docs/protocol.md, "Message review"): functions/chat/adapters/review.py -----


class Result(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REPLACE = "replace"


@dataclass(frozen=True)
class ReviewRequest:
    kind: str  # "message" or "edit"
    room: str
    user: str
    name: str
    text: str
    client_msg_id: str | None = None
    seq: int | None = None

    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "kind": self.kind,
            "room": self.room,
            "user": self.user,
            "name": self.name,
            "text": self.text,
        }
        if self.client_msg_id is not None:
            event["clientMsgId"] = self.client_msg_id
        if self.seq is not None:
            event["seq"] = self.seq
        return event


@dataclass(frozen=True)
class Verdict:
    result: Result
    text: str  # the text to store: the original, or the replacement
    reason: str = ""
    # Why the fallback decided instead of the reviewer ("timeout", "error", "invalid"); "" if not.
    fallback: str = ""
    elapsed_ms: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.result is not Result.DENY

    @property
    def outcome(self) -> str:
        """For logs and metrics: allow, deny, replace, or fallback-allow / fallback-deny."""
        return f"fallback-{self.result}" if self.fallback else str(self.result)


class Reviewer(Protocol):
    def review(self, request: ReviewRequest) -> Verdict: ...


class NoReview:
    """No review function configured: every text is stored as sent."""

    def review(self, request: ReviewRequest) -> Verdict:
        return Verdict(Result.ALLOW, request.text)
