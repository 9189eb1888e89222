"""DynamoDB adapter: every read and write of the chat's state (docs/data-model.md).

Hot paths use GetItem, Query, UpdateItem and TransactWriteItems only; the one Scan
(`scan_stale_connections`) belongs to the janitor. Multi-item changes (join, leave, store a
message) are single transactions, so a refused or failed action leaves no partial state: either
the membership, its counters and the presence counter all change, or none does.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from functions.chat.retry import CONFLICT_BACKOFF
from functions.chat.schema import INGRESS_FUNCTION
from functions.chat.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

META: Final = "META"
CONSISTENT: Final = True
_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()
# Optimistic seq assignment: concurrent senders in one room retry with jittered backoff, for
# as long as this budget allows: well inside the ingress function's own timeout (10 s), so the
# last attempt (a read timeout is 5 s) and the enqueue still finish before Lambda ends the
# invocation. A count of attempts would give up on a sender within its rate limit while a crowd
# keeps winning the race; every race has a winner, so the crowd drains and the sender gets its
# turn.
SEQ_BUDGET_SECONDS: Final = INGRESS_FUNCTION.timeout_seconds / 2
# Senders in one room that share a process take turns for its seq instead of racing each other
# through DynamoDB: every lost race is a whole transaction for nothing, and under load the
# losers' retries add the load that makes them lose again (a flood into one room on the local
# runtime, where every invocation is a thread of one process, spent seconds per send that way).
# On AWS an execution environment runs one invocation at a time, so this never waits there;
# senders in other processes still race, as above. Striped: rooms share a turn by hash.
_SEQ_TURNS: Final = tuple(threading.Lock() for _ in range(64))
ROOM_KIND: Final = "room"
DM_KIND: Final = "dm"
BATCH_GET_LIMIT: Final = 100  # BatchGetItem's keys per request
BATCH_GET_RETRIES: Final = 8
# Connections whose limiter state one process remembers (see `ChatStore._remember_tat`).
TAT_FLOORS_KEPT: Final = 10_000


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


_STAMP_PREFIXES: Final = tuple(f"{kind.value.lower()}#" for kind in Restriction)


def _unrestricted(placeholder: str) -> str:
    """A condition that holds when the stamp named by `placeholder` is absent or expired
    (`:zero` and `:now` must be bound)."""
    return f"(attribute_not_exists({placeholder}) OR ({placeholder} > :zero AND {placeholder} <= :now))"


def room_pk(room: str) -> str:
    return f"ROOM#{room}"


def shard_pk(room: str, shard: str) -> str:
    return f"ROOM#{room}#S#{shard}"


def shard_directory_pk(room: str) -> str:
    return f"ROOM#{room}#SHARDS"


def presence_sk(user_id: str) -> str:
    return f"USER#{user_id}"


def idempotency_pk(user_id: str, room: str, client_msg_id: str) -> str:
    return f"IDEM#{user_id}#{room}#{client_msg_id}"


def user_pk(user_id: str) -> str:
    """A user's partition: their memberships (``ROOM#room``) and live connections (``CONN#id``)."""
    return f"USER#{user_id}"


def user_room_sk(room: str) -> str:
    return f"ROOM#{room}"


def user_connection_sk(connection_id: str) -> str:
    return f"CONN#{connection_id}"


# The member count of a room is spread over this many counter items (`ROOM#r` / `MEMBERS#k`,
# k by a stable hash of the connection id): 100,000 joins a minute put ~104 writes a second on
# each, against DynamoDB's 1,000 per item (docs/data-model.md, "Per-key budget").
MEMBER_COUNTER_SHARDS: Final = 16
MEMBER_COUNTER_PREFIX: Final = "MEMBERS#"


