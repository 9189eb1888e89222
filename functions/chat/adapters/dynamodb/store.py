"""DynamoDB adapter: every read and write of the chat's state (docs/data-model.md), one class
per aggregate in this folder: connections (with the limiter), memberships (with presence,
shards, restrictions and DMs), messages (seq and idempotency), the janitor's cursor.

Hot paths use GetItem, Query, UpdateItem and TransactWriteItems only; the one Scan
(`scan_stale_connections`) belongs to the janitor.
"""

from __future__ import annotations

from functools import cached_property

from functions.chat.adapters.dynamodb.changes import ChangeStore
from functions.chat.adapters.dynamodb.janitor_cursor import JanitorCursorTable
from functions.chat.adapters.dynamodb.memberships import MembershipTables
from functions.chat.adapters.dynamodb.messages import MessageTable


class ChatStore(MembershipTables, MessageTable, JanitorCursorTable):
    """The chat's tables. One instance per process, sharing one boto3 client."""

    @cached_property
    def changes(self) -> ChangeStore:
        """The messages' change log, on the same client."""
        return ChangeStore(self._db, self._settings)
