"""In-memory implementations of the domain's ports (functions/chat/domain/ports.py), for fast tests of
domain rules with no AWS. Each passes the same contract suite as the AWS adapter it stands for
(tests/contract/)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from math import ceil
from typing import Any, Final

from functions.chat.adapters.dynamodb.changes import LOG_PAGE_ENTRIES, state_attributes
from functions.chat.adapters.dynamodb.keys import (
    connection_item,
    new_epoch,
    new_message,
    shard_for,
    stored_message,
)
from functions.chat.adapters.queue import BATCH_SIZE
from functions.chat.clock import Clock, now_ms
from functions.chat.domain.ports import (
    DM_KIND,
    MAX_DELAY_SECONDS,
    ROOM_KIND,
    ChangeResult,
    ConnectionGone,
    ConnectionInfo,
    ConnectionRecord,
    Decide,
    Gone,
    JoinResult,
    LeaveResult,
    Member,
    Membership,
    MessageNotFound,
    NotMember,
    RateLimited,
    Refused,
    Restricted,
    Restriction,
    RoomState,
    StoredMessage,
    Throttled,
    Updates,
    restriction_stamp,
)
from functions.chat.jobs import FanoutJob
from functions.chat.settings import Settings


@dataclass
class InMemoryJobSink:
    """`JobSink` in lists: the bodies as SQS would hold them, with each job's delay."""

    queued: list[tuple[str, int]] = field(default_factory=list)  # (body, delay seconds)
    dead: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)

    def enqueue(self, jobs: Sequence[FanoutJob], *, delay_seconds: int = 0) -> int:
        delay = max(0, min(MAX_DELAY_SECONDS, delay_seconds))
        self.queued.extend((job.to_json(), delay) for job in jobs)
        return ceil(len(jobs) / BATCH_SIZE)

    def dead_letter(self, jobs: Sequence[FanoutJob]) -> int:
        self.dead.extend(job.to_json() for job in jobs)
        return ceil(len(jobs) / BATCH_SIZE)

    def park(self, bodies: Sequence[str]) -> int:
        self.parked.extend(bodies)
        return ceil(len(bodies) / BATCH_SIZE)


# -- the Management API ---------------------------------------------------------------------------

# PostToConnection's payload limit (API Gateway answers 413 PayloadTooLargeException past it).
MAX_POST_BYTES: Final = 128 * 1024


class InMemoryManagementApi:
    """`ManagementApi` over connections held here: what each received, which were deleted. Held
    to the local runtime's Management API (the emulator of API Gateway's) by
    tests/contract/test_management_api.py. `open` and `close` stand for clients connecting and
    going away; `throttle` scripts 429s, which API Gateway answers near the account's limit."""

    def __init__(self, clock: Clock = now_ms) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, tuple[int, int, str]] = {}  # id -> connected at, last active, source ip
        self._throttles: dict[str, int] = {}
        self.frames: dict[str, list[bytes]] = {}
        self.deleted: list[str] = []

    def open(self, connection_id: str, source_ip: str = "127.0.0.1") -> None:
        now = self._clock()
        with self._lock:
            self._open[connection_id] = (now, now, source_ip)
            self.frames.setdefault(connection_id, [])

    def close(self, connection_id: str) -> None:
        with self._lock:
            self._open.pop(connection_id, None)

    def throttle(self, connection_id: str, times: int = 1) -> None:
        with self._lock:
            self._throttles[connection_id] = self._throttles.get(connection_id, 0) + times

    def post(self, connection_id: str, data: bytes) -> None:
        with self._lock:
            if self._throttles.get(connection_id, 0) > 0:
                self._throttles[connection_id] -= 1
                raise Throttled(connection_id, "LimitExceededException")
            if len(data) > MAX_POST_BYTES:
                raise Refused(connection_id, "PayloadTooLargeException (413)")
            if connection_id not in self._open:
                raise Gone(connection_id, "GoneException")
            self.frames[connection_id].append(bytes(data))

    def get(self, connection_id: str) -> ConnectionInfo:
        with self._lock:
            found = self._open.get(connection_id)
        if found is None:
            raise Gone(connection_id, "GoneException")
        connected_at, last_active, source_ip = found
        return ConnectionInfo(_iso(connected_at), _iso(last_active), source_ip)

    def delete(self, connection_id: str) -> None:
        with self._lock:
            if self._open.pop(connection_id, None) is None:
                raise Gone(connection_id, "GoneException")
            self.deleted.append(connection_id)


