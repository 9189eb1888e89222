"""Memberships: a connection's subscription to a room (its shard), the room's member counters
and presence, the user's durable memberships and read markers, DMs, bans and mutes
(docs/data-model.md, "rooms" and "users").

Join and leave are single transactions, so a refused or failed one leaves no partial state:
the subscription, its counters and the presence counter all change, or none does. They write
the connection item too (its `joined` map, its stamps), so this table class extends the
connections'."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from functions.chat.adapters.dynamodb.connections import ConnectionTable
from functions.chat.adapters.dynamodb.keys import (
    CONSISTENT,
    META,
    attr_values,
    cancellation_codes,
    deserialize,
    is_error,
    member_counter_sk,
    new_epoch,
    plain_message,
    presence_sk,
    room_pk,
    serialize,
    shard_directory_pk,
    shard_for,
    shard_pk,
    unrestricted,
    user_connection_sk,
    user_pk,
    user_room_sk,
)
from functions.chat.adapters.dynamodb.tables import backoff
from functions.chat.domain.ports import (
    DM_KIND,
    ROOM_KIND,
    ConnectionGone,
    ConnectionRecord,
    JoinResult,
    LeaveResult,
    Member,
    Membership,
    Restricted,
    Restriction,
    RoomState,
    StoreBusy,
    restriction_stamp,
)


class MembershipTables(ConnectionTable):
    """Rooms, shards, presence and the users' memberships, on the rooms table."""

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
            ExpressionAttributeValues=attr_values(epoch=new_epoch()),
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
                + unrestricted("#ban"),
                "ExpressionAttributeNames": {
                    "#room": room,
                    "#ban": restriction_stamp(Restriction.BAN, room),
                    **(
                        {"#mute": restriction_stamp(Restriction.MUTE, room)} if mute_until is not None else {}
                    ),
                },
                "ExpressionAttributeValues": attr_values(**stamp),
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
                "ExpressionAttributeValues": attr_values(one=1),
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
                "ExpressionAttributeValues": attr_values(one=1),
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
                if not is_error(error, "TransactionCanceledException"):
                    raise
                codes = cancellation_codes(error) + ["None"] * 6
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
                    backoff(attempt)
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
                    "ExpressionAttributeValues": attr_values(minus=-1),
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
                "ExpressionAttributeValues": attr_values(one=1),
            }
        }
        another = {
            "Update": {
                "TableName": self._rooms,
                "Key": presence_key,
                "UpdateExpression": "ADD connections :minus",
                "ConditionExpression": "connections > :one",
                "ExpressionAttributeValues": attr_values(minus=-1, one=1),
            }
        }
        variants: list[dict[str, Any] | None] = [last, another, last, another, None]
        for attempt, presence in enumerate(variants):
            try:
                self._db.transact_write_items(TransactItems=items + ([presence] if presence else []))
                return LeaveResult(room, connection.user_id, presence is last)
            except ClientError as error:
                if not is_error(error, "TransactionCanceledException"):
                    raise
                codes = cancellation_codes(error)
                if codes and codes[0] == "ConditionalCheckFailed":
                    return None  # already removed by a concurrent leave/disconnect/prune
                if "TransactionConflict" in codes:
                    backoff(attempt)
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
                ExpressionAttributeValues=attr_values(pk=shard_directory_pk(room)),
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
                "ExpressionAttributeValues": attr_values(now=now_ms),
            }
        }

    def shard_members(self, room: str, shard: str) -> Iterator[Member]:
        """Every connection in one shard, page by page (one Query per 1 MB page)."""
        for item in self._query(
            TableName=self._rooms,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=attr_values(pk=shard_pk(room, shard)),
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
            ExpressionAttributeValues=attr_values(pk=room_pk(room), user="USER#"),
            ProjectionExpression="userId",
            ConsistentRead=CONSISTENT,
            Limit=min(limit, 1000),
        ):
            users.append(str(item["userId"]))
            if len(users) >= limit:
                break
        return users

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
            "ExpressionAttributeValues": attr_values(**values),
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
                ExpressionAttributeValues=attr_values(pk=user_pk(user_id), rooms="ROOM#"),
                ConsistentRead=CONSISTENT,
            )
        ]

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
                ExpressionAttributeValues=attr_values(seq=seq),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_error(error, "ConditionalCheckFailedException"):
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
                ExpressionAttributeValues=attr_values(pk=user_pk(user_id), conns="CONN#", now=now_ms // 1000),
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
                    "ExpressionAttributeValues": attr_values(dm=DM_KIND, users=sorted(users), zero=0),
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
                if not is_error(error, "TransactionCanceledException"):
                    raise
                backoff(attempt)  # the only cancellation is a conflict: the other user opening it too
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
        last = {str(item["room"]): plain_message(item) for item in latest}
        return {room: RoomState(seqs.get(room, 0), last.get(room)) for room in rooms}
