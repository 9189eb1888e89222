"""Messages: each room's gap-free seq, the idempotency claim of a send, history pages
(docs/data-model.md, "messages")."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from functions.chat.adapters.dynamodb.keys import (
    CONSISTENT,
    META,
    attr_values,
    cancellation_codes,
    deserialize,
    idempotency_pk,
    is_error,
    message_item,
    new_message,
    room_pk,
    serialize,
    stored_message,
)
from functions.chat.adapters.dynamodb.tables import Tables, backoff
from functions.chat.domain.ports import StoreBusy, StoredMessage
from functions.chat.schema import INGRESS_FUNCTION

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
@dataclass
class _SeqTurn:
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (room, seq) its last holder stored, set as it lets go. A sender that had to wait for the
    # turn starts from there instead of reading the newest message: its predecessor has just
    # taken that seq. If a sender elsewhere took the next one, the transaction is cancelled and
    # returns its message, as in any lost race. A sender that did not wait reads, since the
    # room may have moved in other processes meanwhile (always so on AWS).
    handed_on: tuple[str, int] | None = None

    def take_hand_off(self, room: str, waited: bool) -> int | None:
        """The seq to start after (clearing it): the last holder's, for a sender of its room that
        waited for the turn; None to read the newest."""
        handed_on, self.handed_on = self.handed_on, None
        if waited and handed_on is not None and handed_on[0] == room:
            return handed_on[1]
        return None


_SEQ_TURNS: Final = tuple(_SeqTurn() for _ in range(64))


def seq_turn_of(room: str) -> _SeqTurn:
    return _SEQ_TURNS[hash(room) % len(_SEQ_TURNS)]


class MessageTable(Tables):
    """The messages table, and the idempotency claims and seq counter on the rooms table."""

    def store_message(
        self, room: str, user_id: str, name: str, text: str, client_msg_id: str, now_ms: int
    ) -> StoredMessage:
        """Store with the room's next seq, exactly once per (user, room, clientMsgId).

        One transaction writes the message under the next seq, on condition that no message
        holds it yet, and claims the idempotency key: the message item itself is the lock, so
        seqs have no gaps (seq n + 1 is only written by one who saw n) and a resend finds the
        claim and gets the first store's ack. A racing sender's commit cancels it, returning the
        message that took the seq, and it is retried on the next one. Then META's `seq` is moved
        up to it (never down), after the sender's turn but before the caller acks: readers of the
        counter see every acked message, and META takes one plain write per message, no
        transaction (docs/data-model.md, "Per-key budget").
        """
        deadline = time.monotonic() + SEQ_BUDGET_SECONDS
        turn = seq_turn_of(room)
        waited = not turn.lock.acquire(blocking=False)
        if waited and not turn.lock.acquire(timeout=SEQ_BUDGET_SECONDS):
            raise StoreBusy(f"seq assignment in {room}: no turn within {SEQ_BUDGET_SECONDS:g} s")
        try:
            after = turn.take_hand_off(room, waited)
            stored = self._store_message(room, user_id, name, text, client_msg_id, now_ms, deadline, after)
            if not stored.duplicate:
                turn.handed_on = (room, int(stored.item["seq"]))
        finally:
            turn.lock.release()
        # Outside the turn: the next sender reads the newest message, which is already written,
        # so the counter (monotonic, conditional) need not hold up the room. A resend raises it
        # too: the first store may have stopped before moving it.
        self._raise_counter(room, int(stored.item["seq"]))
        return stored

    def _store_message(
        self,
        room: str,
        user_id: str,
        name: str,
        text: str,
        client_msg_id: str,
        now_ms: int,
        deadline: float,
        after: int | None,
    ) -> StoredMessage:
        """`after`: a seq known taken a moment ago (the turn's hand-off), or None to read it."""
        idem_key = {"pk": idempotency_pk(user_id, room, client_msg_id), "sk": "IDEM"}
        current = after
        attempt = -1
        while attempt < 3 or time.monotonic() < deadline:
            attempt += 1
            if current is None:
                current = self.latest_seq(room)
            seq = current + 1
            message = new_message(room, seq, user_id, name, text, client_msg_id, now_ms)
            stored = stored_message(message, self._settings)
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
                return StoredMessage(message, duplicate=False, fanned_out=False)
            except ClientError as error:
                if not is_error(error, "TransactionCanceledException"):
                    raise
                codes = cancellation_codes(error)
                if len(codes) == 2 and codes[1] == "ConditionalCheckFailed":
                    existing = self._get_message_by_claim(idem_key, room)
                    if existing is not None:
                        return existing
                taken = _seq_of_lost_race(error)
                if taken is None or attempt >= 3:
                    # Unknown state, or a crowd of senders in this room: back off before retrying.
                    backoff(attempt)
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
            ExpressionAttributeValues=attr_values(room=room),
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
                ExpressionAttributeValues=attr_values(seq=seq),
            )
        except ClientError as error:
            if not is_error(error, "ConditionalCheckFailedException"):
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
            ExpressionAttributeValues=attr_values(yes=True),
        )

    def messages_after(self, room: str, since: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Messages with seq > since, ascending, at most `limit`, and whether more follow."""
        response = self._db.query(
            TableName=self._messages,
            KeyConditionExpression="room = :room AND seq > :since",
            ExpressionAttributeValues=attr_values(room=room, since=since),
            ScanIndexForward=True,
            Limit=limit + 1,
            ConsistentRead=CONSISTENT,  # a message acked just before a join must be in `joined`
        )
        items = [message_item(item) for item in response.get("Items", [])]
        return items[:limit], len(items) > limit

    def messages_before(self, room: str, before: int | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The `limit` messages just below `before` (or the latest), ascending, and whether older exist."""
        if before is None:
            condition, values = "room = :room", attr_values(room=room)
        else:
            condition, values = "room = :room AND seq < :before", attr_values(room=room, before=before)
        response = self._db.query(
            TableName=self._messages,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit + 1,
            ConsistentRead=CONSISTENT,
        )
        items = [message_item(item) for item in response.get("Items", [])]
        more = len(items) > limit
        return list(reversed(items[:limit])), more


def _seq_of_lost_race(error: ClientError) -> int | None:
    reasons = error.response.get("CancellationReasons") or []
    if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
        return None
    item = reasons[0].get("Item")
    if not item or "seq" not in item:
        return None
    return int(deserialize(item)["seq"])