def _iso(epoch_ms: int) -> str:
    """A timestamp as `ManagementClient.get` gives it (a botocore datetime as text)."""
    return str(datetime.fromtimestamp(epoch_ms / 1000, UTC))


# -- the store's ports: one in-memory `ChatStorage` ---------------------------------------------
# Dicts behind one lock, so each call is atomic as its DynamoDB transaction is. Orders follow
# the tables' sort keys (connection ids, user ids, room names, seqs), so pages match.


def _live(until: int | None, now_ms: int) -> bool:
    """A ban or mute's until (ms, 0 = until lifted) that still holds at `now_ms`."""
    return until is not None and (until == 0 or until > now_ms)


@dataclass
class _Room:
    seq: int = 0
    epoch: str | None = None
    kind: str = ROOM_KIND
    users: tuple[str, ...] = ()
    members: int = 0
    shards: dict[str, dict[str, Member]] = field(default_factory=dict)  # shard -> connection -> member
    presence: dict[str, int] = field(default_factory=dict)  # user -> connections in the room
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> stored item
    rev: int = 0
    log: dict[int, dict[str, Any]] = field(default_factory=dict)  # rev -> {seq, fannedOut}


class InMemoryChatStore:
    """`ChatStorage` in dicts: connections with the limiter, memberships with presence, shards,
    restrictions and DMs, messages with seq and idempotency, the change log, the janitor's
    cursor. It passes the DynamoDB store's contract suites (tests/contract/)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.RLock()
        self._connections: dict[str, dict[str, Any]] = {}  # id -> the item, as DynamoDB keeps it
        self._user_connections: dict[str, dict[str, int]] = {}  # user -> connection -> ttl (s)
        self._rooms: dict[str, _Room] = {}
        self._memberships: dict[str, dict[str, dict[str, Any]]] = {}  # user -> room -> item
        self._restrictions: dict[tuple[Restriction, str, str], dict[str, Any]] = {}
        self._claims: dict[tuple[str, str, str], dict[str, Any]] = {}  # (user, room, clientMsgId)
        self._cursor: dict[str, Any] | None = None
        self.changes = InMemoryChangeLog(self)

    def _room(self, room: str) -> _Room:
        return self._rooms.setdefault(room, _Room())

    # -- connections ---------------------------------------------------------------------------

    def put_connection(
        self,
        connection_id: str,
        user_id: str,
        name: str,
        rooms: Sequence[str] | None,
        now_ms: int,
        *,
        batch: bool = False,
    ) -> None:
        item = connection_item(connection_id, user_id, name, rooms, now_ms, self._settings, batch=batch)
        with self._lock:
            self._connections[connection_id] = item
            self._user_connections.setdefault(user_id, {})[connection_id] = int(item["ttl"])

    def get_connection(self, connection_id: str) -> ConnectionRecord | None:
        with self._lock:
            item = self._connections.get(connection_id)
            return None if item is None else ConnectionRecord.from_item(copy.deepcopy(item))

    def touch_connection(
        self, connection_id: str, now_ms: int, *, member_of: str | None = None, unless_muted: bool = False
    ) -> ConnectionRecord:
        interval = max(1, round(1000.0 / self._settings.rate_limit_per_second))
        limit = now_ms + (self._settings.rate_limit_burst - 1) * interval
        with self._lock:
            item = self._connections.get(connection_id)
            if item is None:
                raise ConnectionGone(connection_id)
            if member_of is not None:
                if member_of not in item["joined"]:
                    raise NotMember(member_of)
                until = item.get(restriction_stamp(Restriction.MUTE, member_of))
                if unless_muted and until is not None and _live(int(until), now_ms):
                    raise Restricted(Restriction.MUTE, member_of, int(until))
            tat = item.get("tat")
            if tat is None or tat <= now_ms:
                tat = now_ms + interval  # the bucket was full
            elif tat <= limit:
                tat += interval
            else:
                raise RateLimited(connection_id)
            item["tat"], item["lastSeen"] = tat, now_ms
            return ConnectionRecord.from_item(copy.deepcopy(item))

    def delete_connection_item(self, connection_id: str) -> None:
        with self._lock:
            self._connections.pop(connection_id, None)

    def scan_stale_connections(
        self,
        *,
        idle_before_ms: int,
        connected_before_ms: int,
        start_key: dict[str, Any] | None,
        page_size: int,
    ) -> tuple[list[ConnectionRecord], dict[str, Any] | None]:
        """Like a Scan with a Limit: `page_size` items read, then filtered; the key in wire form."""
        after = str(start_key["connectionId"]["S"]) if start_key else None
        with self._lock:
            ids = sorted(c for c in self._connections if after is None or c > after)
            page = ids[:page_size]
            stale = [
                ConnectionRecord.from_item(copy.deepcopy(self._connections[c]))
                for c in page
                if self._connections[c]["lastSeen"] < idle_before_ms
                or self._connections[c]["connectedAt"] < connected_before_ms
            ]
        next_key = {"connectionId": {"S": page[-1]}} if len(ids) > page_size else None
        return stale, next_key

    def stamp_connection(
        self, connection_id: str, kind: Restriction, room: str, until_ms: int | None
    ) -> None:
        with self._lock:
            item = self._connections.get(connection_id)
            if item is None:
                return
            if until_ms is None:
                item.pop(restriction_stamp(kind, room), None)
            else:
                item[restriction_stamp(kind, room)] = until_ms

    def user_connections(self, user_id: str, now_ms: int) -> list[str]:
        with self._lock:
            entries = self._user_connections.get(user_id, {})
            return sorted(c for c, ttl in entries.items() if ttl > now_ms // 1000)

    # -- memberships ---------------------------------------------------------------------------

    def room_counters(self, room: str, *, consistent: bool = False) -> tuple[int, int]:
        with self._lock:
            state = self._rooms.get(room)
            return (0, 0) if state is None else (state.seq, state.members)

    def room_epoch(self, room: str) -> str:
        with self._lock:
            state = self._room(room)
            if not state.epoch:
                state.epoch = new_epoch()
            return state.epoch

    def _upsert_membership(
        self, user_id: str, room: str, kind: str, peer: str | None, read_from: int, now_ms: int
    ) -> bool:
        """Create the membership, or leave an existing one as it is (its peer is refreshed)."""
        rooms = self._memberships.setdefault(user_id, {})
        existing = rooms.get(room)
        if existing is None:
            rooms[room] = {"room": room, "kind": kind, "joinedAt": now_ms, "readSeq": read_from, "peer": peer}
            return True
        if peer is not None:
            existing["peer"] = peer
        return False

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
        with self._lock:
            if room in connection.joined:
                self._upsert_membership(connection.user_id, room, kind, peer, 0, now_ms)
                return JoinResult(connection.joined[room], False)
            item = self._connections.get(connection.connection_id)
            if item is None:
                raise ConnectionGone(connection.connection_id)
            if room in item["joined"]:  # a concurrent join of the same connection won
                return JoinResult(item["joined"][room], False)
            until = item.get(restriction_stamp(Restriction.BAN, room))
            if until is not None and _live(int(until), now_ms):
                raise Restricted(Restriction.BAN, room, int(until))
            state = self._room(room)
            shard = shard_for(connection.connection_id, state.members, self._settings.shard_size)
            state.shards.setdefault(shard, {})[connection.connection_id] = Member(
                connection.connection_id, connection.user_id, connection.batch
            )
            state.members += 1
            item["joined"][room] = shard
            if mute_until is not None:
                item[restriction_stamp(Restriction.MUTE, room)] = mute_until
            first = connection.user_id not in state.presence
            state.presence[connection.user_id] = state.presence.get(connection.user_id, 0) + 1
            self._upsert_membership(connection.user_id, room, kind, peer, state.seq, now_ms)
            return JoinResult(shard, first)

    def leave(
        self, connection: ConnectionRecord, room: str, *, update_connection: bool = True
    ) -> LeaveResult | None:
        shard = connection.joined.get(room)
        if shard is None:
            return None
        with self._lock:
            state = self._room(room)
            if state.shards.get(shard, {}).pop(connection.connection_id, None) is None:
                return None  # already removed by a concurrent leave, disconnect or prune
            state.members -= 1
            item = self._connections.get(connection.connection_id)
            if update_connection and item is not None:
                item["joined"].pop(room, None)
            count = state.presence.get(connection.user_id)
            last = count is not None and count <= 1
            if last:
                del state.presence[connection.user_id]
            elif count is not None:
                state.presence[connection.user_id] = count - 1
            return LeaveResult(room, connection.user_id, last)

    def remove_connection(self, connection_id: str) -> list[LeaveResult]:
        connection = self.get_connection(connection_id)
        if connection is None:
            return []
        results = [
            left
            for room in sorted(connection.joined)
            if (left := self.leave(connection, room, update_connection=False)) is not None
        ]
        with self._lock:
            self._user_connections.get(connection.user_id, {}).pop(connection_id, None)
            self._connections.pop(connection_id, None)
        return results

    def list_shards(self, room: str) -> list[str]:
        with self._lock:
            return sorted(self._room(room).shards)

    def shard_members(self, room: str, shard: str) -> Iterator[Member]:
        with self._lock:
            members = self._room(room).shards.get(shard, {})
            listed = [members[c] for c in sorted(members)]
        yield from listed

    def online_users(self, room: str, limit: int) -> list[str]:
        with self._lock:
            return sorted(self._room(room).presence)[:limit]

    def add_membership(
        self, user_id: str, room: str, now_ms: int, *, kind: str = ROOM_KIND, peer: str | None = None
    ) -> bool:
        with self._lock:
            return self._upsert_membership(user_id, room, kind, peer, self._room(room).seq, now_ms)

    def membership(self, user_id: str, room: str) -> Membership | None:
        with self._lock:
            item = self._memberships.get(user_id, {}).get(room)
            return None if item is None else Membership.from_item(item)

    def memberships(self, user_id: str) -> list[Membership]:
        with self._lock:
            rooms = self._memberships.get(user_id, {})
            return [Membership.from_item(rooms[room]) for room in sorted(rooms)]

    def put_restriction(
        self, kind: Restriction, room: str, user_id: str, until_ms: int, reason: str, by: str, now_ms: int
    ) -> None:
        with self._lock:
            self._restrictions[(kind, room, user_id)] = {"until": until_ms, "reason": reason, "by": by}

    def delete_restriction(self, kind: Restriction, room: str, user_id: str) -> bool:
        with self._lock:
            return self._restrictions.pop((kind, room, user_id), None) is not None

    def active_restrictions(self, room: str, user_id: str, now_ms: int) -> dict[Restriction, int]:
        with self._lock:
            found = {kind: self._restrictions.get((kind, room, user_id)) for kind in Restriction}
        return {
            kind: int(item["until"])
            for kind, item in found.items()
            if item is not None and _live(int(item["until"]), now_ms)
        }

    def delete_membership(self, user_id: str, room: str) -> bool:
        with self._lock:
            return self._memberships.get(user_id, {}).pop(room, None) is not None

    def set_read(self, user_id: str, room: str, seq: int) -> tuple[Membership | None, bool]:
        with self._lock:
            item = self._memberships.get(user_id, {}).get(room)
            if item is None:
                return None, False
            moved = int(item["readSeq"]) < seq
            if moved:
                item["readSeq"] = seq
            return Membership.from_item(item), moved

    def room_kind(self, room: str) -> tuple[str, tuple[str, ...]]:
        with self._lock:
            state = self._room(room)
            return state.kind, state.users

    def open_dm(self, room: str, users: tuple[str, str], now_ms: int) -> None:
        first, second = users
        with self._lock:
            state = self._room(room)
            state.kind, state.users = DM_KIND, tuple(sorted(users))
            self._upsert_membership(first, room, DM_KIND, second, state.seq, now_ms)
            self._upsert_membership(second, room, DM_KIND, first, state.seq, now_ms)

    def room_states(self, rooms: Sequence[str]) -> dict[str, RoomState]:
        with self._lock:
            states: dict[str, RoomState] = {}
            for room in rooms:
                state = self._rooms.get(room)
                seq = 0 if state is None else state.seq
                last = None if state is None else state.messages.get(seq)
                states[room] = RoomState(seq, None if last is None else _without_ttl(last))
            return states

    # -- messages ------------------------------------------------------------------------------

    def store_message(
        self, room: str, user_id: str, name: str, text: str, client_msg_id: str, now_ms: int
    ) -> StoredMessage:
        with self._lock:
            state = self._room(room)
            claim = self._claims.get((user_id, room, client_msg_id))
            if claim is not None and int(claim["seq"]) in state.messages:
                first = state.messages[int(claim["seq"])]
                return StoredMessage(_without_ttl(first), duplicate=True, fanned_out=bool(claim["fannedOut"]))
            seq = self.latest_seq(room) + 1
            message = new_message(room, seq, user_id, name, text, client_msg_id, now_ms)
            state.messages[seq] = stored_message(message, self._settings)
            self._claims[(user_id, room, client_msg_id)] = {"seq": seq, "fannedOut": False}
            state.seq = max(state.seq, seq)
            return StoredMessage(message, duplicate=False, fanned_out=False)

    def latest_seq(self, room: str) -> int:
        with self._lock:
            state = self._room(room)
            return max([state.seq, *state.messages])

    def mark_fanned_out(self, user_id: str, room: str, client_msg_id: str) -> None:
        with self._lock:
            self._claims[(user_id, room, client_msg_id)]["fannedOut"] = True

    def messages_after(self, room: str, since: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        with self._lock:
            messages = self._room(room).messages
            seqs = sorted(seq for seq in messages if seq > since)
            return [_without_ttl(messages[seq]) for seq in seqs[:limit]], len(seqs) > limit

    def messages_before(self, room: str, before: int | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        with self._lock:
            messages = self._room(room).messages
            seqs = sorted(seq for seq in messages if before is None or seq < before)
            page = seqs[-limit:] if limit else []
            return [_without_ttl(messages[seq]) for seq in page], len(seqs) > limit

    # -- the janitor's cursor --------------------------------------------------------------------

    def load_janitor_cursor(self) -> dict[str, Any] | None:
        return copy.deepcopy(self._cursor)

    def save_janitor_cursor(self, cursor: dict[str, Any] | None, now_ms: int) -> None:
        self._cursor = copy.deepcopy(cursor) or None


class InMemoryChangeLog:
    """`ChangeLog` over an `InMemoryChatStore`'s messages: each room's rev and its log."""

    def __init__(self, store: InMemoryChatStore) -> None:
        self._store = store

    def latest_rev(self, room: str) -> int:
        with self._store._lock:
            return self._store._room(room).rev

    def apply(self, room: str, seq: int, decide: Decide) -> ChangeResult:
        with self._store._lock:
            state = self._store._room(room)
            stored = state.messages.get(seq)
            if stored is None:
                raise MessageNotFound(f"{room}/{seq}")
            message = _without_ttl(stored)
            decided = decide(message)
            message_rev = int(message.get("rev", 0))
            if decided is None:
                return ChangeResult(message, message_rev, False, self._fanned_out(state, message_rev))
            state.rev += 1
            for key, value in {**state_attributes(decided), "rev": state.rev}.items():
                if value is None:
                    stored.pop(key, None)
                else:
                    stored[key] = copy.deepcopy(value)
            state.log[state.rev] = {"seq": seq, "fannedOut": False}
            return ChangeResult(_without_ttl(stored), state.rev, True, False)

    @staticmethod
    def _fanned_out(state: _Room, rev: int) -> bool:
        return rev == 0 or bool(state.log.get(rev, {}).get("fannedOut", False))

    def mark_fanned_out(self, room: str, rev: int) -> None:
        with self._store._lock:
            self._store._room(room).log[rev]["fannedOut"] = True

    def updates_after(self, room: str, rev: int, since: int, max_messages: int) -> Updates:
        with self._store._lock:
            state = self._store._room(room)
            revs = sorted(r for r in state.log if r > rev)
            cut = revs[LOG_PAGE_ENTRIES:]
            first_rev: dict[int, int] = {}
            complete_through: int | None = revs[LOG_PAGE_ENTRIES - 1] if cut else None
            for entry_rev in revs[:LOG_PAGE_ENTRIES]:
                seq = int(state.log[entry_rev]["seq"])
                if seq > since or seq in first_rev:
                    continue
                if len(first_rev) == max_messages:
                    complete_through = entry_rev - 1
                    break
                first_rev[seq] = entry_rev
            kept = [seq for seq in first_rev if seq in state.messages]
            return Updates(
                [_without_ttl(state.messages[seq]) for seq in kept],
                [first_rev[seq] for seq in kept],
                complete_through,
            )


def _without_ttl(item: dict[str, Any]) -> dict[str, Any]:
    message = copy.deepcopy(item)
    message.pop("ttl", None)
    return message