def _stable_hash(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


def member_counter_sk(connection_id: str) -> str:
    """The counter item a connection's join adds to (and its leave subtracts from)."""
    return f"{MEMBER_COUNTER_PREFIX}{_stable_hash(connection_id) % MEMBER_COUNTER_SHARDS:02d}"


def shard_for(connection_id: str, members_before: int, shard_size: int) -> str:
    """Membership shard for a new member, ``"<level>.<bucket>"``.

    Level 0 is one shard for the room's first `shard_size` members. Level k >= 1 takes the
    members who join while the room holds between ``shard_size * 2**(k-1)`` and
    ``shard_size * 2**k``: that many members over ``2**(k-1)`` buckets, so each fills to about
    `shard_size`. The bucket is a stable hash of the connection id. A small room is one fan-out
    job per message; a 100,000-member room (size 250) is about 500.
    """
    ratio = (members_before + 1) / shard_size
    level = 0 if ratio <= 1 else math.ceil(math.log2(ratio))
    buckets = 1 if level == 0 else 2 ** (level - 1)
    return f"{level}.{_stable_hash(connection_id) % buckets}"


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _SERIALIZER.serialize(value) for key, value in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(_DESERIALIZER.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    """Decimals become ints (every number we store is integral); sets become sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _values(**values: Any) -> dict[str, Any]:
    return {f":{key}": _SERIALIZER.serialize(value) for key, value in values.items()}


def _cancellation_codes(error: ClientError) -> list[str]:
    reasons = error.response.get("CancellationReasons") or []
    return [str(reason.get("Code") or "None") for reason in reasons]


def _is(error: ClientError, code: str) -> bool:
    return str(error.response.get("Error", {}).get("Code")) == code


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
            stamps={str(k): int(v) for k, v in item.items() if str(k).startswith(_STAMP_PREFIXES)},
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


class ChatStore:
    """The chat's tables. One instance per process, sharing one boto3 client."""

    def __init__(self, client: DynamoDBClient, settings: Settings) -> None:
        self._db = client
        self._connections = settings.connections_table
        self._rooms = settings.rooms_table
        self._messages = settings.messages_table
        self._settings = settings
        # The highest limiter `tat` this process has seen per connection (`_remember_tat`).
        self._tat_floors: dict[str, float] = {}

    @property
    def client(self) -> DynamoDBClient:
        """The shared DynamoDB client (the change store, functions/chat/adapters/changes.py, uses it too)."""
        return self._db

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
        ttl = now_ms // 1000 + self._settings.max_connection_seconds + 3600  # TTL is only the backstop
        item: dict[str, Any] = {
            "connectionId": connection_id,
            "userId": user_id,
            "name": name,
            "allowedRooms": "*" if rooms is None else list(rooms),
            "joined": {},
            "connectedAt": now_ms,
            "lastSeen": now_ms,
            "ttl": ttl,
        }
        if batch:
            item["batch"] = True
        self._db.put_item(TableName=self._connections, Item=serialize(item))
        # Then the user's index entry, so `user_connections` finds it with one Query. In this
        # order a failure leaves at most a connection item, which the janitor's Scan finds;
        # never an index entry without its connection.
        self._db.put_item(
            TableName=self._rooms,
            Item=serialize(
                {
                    "pk": user_pk(user_id),
                    "sk": user_connection_sk(connection_id),
                    "connectionId": connection_id,
                    "connectedAt": now_ms,
                    "ttl": ttl,
                }
            ),
        )

    def get_connection(self, connection_id: str) -> ConnectionRecord | None:
        response = self._db.get_item(
            TableName=self._connections,
            Key=serialize({"connectionId": connection_id}),
            ConsistentRead=CONSISTENT,
        )
        item = response.get("Item")
        return None if item is None else ConnectionRecord.from_item(deserialize(item))

    def touch_connection(
        self, connection_id: str, now_ms: int, *, member_of: str | None = None, unless_muted: bool = False
    ) -> ConnectionRecord:
        """Refresh lastSeen and spend one token of the connection's rate limit, in one write.

        The limiter is GCRA: the item keeps a theoretical arrival time ``tat`` (ms); a frame is
        allowed while ``tat`` is at most ``burst - 1`` intervals ahead of now. With `member_of`,
        the same condition requires a membership of that room on this connection, so a frame
        that is refused (not a member, rate limited, gone) writes nothing. With `unless_muted`
        (and `member_of`), it also requires no unexpired mute of that room stamped on the
        connection: a muted user's frame is refused by this same write, and nobody pays a read
        for it. Usually one conditional UpdateItem; a second only when the first guessed the
        limiter's case wrong. Raises `ConnectionGone`, `NotMember`, `Restricted` or `RateLimited`.
        """
        interval = max(1, round(1000.0 / self._settings.rate_limit_per_second))
        limit = now_ms + (self._settings.rate_limit_burst - 1) * interval
        key = serialize({"connectionId": connection_id})
        membership, names, muting = "", {}, {}
        if member_of is not None:
            membership, names = " AND attribute_exists(joined.#room)", {"#room": member_of}
            if unless_muted:
                membership += " AND " + _unrestricted("#mute")
                names["#mute"] = restriction_stamp(Restriction.MUTE, member_of)
                muting = {"zero": 0}
        extra: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
        floor = self._tat_floors.get(connection_id)
        if floor is not None and floor > limit:
            # The write below would refuse this frame: a flood is refused without a write each.
            raise RateLimited(connection_id)
        # Known not to be full: the first try is case 2, not a case 1 bound to fail.
        refill = floor is None or floor <= now_ms
        # Two conditional cases; a racing frame can move `tat` between them, so try each a few
        # times before concluding (a false `rate_limited` would refuse a frame within the limit).
        for _ in range(3):
            if refill:
                # Case 1: the bucket is full (tat in the past or never set): tat = now + interval.
                try:
                    response = self._db.update_item(
                        TableName=self._connections,
                        Key=key,
                        UpdateExpression="SET lastSeen = :now, tat = :next",
                        ConditionExpression="attribute_exists(connectionId) "
                        "AND (attribute_not_exists(tat) OR tat <= :now)" + membership,
                        ExpressionAttributeValues=_values(now=now_ms, next=now_ms + interval, **muting),
                        ReturnValues="ALL_NEW",
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                        **extra,
                    )
                    return self._touched(response["Attributes"])
                except ClientError as error:
                    if not _is(error, "ConditionalCheckFailedException"):
                        raise
                    old: Any = error.response.get("Item")
                if not old:
                    self._tat_floors.pop(connection_id, None)
                    raise ConnectionGone(connection_id)
                previous = deserialize(old)
                if member_of is not None and member_of not in (previous.get("joined") or {}):
                    raise NotMember(member_of)
                if muting and member_of is not None:
                    until = previous.get(names["#mute"])
                    if until is not None and (int(until) == 0 or int(until) > now_ms):
                        raise Restricted(Restriction.MUTE, member_of, int(until))
                tat = float(previous.get("tat", 0))
                self._remember_tat(connection_id, tat)
                if tat > limit:
                    raise RateLimited(connection_id)
            refill = True
            # Case 2: tokens left: tat advances by one interval.
            try:
                response = self._db.update_item(
                    TableName=self._connections,
                    Key=key,
                    UpdateExpression="SET lastSeen = :now, tat = tat + :interval",
                    ConditionExpression="attribute_exists(connectionId) AND tat > :now AND tat <= :limit"
                    + membership,
                    ExpressionAttributeValues=_values(now=now_ms, interval=interval, limit=limit, **muting),
                    ReturnValues="ALL_NEW",
                    **extra,
                )
                return self._touched(response["Attributes"])
            except ClientError as error:
                if not _is(error, "ConditionalCheckFailedException"):
                    raise
        raise RateLimited(connection_id)

    def _touched(self, attributes: Mapping[str, Any]) -> ConnectionRecord:
        item = deserialize(attributes)
        self._remember_tat(str(item["connectionId"]), float(item.get("tat", 0)))
        return ConnectionRecord.from_item(item)

    def _remember_tat(self, connection_id: str, tat: float) -> None:
        """Keep the highest `tat` seen for the connection: it only ever grows, so whatever this
        process read or wrote is a lower bound of the stored one, and a frame whose limit is
        below it would be refused by the conditional write too. (Racing threads may keep a
        lower value than the last: still a lower bound.) Bounded: forgotten wholesale when full."""
        if len(self._tat_floors) >= TAT_FLOORS_KEPT:
            self._tat_floors.clear()
        if tat > self._tat_floors.get(connection_id, 0.0):
            self._tat_floors[connection_id] = tat

    def delete_connection_item(self, connection_id: str) -> None:
        self._db.delete_item(TableName=self._connections, Key=serialize({"connectionId": connection_id}))

    def scan_stale_connections(
        self,
        *,
        idle_before_ms: int,
        connected_before_ms: int,
        start_key: dict[str, Any] | None,
        page_size: int,
    ) -> tuple[list[ConnectionRecord], dict[str, Any] | None]:
        """One page of the janitor's Scan: connections idle or too old. Returns (page, next key)."""
        kwargs: dict[str, Any] = {
            "TableName": self._connections,
            "FilterExpression": "lastSeen < :idle OR connectedAt < :old",
            "ExpressionAttributeValues": _values(idle=idle_before_ms, old=connected_before_ms),
            "Limit": page_size,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        response = self._db.scan(**kwargs)
        records = [ConnectionRecord.from_item(deserialize(item)) for item in response.get("Items", [])]
        return records, response.get("LastEvaluatedKey")

    # -- rooms: membership ---------------------------------------------------------------------

    def room_counters(self, room: str, *, consistent: bool = False) -> tuple[int, int]:
        """(latest seq, member count) of a room; (0, 0) for a room never joined.

        One Query of the room's counter items: `META` (seq) and the `MEMBERS#k` shards a join
        or leave adds to (docs/data-model.md, "Per-key budget"), summed; a `members` left on
        META by an older version counts too."""
        seq = members = 0
        for item in self._query(
            TableName=self._rooms,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :meta",
            ExpressionAttributeValues=_values(pk=room_pk(room), first=MEMBER_COUNTER_PREFIX, meta=META),
            ProjectionExpression="sk, seq, members",
            ConsistentRead=consistent,
        ):
            members += int(item.get("members", 0))
            if item.get("sk") == META:
                seq = int(item.get("seq", 0))
        return seq, members

    def room_epoch(self, room: str) -> str:
        """The room's history epoch (docs/protocol.md): set when its counter is created, so a
        recreated table (a restarted local runtime, a redeployed stack) gives every room a new
        one. Rooms from before epochs get theirs on first read."""
        response = self._db.get_item(
            TableName=self._rooms,
            Key=serialize({"pk": room_pk(room), "sk": META}),
            ConsistentRead=CONSISTENT,
            ProjectionExpression="epoch",
        )
        epoch = deserialize(response.get("Item") or {}).get("epoch")
        if isinstance(epoch, str) and epoch:
            return epoch
        updated = self._db.update_item(
            TableName=self._rooms,
            Key=serialize({"pk": room_pk(room), "sk": META}),
            UpdateExpression="SET epoch = if_not_exists(epoch, :epoch)",
            ExpressionAttributeValues=_values(epoch=new_epoch()),
            ReturnValues="ALL_NEW",
        )
        return str(deserialize(updated["Attributes"])["epoch"])

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
        """Subscribe the connection to the room and make its user a member (if not yet): the
        subscription, the user's membership, counters and presence in one transaction.

        The subscription's write is conditional on no unexpired ban of the room stamped on the
        connection (a ban racing this join either finds the subscription and ends it, or
        stamped first and this join is refused), and it stamps `mute_until` (the user's mute
        of the room, read by the caller) so the connection's sends are refused by their own
        write. Raises `Restricted` (banned), `ConnectionGone` or `StoreBusy`."""
        if room in connection.joined:
            self._db.update_item(**self._membership_upsert(connection.user_id, room, kind, peer, 0, now_ms))
            return JoinResult(connection.joined[room], False)
        seq, members = self.room_counters(room)
        shard = shard_for(connection.connection_id, members, self._settings.shard_size)
        subscription: dict[str, Any] = {
            "pk": shard_pk(room, shard),
            "sk": connection.connection_id,
            "userId": connection.user_id,
            "joinedAt": now_ms,
        }
        if connection.batch:  # the fan-out reads it with the shard, so coalescing costs no read
            subscription["batch"] = True
        membership: dict[str, Any] = {
            "Put": {
                "TableName": self._rooms,
                "Item": serialize(subscription),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        stamp = {"shard": shard, "zero": 0, "now": now_ms}
        if mute_until is not None:
            stamp["mute"] = mute_until
        on_connection = {
            "Update": {
                "TableName": self._connections,
                "Key": serialize({"connectionId": connection.connection_id}),
                "UpdateExpression": "SET joined.#room = :shard"
                + (", #mute = :mute" if mute_until is not None else ""),
                "ConditionExpression": "attribute_exists(connectionId) AND attribute_not_exists(joined.#room) AND "
                + _unrestricted("#ban"),
                "ExpressionAttributeNames": {
                    "#room": room,
                    "#ban": restriction_stamp(Restriction.BAN, room),
                    **(
                        {"#mute": restriction_stamp(Restriction.MUTE, room)} if mute_until is not None else {}
                    ),
                },
                "ExpressionAttributeValues": _values(**stamp),
            }
        }
        # Hot keys (docs/data-model.md, "Per-key budget"): the member count is spread over
        # MEMBER_COUNTER_SHARDS items, and the shard directory is written only by the first
        # joiners of a shard; META (the seq counter, the epoch) is not written by a join at all.
        counters = {
            "Update": {
                "TableName": self._rooms,
                "Key": serialize({"pk": room_pk(room), "sk": member_counter_sk(connection.connection_id)}),
                "UpdateExpression": "ADD members :one",
                "ExpressionAttributeValues": _values(one=1),
            }
        }
        directory = None if self._shard_listed(room, shard) else self._list_shard(room, shard, now_ms)
        presence_key = serialize({"pk": room_pk(room), "sk": presence_sk(connection.user_id)})
        first = {
            "Put": {
                "TableName": self._rooms,
                "Item": serialize(
                    {
                        "pk": room_pk(room),
                        "sk": presence_sk(connection.user_id),
                        "userId": connection.user_id,
                        "connections": 1,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        another = {
            "Update": {
                "TableName": self._rooms,
                "Key": presence_key,
                "UpdateExpression": "ADD connections :one",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": _values(one=1),
            }
        }
        # A new membership's read marker starts at the room's latest seq: what came before
        # joining is history, not unread (docs/protocol.md, "read markers").
        user_membership = {
            "Update": self._membership_upsert(connection.user_id, room, kind, peer, seq, now_ms)
        }
        # The user's first connection in the room creates the presence item; later ones count up.
        # Which case holds is decided by the transaction's own condition, so racing joins agree.
        for attempt, presence in enumerate((first, another, first, another)):
            try:
                items: list[Any] = [membership, on_connection, counters, presence, user_membership]
                self._db.transact_write_items(TransactItems=items + ([directory] if directory else []))
                return JoinResult(shard, presence is first)
            except ClientError as error:
                if not _is(error, "TransactionCanceledException"):
                    raise
                codes = _cancellation_codes(error) + ["None"] * 6
                if "ConditionalCheckFailed" in codes[:2]:
                    current = self.get_connection(connection.connection_id)
                    if current is None:
                        raise ConnectionGone(connection.connection_id) from None
                    if room in current.joined:  # a concurrent join of the same connection won
                        return JoinResult(current.joined[room], False)
                    until = current.restricted(Restriction.BAN, room, now_ms)
                    if until is not None:
                        raise Restricted(Restriction.BAN, room, until) from None
                if "TransactionConflict" in codes:
                    _backoff(attempt)
        raise StoreBusy(f"join {room} kept conflicting")

    def leave(
        self, connection: ConnectionRecord, room: str, *, update_connection: bool = True
    ) -> LeaveResult | None:
        """Remove one membership with its counters and presence; None if it was not a member."""
        shard = connection.joined.get(room)
        if shard is None:
            return None
        items: list[Any] = [
            {
                "Delete": {
                    "TableName": self._rooms,
                    "Key": serialize({"pk": shard_pk(room, shard), "sk": connection.connection_id}),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": self._rooms,
                    "Key": serialize(
                        {"pk": room_pk(room), "sk": member_counter_sk(connection.connection_id)}
                    ),
                    "UpdateExpression": "ADD members :minus",
                    "ExpressionAttributeValues": _values(minus=-1),
                }
            },
        ]
        if update_connection:
            items.append(
                {
                    "Update": {
                        "TableName": self._connections,
                        "Key": serialize({"connectionId": connection.connection_id}),
                        "UpdateExpression": "REMOVE joined.#room",
                        "ExpressionAttributeNames": {"#room": room},
                    }
                }
            )
        presence_key = serialize({"pk": room_pk(room), "sk": presence_sk(connection.user_id)})
        last = {
            "Delete": {
                "TableName": self._rooms,
                "Key": presence_key,
                "ConditionExpression": "connections <= :one",
                "ExpressionAttributeValues": _values(one=1),
            }
        }
        another = {
            "Update": {
                "TableName": self._rooms,
                "Key": presence_key,
                "UpdateExpression": "ADD connections :minus",
                "ConditionExpression": "connections > :one",
                "ExpressionAttributeValues": _values(minus=-1, one=1),
            }
        }
        variants: list[dict[str, Any] | None] = [last, another, last, another, None]
        for attempt, presence in enumerate(variants):
            try:
                self._db.transact_write_items(TransactItems=items + ([presence] if presence else []))
                return LeaveResult(room, connection.user_id, presence is last)
            except ClientError as error:
                if not _is(error, "TransactionCanceledException"):
                    raise
                codes = _cancellation_codes(error)
                if codes and codes[0] == "ConditionalCheckFailed":
                    return None  # already removed by a concurrent leave/disconnect/prune
                if "TransactionConflict" in codes:
                    _backoff(attempt)
        raise StoreBusy(f"leave {room} kept conflicting")

    def remove_connection(self, connection_id: str) -> list[LeaveResult]:
        """Delete a connection and every membership it holds (disconnect, 410 Gone, janitor).

        Safe to repeat and to race: each membership is removed by exactly one caller (its
        Delete is conditional), so counters are decremented once.
        """
        connection = self.get_connection(connection_id)
        if connection is None:
            return []
        results = []
        for room in sorted(connection.joined):
            result = self.leave(connection, room, update_connection=False)
            if result is not None:
                results.append(result)
        # The user's index entry goes before the connection item: if this stops in between, the
        # janitor's Scan still finds the connection and removes both.
        self._db.delete_item(
            TableName=self._rooms,
            Key=serialize({"pk": user_pk(connection.user_id), "sk": user_connection_sk(connection_id)}),
        )
        self.delete_connection_item(connection_id)
        return results

    def list_shards(self, room: str) -> list[str]:
        """The room's membership shards (strongly consistent: a member who joined before a
        message was acked is in a listed shard). A shard is listed by its first joiners and
        stays listed when it empties: a job for an empty shard costs one Query and no post."""
        return [
            str(item["sk"])
            for item in self._query(
                TableName=self._rooms,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=_values(pk=shard_directory_pk(room)),
                ProjectionExpression="sk",
                ConsistentRead=CONSISTENT,
            )
        ]

    def _shard_listed(self, room: str, shard: str) -> bool:
        """Is the shard in the directory already? Eventually consistent: a miss only means one
        more (idempotent) directory write; a hit is final, since entries are never deleted."""
        response = self._db.get_item(
            TableName=self._rooms,
            Key=serialize({"pk": shard_directory_pk(room), "sk": shard}),
            ProjectionExpression="sk",
        )
        return "Item" in response

    def _list_shard(self, room: str, shard: str, now_ms: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._rooms,
                "Key": serialize({"pk": shard_directory_pk(room), "sk": shard}),
                "UpdateExpression": "SET listedAt = if_not_exists(listedAt, :now)",
                "ExpressionAttributeValues": _values(now=now_ms),
            }
        }

    def shard_members(self, room: str, shard: str) -> Iterator[Member]:
        """Every connection in one shard, page by page (one Query per 1 MB page)."""
        for item in self._query(
            TableName=self._rooms,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=_values(pk=shard_pk(room, shard)),
            ProjectionExpression="sk, userId, #batch",  # BATCH is a reserved word
            ExpressionAttributeNames={"#batch": "batch"},
            ConsistentRead=CONSISTENT,
        ):
            yield Member(str(item["sk"]), str(item.get("userId", "")), bool(item.get("batch", False)))

    def online_users(self, room: str, limit: int) -> list[str]:
        users: list[str] = []
        for item in self._query(
            TableName=self._rooms,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :user)",
            ExpressionAttributeValues=_values(pk=room_pk(room), user="USER#"),
            ProjectionExpression="userId",
            ConsistentRead=CONSISTENT,
            Limit=min(limit, 1000),
        ):
            users.append(str(item["userId"]))
            if len(users) >= limit:
                break
        return users

    # -- users: durable memberships, read markers, live connections -------------------------

    def _membership_upsert(
        self, user_id: str, room: str, kind: str, peer: str | None, read_from: int, now_ms: int
    ) -> dict[str, Any]:
        """UpdateItem arguments that create the membership or leave an existing one as it is."""
        assignments = {
            "room": ":room",
            "kind": "if_not_exists(#kind, :kind)",
            "joinedAt": "if_not_exists(#joinedAt, :now)",
            "readSeq": "if_not_exists(#readSeq, :read)",
            "userId": ":user",
        }
        values: dict[str, Any] = {
            "room": room,
            "kind": kind,
            "now": now_ms,
            "read": read_from,
            "user": user_id,
        }
        if peer is not None:
            assignments["peer"] = ":peer"
            values["peer"] = peer
        return {
            "TableName": self._rooms,
            "Key": serialize({"pk": user_pk(user_id), "sk": user_room_sk(room)}),
            "UpdateExpression": "SET "
            + ", ".join(f"#{name} = {value}" for name, value in assignments.items()),
            "ExpressionAttributeNames": {f"#{name}": name for name in assignments},
            "ExpressionAttributeValues": _values(**values),
        }

    def add_membership(
        self, user_id: str, room: str, now_ms: int, *, kind: str = ROOM_KIND, peer: str | None = None
    ) -> bool:
        """Make the user a member without subscribing any connection (a DM's other user, the
        operator API's add). True if the membership is new."""
        seq, _ = self.room_counters(room, consistent=True)
        response = self._db.update_item(
            **self._membership_upsert(user_id, room, kind, peer, seq, now_ms), ReturnValues="ALL_OLD"
        )
        return "joinedAt" not in response.get("Attributes", {})

    def membership(self, user_id: str, room: str) -> Membership | None:
        response = self._db.get_item(
            TableName=self._rooms,
            Key=serialize({"pk": user_pk(user_id), "sk": user_room_sk(room)}),
            ConsistentRead=CONSISTENT,
        )
        item = response.get("Item")
        return None if item is None else Membership.from_item(deserialize(item))

    def memberships(self, user_id: str) -> list[Membership]:
        """Every room the user is a member of: one Query (paged per 1 MB)."""
        return [
            Membership.from_item(item)
            for item in self._query(
                TableName=self._rooms,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :rooms)",
                ExpressionAttributeValues=_values(pk=user_pk(user_id), rooms="ROOM#"),
                ConsistentRead=CONSISTENT,
            )
        ]

    # -- bans and mutes (docs/data-model.md): ROOM#{room} / BAN#{user} or MUTE#{user} ---------
    # `until` is ms epoch, 0 = until lifted. Each is also stamped on the user's connection items
    # (`ban#{room}` / `mute#{room}` = until), so that the writes a frame already makes (a join's
    # transaction, a send's touch) enforce it in their own condition: no read per message.

    def put_restriction(
        self, kind: Restriction, room: str, user_id: str, until_ms: int, reason: str, by: str, now_ms: int
    ) -> None:
        item: dict[str, Any] = {
            "pk": room_pk(room),
            "sk": f"{kind.value}#{user_id}",
            "userId": user_id,
            "until": until_ms,
            "reason": reason,
            "by": by,
            "at": now_ms,
        }
        if until_ms:
            item["ttl"] = until_ms // 1000 + 3600  # TTL only tidies; `until` decides
        self._db.put_item(TableName=self._rooms, Item=serialize(item))

    def delete_restriction(self, kind: Restriction, room: str, user_id: str) -> bool:
        response = self._db.delete_item(
            TableName=self._rooms,
            Key=serialize({"pk": room_pk(room), "sk": f"{kind.value}#{user_id}"}),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    def active_restrictions(self, room: str, user_id: str, now_ms: int) -> dict[Restriction, int]:
        """The user's unexpired ban and mute in the room, kind -> until (ms, 0 = until lifted):
        one strongly consistent BatchGetItem of both items."""
        items = self._batch_get(
            self._rooms,
            [{"pk": room_pk(room), "sk": f"{kind.value}#{user_id}"} for kind in Restriction],
            consistent=True,
        )
        found: dict[Restriction, int] = {}
        for item in items:
            until = int(item.get("until", 0))
            if not until or until > now_ms:
                found[Restriction(str(item["sk"]).split("#", 1)[0])] = until
        return found

    def stamp_connection(
        self, connection_id: str, kind: Restriction, room: str, until_ms: int | None
    ) -> None:
        """Set (`until_ms`) or remove (None) a ban or mute stamp on one connection item; a
        connection that is gone is left alone (the write never creates an item)."""
        change: dict[str, Any] = {"UpdateExpression": "REMOVE #stamp"}
        if until_ms is not None:
            change = {
                "UpdateExpression": "SET #stamp = :until",
                "ExpressionAttributeValues": _values(until=until_ms),
            }
        try:
            self._db.update_item(
                TableName=self._connections,
                Key=serialize({"connectionId": connection_id}),
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeNames={"#stamp": restriction_stamp(kind, room)},
                **change,
            )
        except ClientError as error:
            if not _is(error, "ConditionalCheckFailedException"):
                raise

    def delete_membership(self, user_id: str, room: str) -> bool:
        """End the user's membership; True if there was one (a repeated leave finds none)."""
        response = self._db.delete_item(
            TableName=self._rooms,
            Key=serialize({"pk": user_pk(user_id), "sk": user_room_sk(room)}),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    def set_read(self, user_id: str, room: str, seq: int) -> tuple[Membership | None, bool]:
        """Move the user's read marker forward to `seq` (never back). Returns the membership as
        it now is (None: not a member) and whether the marker moved."""
        try:
            response = self._db.update_item(
                TableName=self._rooms,
                Key=serialize({"pk": user_pk(user_id), "sk": user_room_sk(room)}),
                UpdateExpression="SET readSeq = :seq",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(readSeq) OR readSeq < :seq)",
                ExpressionAttributeValues=_values(seq=seq),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _is(error, "ConditionalCheckFailedException"):
                raise
            old: Any = error.response.get("Item")
            return (None if not old else Membership.from_item(deserialize(old))), False
        return Membership.from_item(deserialize(response["Attributes"])), True

    def user_connections(self, user_id: str, now_ms: int) -> list[str]:
        """The user's live connections: one consistent Query of their partition. Entries past
        their TTL (a backstop DynamoDB may apply late) are not live."""
        return [
            str(item["connectionId"])
            for item in self._query(
                TableName=self._rooms,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :conns)",
                FilterExpression="#ttl > :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=_values(pk=user_pk(user_id), conns="CONN#", now=now_ms // 1000),
                ProjectionExpression="connectionId",
                ConsistentRead=CONSISTENT,
            )
        ]

    def room_kind(self, room: str) -> tuple[str, tuple[str, ...]]:
        """(kind, participants) from the room's META item: ("room", ()) for an ordinary room."""
        response = self._db.get_item(
            TableName=self._rooms,
            Key=serialize({"pk": room_pk(room), "sk": META}),
            ConsistentRead=CONSISTENT,
            ProjectionExpression="#kind, #users",
            ExpressionAttributeNames={"#kind": "kind", "#users": "users"},
        )
        item = deserialize(response.get("Item") or {})
        return str(item.get("kind", ROOM_KIND)), tuple(str(user) for user in item.get("users", []))

    def open_dm(self, room: str, users: tuple[str, str], now_ms: int) -> None:
        """Create (or keep) a DM room's META with its two participants, and both memberships.

        One transaction: a DM never exists with one member only. Memberships that already
        exist keep their read markers (the upsert only fills what is missing).
        """
        first, second = users
        seq, _ = self.room_counters(room, consistent=True)  # a new membership's marker starts here
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self._rooms,
                    "Key": serialize({"pk": room_pk(room), "sk": META}),
                    "UpdateExpression": "SET #kind = :dm, #users = :users, seq = if_not_exists(seq, :zero),"
                    " members = if_not_exists(members, :zero)",
                    "ExpressionAttributeNames": {"#kind": "kind", "#users": "users"},
                    "ExpressionAttributeValues": _values(dm=DM_KIND, users=sorted(users), zero=0),
                }
            },
            {"Update": self._membership_upsert(first, room, DM_KIND, second, seq, now_ms)},
            {"Update": self._membership_upsert(second, room, DM_KIND, first, seq, now_ms)},
        ]
        for attempt in range(4):
            try:
                self._db.transact_write_items(TransactItems=items)
                return
            except ClientError as error:
                if not _is(error, "TransactionCanceledException"):
                    raise
                _backoff(attempt)  # the only cancellation is a conflict: the other user opening it too
        raise StoreBusy(f"opening {room} kept conflicting")

    def room_states(self, rooms: Sequence[str]) -> dict[str, RoomState]:
        """Latest seq and latest message of each room: BatchGetItem of the META items, then of
        the latest messages (100 keys per request), never one call per room. Eventually
        consistent (half the read units): a room list may lag a just-sent message by a moment."""
        metas = self._batch_get(
            self._rooms,
            [{"pk": room_pk(room), "sk": META} for room in rooms],
            projection="pk, seq",
        )
        seqs = {str(item["pk"]).removeprefix("ROOM#"): int(item.get("seq", 0)) for item in metas}
        latest = self._batch_get(
            self._messages, [{"room": room, "seq": seq} for room, seq in seqs.items() if seq > 0]
        )
        last = {str(item["room"]): _plain_message(item) for item in latest}
        return {room: RoomState(seqs.get(room, 0), last.get(room)) for room in rooms}

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
                _backoff(attempt)
        return items

    # -- messages ------------------------------------------------------------------------------

    def store_message(
        self, room: str, user_id: str, name: str, text: str, client_msg_id: str, now_ms: int
    ) -> StoredMessage:
        """Store with the room's next seq, exactly once per (user, room, clientMsgId).

        One transaction writes the message under the next seq, on condition that no message
        holds it yet, and claims the idempotency key: the message item itself is the lock, so
        seqs have no gaps (seq n + 1 is only written by one who saw n) and a resend finds the
        claim and gets the first store's ack. A racing sender's commit cancels it, returning the
        message that took the seq, and it is retried on the next one. Then META's `seq` is moved
        up to it (never down), before the caller acks: readers of the counter see every acked
        message, and META takes one plain write per message, no transaction (docs/data-model.md,
        "Per-key budget").
        """
        deadline = time.monotonic() + SEQ_BUDGET_SECONDS
        turn = _SEQ_TURNS[hash(room) % len(_SEQ_TURNS)]
        if not turn.acquire(timeout=SEQ_BUDGET_SECONDS):
            raise StoreBusy(f"seq assignment in {room}: no turn within {SEQ_BUDGET_SECONDS:g} s")
        try:
            return self._store_message(room, user_id, name, text, client_msg_id, now_ms, deadline)
        finally:
            turn.release()

    def _store_message(
        self, room: str, user_id: str, name: str, text: str, client_msg_id: str, now_ms: int, deadline: float
    ) -> StoredMessage:
        idem_key = {"pk": idempotency_pk(user_id, room, client_msg_id), "sk": "IDEM"}
        current: int | None = None
        attempt = -1
        while attempt < 3 or time.monotonic() < deadline:
            attempt += 1
            if current is None:
                current = self.latest_seq(room)
            seq = current + 1
            message = {
                "room": room,
                "seq": seq,
                "id": uuid.uuid4().hex,
                "user": user_id,
                "name": name,
                "text": text,
                "ts": now_ms,
                "clientMsgId": client_msg_id,
            }
            stored = dict(message)
            if self._settings.message_retention_days:
                stored["ttl"] = now_ms // 1000 + self._settings.message_retention_days * 86400
            try:
                self._db.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._messages,
                                "Item": serialize(stored),
                                "ConditionExpression": "attribute_not_exists(seq)",
                                # A lost race returns the winner's message: retry after it, no re-read.
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._rooms,
                                "Item": serialize(
                                    {
                                        **idem_key,
                                        "messageId": message["id"],
                                        "seq": seq,
                                        "ts": now_ms,
                                        "fannedOut": False,
                                        "ttl": now_ms // 1000 + self._settings.idempotency_ttl_seconds,
                                    }
                                ),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
                self._raise_counter(room, seq)
                return StoredMessage(message, duplicate=False, fanned_out=False)
            except ClientError as error:
                if not _is(error, "TransactionCanceledException"):
                    raise
                codes = _cancellation_codes(error)
                if len(codes) == 2 and codes[1] == "ConditionalCheckFailed":
                    existing = self._get_message_by_claim(idem_key, room)
                    if existing is not None:
                        # A resend: the first store may have stopped before moving the counter.
                        self._raise_counter(room, int(existing.item["seq"]))
                        return existing
                taken = _seq_of_lost_race(error)
                if taken is None or attempt >= 3:
                    # Unknown state, or a crowd of senders in this room: back off before retrying.
                    _backoff(attempt)
                    current = None
                else:
                    # The seq is taken, and others may be too: jump to the newest at once (the
                    # winner's message names only the seq it took, not how far the room went).
                    current = max(taken, self.latest_seq(room))
        raise StoreBusy(f"seq assignment in {room} kept conflicting")

    def latest_seq(self, room: str) -> int:
        """The highest seq taken in the room: the newest message, or META's counter if that is
        higher (messages past their retention are gone, their seqs are not reused)."""
        newest = self._db.query(
            TableName=self._messages,
            KeyConditionExpression="room = :room",
            ExpressionAttributeValues=_values(room=room),
            ProjectionExpression="seq",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=CONSISTENT,
        ).get("Items", [])
        latest = int(deserialize(newest[0])["seq"]) if newest else 0
        if self._settings.message_retention_days:
            latest = max(latest, self.room_counters(room, consistent=True)[0])
        return latest

    def _raise_counter(self, room: str, seq: int) -> None:
        """META's `seq` up to `seq`, never down (a later message may have moved it further)."""
        try:
            self._db.update_item(
                TableName=self._rooms,
                Key=serialize({"pk": room_pk(room), "sk": META}),
                UpdateExpression="SET seq = :seq",
                ConditionExpression="attribute_not_exists(seq) OR seq < :seq",
                ExpressionAttributeValues=_values(seq=seq),
            )
        except ClientError as error:
            if not _is(error, "ConditionalCheckFailedException"):
                raise

    def _get_message_by_claim(self, idem_key: dict[str, Any], room: str) -> StoredMessage | None:
        claim = self._db.get_item(TableName=self._rooms, Key=serialize(idem_key), ConsistentRead=CONSISTENT)
        if "Item" not in claim:
            return None
        record = deserialize(claim["Item"])
        response = self._db.get_item(
            TableName=self._messages,
            Key=serialize({"room": room, "seq": record["seq"]}),
            ConsistentRead=CONSISTENT,
        )
        if "Item" not in response:
            return None
        item = deserialize(response["Item"])
        item.pop("ttl", None)
        return StoredMessage(item, duplicate=True, fanned_out=bool(record.get("fannedOut")))

    def mark_fanned_out(self, user_id: str, room: str, client_msg_id: str) -> None:
        self._db.update_item(
            TableName=self._rooms,
            Key=serialize({"pk": idempotency_pk(user_id, room, client_msg_id), "sk": "IDEM"}),
            UpdateExpression="SET fannedOut = :yes",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=_values(yes=True),
        )

    def messages_after(self, room: str, since: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Messages with seq > since, ascending, at most `limit`, and whether more follow."""
        response = self._db.query(
            TableName=self._messages,
            KeyConditionExpression="room = :room AND seq > :since",
            ExpressionAttributeValues=_values(room=room, since=since),
            ScanIndexForward=True,
            Limit=limit + 1,
            ConsistentRead=CONSISTENT,  # a message acked just before a join must be in `joined`
        )
        items = [_message(item) for item in response.get("Items", [])]
        return items[:limit], len(items) > limit

    def messages_before(self, room: str, before: int | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The `limit` messages just below `before` (or the latest), ascending, and whether older exist."""
        if before is None:
            condition, values = "room = :room", _values(room=room)
        else:
            condition, values = "room = :room AND seq < :before", _values(room=room, before=before)
        response = self._db.query(
            TableName=self._messages,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit + 1,
            ConsistentRead=CONSISTENT,
        )
        items = [_message(item) for item in response.get("Items", [])]
        more = len(items) > limit
        return list(reversed(items[:limit])), more

    # -- janitor state -------------------------------------------------------------------------

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

    # -- internals -----------------------------------------------------------------------------

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            response = self._db.query(**kwargs)
            for item in response.get("Items", []):
                yield deserialize(item)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last


def new_epoch() -> str:
    return uuid.uuid4().hex[:16]


def _message(item: Mapping[str, Any]) -> dict[str, Any]:
    return _plain_message(deserialize(item))


def _plain_message(message: dict[str, Any]) -> dict[str, Any]:
    message.pop("ttl", None)
    return message


def _seq_of_lost_race(error: ClientError) -> int | None:
    reasons = error.response.get("CancellationReasons") or []
    if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
        return None
    item = reasons[0].get("Item")
    if not item or "seq" not in item:
        return None
    return int(deserialize(item)["seq"])


def _backoff(attempt: int) -> None:
    """A transaction conflict's pause (functions/chat/retry.py)."""
    CONFLICT_BACKOFF.sleep(attempt)
