"""Connections: the connection items, with the per-connection rate limiter (GCRA) kept on
them, the user's index of live connections, the ban and mute stamps, the janitor's Scan
(docs/data-model.md, "connections")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from functions.chat.adapters.dynamodb.keys import (
    CONSISTENT,
    attr_values,
    connection_item,
    deserialize,
    is_error,
    serialize,
    unrestricted,
    user_connection_sk,
    user_pk,
)
from functions.chat.adapters.dynamodb.tables import Tables
from functions.chat.domain.ports import (
    ConnectionGone,
    ConnectionRecord,
    NotMember,
    RateLimited,
    Restricted,
    Restriction,
    restriction_stamp,
)
from functions.chat.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Connections whose limiter state one process remembers (see `ChatStore._remember_tat`).
TAT_FLOORS_KEPT: Final = 10_000


class ConnectionTable(Tables):
    """The connections table (and each user's index of their live connections)."""

    def __init__(self, client: DynamoDBClient, settings: Settings) -> None:
        super().__init__(client, settings)
        # The highest limiter `tat` this process has seen per connection (`_remember_tat`).
        self._tat_floors: dict[str, float] = {}

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
        ttl = item["ttl"]
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
                membership += " AND " + unrestricted("#mute")
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
                        ExpressionAttributeValues=attr_values(now=now_ms, next=now_ms + interval, **muting),
                        ReturnValues="ALL_NEW",
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                        **extra,
                    )
                    return self._touched(response["Attributes"])
                except ClientError as error:
                    if not is_error(error, "ConditionalCheckFailedException"):
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
                    ExpressionAttributeValues=attr_values(
                        now=now_ms, interval=interval, limit=limit, **muting
                    ),
                    ReturnValues="ALL_NEW",
                    **extra,
                )
                return self._touched(response["Attributes"])
            except ClientError as error:
                if not is_error(error, "ConditionalCheckFailedException"):
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
            "ExpressionAttributeValues": attr_values(idle=idle_before_ms, old=connected_before_ms),
            "Limit": page_size,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        response = self._db.scan(**kwargs)
        records = [ConnectionRecord.from_item(deserialize(item)) for item in response.get("Items", [])]
        return records, response.get("LastEvaluatedKey")

    def stamp_connection(
        self, connection_id: str, kind: Restriction, room: str, until_ms: int | None
    ) -> None:
        """Set (`until_ms`) or remove (None) a ban or mute stamp on one connection item; a
        connection that is gone is left alone (the write never creates an item)."""
        change: dict[str, Any] = {"UpdateExpression": "REMOVE #stamp"}
        if until_ms is not None:
            change = {
                "UpdateExpression": "SET #stamp = :until",
                "ExpressionAttributeValues": attr_values(until=until_ms),
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
            if not is_error(error, "ConditionalCheckFailedException"):
                raise
