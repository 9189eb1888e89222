"""DynamoDB keys and the item codec of the chat's tables (docs/data-model.md).

Every pk/sk layout is spelled once here; the adapters beside this module build their requests
from these."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from functions.chat.settings import Settings

META: Final = "META"


CONSISTENT: Final = True


_SERIALIZER: Final = TypeSerializer()


_DESERIALIZER: Final = TypeDeserializer()


def unrestricted(placeholder: str) -> str:
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


def attr_values(**values: Any) -> dict[str, Any]:
    return {f":{key}": _SERIALIZER.serialize(value) for key, value in values.items()}


def cancellation_codes(error: ClientError) -> list[str]:
    reasons = error.response.get("CancellationReasons") or []
    return [str(reason.get("Code") or "None") for reason in reasons]


def is_error(error: ClientError, code: str) -> bool:
    return str(error.response.get("Error", {}).get("Code")) == code


def new_epoch() -> str:
    return uuid.uuid4().hex[:16]


def message_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return plain_message(deserialize(item))


def plain_message(message: dict[str, Any]) -> dict[str, Any]:
    message.pop("ttl", None)
    return message


# -- the items a connect and a send write (the in-memory store keeps the same shapes) --------------


def connection_item(
    connection_id: str,
    user_id: str,
    name: str,
    rooms: Sequence[str] | None,
    now_ms: int,
    settings: Settings,
    *,
    batch: bool = False,
) -> dict[str, Any]:
    """A new connection's item; its `ttl` (s) is only the backstop behind $disconnect and the janitor."""
    item: dict[str, Any] = {
        "connectionId": connection_id,
        "userId": user_id,
        "name": name,
        "allowedRooms": "*" if rooms is None else list(rooms),
        "joined": {},
        "connectedAt": now_ms,
        "lastSeen": now_ms,
        "ttl": now_ms // 1000 + settings.max_connection_seconds + 3600,
    }
    if batch:
        item["batch"] = True
    return item


def new_message(
    room: str, seq: int, user_id: str, name: str, text: str, client_msg_id: str, now_ms: int
) -> dict[str, Any]:
    """A new message as clients see it (a new id per attempt); `stored_message` adds the ttl."""
    return {
        "room": room,
        "seq": seq,
        "id": uuid.uuid4().hex,
        "user": user_id,
        "name": name,
        "text": text,
        "ts": now_ms,
        "clientMsgId": client_msg_id,
    }


def stored_message(message: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The message as the table keeps it: with a ttl when history has a retention."""
    stored = dict(message)
    if settings.message_retention_days:
        stored["ttl"] = int(message["ts"]) // 1000 + settings.message_retention_days * 86400
    return stored
