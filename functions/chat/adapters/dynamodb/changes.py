"""DynamoDB adapter for message changes: the per-room rev, the change log, and recovery.

Layout (docs/data-model.md, "Message changes"):

* ``rooms`` ``ROOM#{room}`` / ``REV``: ``rev``, the room's latest change. Its own item, not the
  seq counter's ``META``, so that changes and sends do not conflict on one item.
* ``rooms`` ``ROOM#{room}#CHANGES`` / ``{rev:016d}``: one small entry per change, ``seq`` (the
  message changed) and ``fannedOut``. No text: a delete leaves nothing to erase here.
* ``messages``: the message item itself holds its current state (``text``, ``editedAt``,
  ``deleted``, ``reactions``) and ``rev``, its latest change.

A change is one transaction of three writes: the rev counter moves from the value read (as the
seq counter does), the message is rewritten on the condition that its own rev is still the one
read, and the log entry is put. A racing change cancels it and it is decided again on the newer
state (`ReturnValuesOnConditionCheckFailure` brings both back, so no re-read is needed).
Recovery is one consistent Query of the log from the client's rev: never a read of every message,
and, unlike a GSI, never behind the writes it follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from functions.chat.adapters.dynamodb.keys import (
    CONSISTENT,
    attr_values,
    cancellation_codes,
    deserialize,
    is_error,
    room_pk,
    serialize,
)
from functions.chat.adapters.dynamodb.tables import backoff
from functions.chat.domain.ports import ChangeResult, Decide, MessageNotFound, StoreBusy, Updates
from functions.chat.lifecycle import MessageState
from functions.chat.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REV: Final = "REV"
CHANGE_MAX_ATTEMPTS: Final = 60
# Recovery reads at most this many log entries per `joined` (entries are ~60 bytes: ~15 RRU).
LOG_PAGE_ENTRIES: Final = 1000
BATCH_GET_LIMIT: Final = 100  # BatchGetItem's limit
_REV_DIGITS: Final = 16  # 2**53 has 16 digits: the log's string sort keys sort as numbers


def changes_pk(room: str) -> str:
    return f"ROOM#{room}#CHANGES"


def rev_sk(rev: int) -> str:
    return f"{rev:0{_REV_DIGITS}d}"


class ChangeStore:
    def __init__(self, client: DynamoDBClient, settings: Settings) -> None:
        self._db = client
        self._rooms = settings.rooms_table
        self._messages = settings.messages_table

    def latest_rev(self, room: str) -> int:
        response = self._db.get_item(
            TableName=self._rooms,
            Key=serialize({"pk": room_pk(room), "sk": REV}),
            ConsistentRead=CONSISTENT,
            ProjectionExpression="rev",
        )
        return int(deserialize(response.get("Item") or {}).get("rev", 0))

    def apply(self, room: str, seq: int, decide: Decide) -> ChangeResult:
        """Decide on the stored message and store the decision under the room's next rev.

        Raises `MessageNotFound`, whatever `decide` raises (`ChangeRefused`), or `StoreBusy`.
        """
        raw = self._get_message(room, seq)
        current_rev: int | None = None
        for attempt in range(CHANGE_MAX_ATTEMPTS):
            if raw is None:
                raise MessageNotFound(f"{room}/{seq}")
            message = _plain_message(raw)
            state = decide(message)
            message_rev = int(message.get("rev", 0))
            if state is None:
                return ChangeResult(message, message_rev, False, self._fanned_out(room, message_rev))
            if current_rev is None:
                current_rev = self.latest_rev(room)
            rev = current_rev + 1
            try:
                items: list[Any] = [
                    self._move_counter(room, current_rev, rev),
                    self._rewrite(room, seq, message_rev, rev, state),
                    self._log_entry(room, seq, rev, raw.get("ttl")),
                ]
                self._db.transact_write_items(TransactItems=items)
            except ClientError as error:
                if not is_error(error, "TransactionCanceledException"):
                    raise
                codes = cancellation_codes(error)
                reasons = error.response.get("CancellationReasons") or []
                lost = False
                if codes[:1] == ["ConditionalCheckFailed"]:
                    old = reasons[0].get("Item")
                    current_rev = int(deserialize(old).get("rev", 0)) if old else None
                    lost = True
                if codes[1:2] == ["ConditionalCheckFailed"]:
                    # The message changed (or vanished) since it was read: decide again on it.
                    old = reasons[1].get("Item")
                    raw = deserialize(old) if old else None
                    lost = True
                if not lost or attempt >= 3:
                    backoff(attempt)
                    current_rev = None
                    if not lost:
                        raw = self._get_message(room, seq)
                continue
            updated = {**message, **state_attributes(state), "rev": rev}
            if state.edited_at is None:
                updated.pop("editedAt", None)
            return ChangeResult(updated, rev, True, False)
        raise StoreBusy(f"change of {room}/{seq} kept conflicting")

    def mark_fanned_out(self, room: str, rev: int) -> None:
        self._db.update_item(
            TableName=self._rooms,
            Key=serialize({"pk": changes_pk(room), "sk": rev_sk(rev)}),
            UpdateExpression="SET fannedOut = :yes",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=attr_values(yes=True),
        )

    def updates_after(self, room: str, rev: int, since: int, max_messages: int) -> Updates:
        """Messages with seq <= since changed after `rev`: one consistent Query of the log (at
        most `LOG_PAGE_ENTRIES` entries) and one BatchGetItem per 100 messages."""
        response = self._db.query(
            TableName=self._rooms,
            KeyConditionExpression="pk = :pk AND sk > :after",
            ExpressionAttributeValues=attr_values(pk=changes_pk(room), after=rev_sk(rev)),
            ProjectionExpression="sk, seq",
            ScanIndexForward=True,
            Limit=LOG_PAGE_ENTRIES,
            ConsistentRead=CONSISTENT,
        )
        first_rev: dict[int, int] = {}
        complete_through: int | None = None
        for item in (deserialize(entry) for entry in response.get("Items", [])):
            entry_rev, seq = int(item["sk"]), int(item["seq"])
            if seq > since or seq in first_rev:
                continue
            if len(first_rev) == max_messages:
                complete_through = entry_rev - 1
                break
            first_rev[seq] = entry_rev
        else:
            last = response.get("LastEvaluatedKey")
            if last:
                complete_through = int(deserialize(last)["sk"])
        states = self._get_messages(room, list(first_rev))
        kept = [seq for seq in first_rev if seq in states]
        return Updates([states[seq] for seq in kept], [first_rev[seq] for seq in kept], complete_through)

    # -- internals -----------------------------------------------------------------------------

    def _fanned_out(self, room: str, rev: int) -> bool:
        if rev == 0:
            return True  # never changed: nothing to fan out
        response = self._db.get_item(
            TableName=self._rooms,
            Key=serialize({"pk": changes_pk(room), "sk": rev_sk(rev)}),
            ConsistentRead=CONSISTENT,
            ProjectionExpression="fannedOut",
        )
        return bool(deserialize(response.get("Item") or {}).get("fannedOut", False))

    def _get_message(self, room: str, seq: int) -> dict[str, Any] | None:
        response = self._db.get_item(
            TableName=self._messages, Key=serialize({"room": room, "seq": seq}), ConsistentRead=CONSISTENT
        )
        item = response.get("Item")
        return None if item is None else deserialize(item)

    def _get_messages(self, room: str, seqs: list[int]) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(seqs), BATCH_GET_LIMIT):
            keys: list[Any] = [
                serialize({"room": room, "seq": seq}) for seq in seqs[start : start + BATCH_GET_LIMIT]
            ]
            request: Any = {self._messages: {"Keys": keys, "ConsistentRead": CONSISTENT}}
            for attempt in range(CHANGE_MAX_ATTEMPTS):
                response = self._db.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._messages, []):
                    message = _plain_message(deserialize(item))
                    found[int(message["seq"])] = message
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                backoff(attempt)
            else:
                raise StoreBusy(f"messages of {room} kept coming back unprocessed")
        return found

    def _move_counter(self, room: str, current: int, rev: int) -> dict[str, Any]:
        condition = "attribute_not_exists(rev)" if current == 0 else "rev = :current"
        values = {"rev": rev} if current == 0 else {"rev": rev, "current": current}
        return {
            "Update": {
                "TableName": self._rooms,
                "Key": serialize({"pk": room_pk(room), "sk": REV}),
                "UpdateExpression": "SET rev = :rev",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": attr_values(**values),
                # A lost race returns the winner's rev: retry from it, no re-read.
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _rewrite(
        self, room: str, seq: int, message_rev: int, rev: int, state: MessageState
    ) -> dict[str, Any]:
        attributes = {**state_attributes(state), "rev": rev}
        names = {f"#{key}": key for key in attributes}
        values = {key: value for key, value in attributes.items() if value is not None}
        assignments = ", ".join(f"#{key} = :{key}" for key in values)
        removals = [f"#{key}" for key, value in attributes.items() if value is None]
        expression = f"SET {assignments}" + (f" REMOVE {', '.join(removals)}" if removals else "")
        if message_rev == 0:
            condition = "attribute_exists(seq) AND attribute_not_exists(#rev)"
        else:
            condition, values["read"] = "attribute_exists(seq) AND #rev = :read", message_rev
        return {
            "Update": {
                "TableName": self._messages,
                "Key": serialize({"room": room, "seq": seq}),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": attr_values(**values),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _log_entry(self, room: str, seq: int, rev: int, ttl: object) -> dict[str, Any]:
        entry: dict[str, Any] = {"pk": changes_pk(room), "sk": rev_sk(rev), "seq": seq, "fannedOut": False}
        if ttl is not None:
            entry["ttl"] = ttl  # the entry goes when its message does (MESSAGE_RETENTION_DAYS)
        return {
            "Put": {
                "TableName": self._rooms,
                "Item": serialize(entry),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }


def state_attributes(state: MessageState) -> dict[str, Any]:
    return {
        "text": state.text,
        "editedAt": state.edited_at,
        "deleted": state.deleted,
        "reactions": state.reactions,
    }


def _plain_message(item: Mapping[str, Any]) -> dict[str, Any]:
    message = dict(item)
    message.pop("ttl", None)
    return message
