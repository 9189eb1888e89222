"""Make moto's DynamoDB behave like the real one where the chat depends on it.

1. Serializable requests. Real DynamoDB applies each request, and each TransactWriteItems,
   atomically. moto checks conditions and then writes without a lock, so two threads (the
   threaded moto server, or threaded tests) can both pass ``seq = :current`` and both write: a
   lost message real DynamoDB can never produce. One lock around each DynamoDB request restores
   the guarantee the seq assignment relies on.
2. Transactions that cost what they touch. moto deep-copies every table a transaction names
   (to roll back on failure), so a join or a send gets slower with every row in the table: under
   `make loadtest` that copy was half of the runtime's CPU. Here all conditions are checked
   first (the items of one transaction are distinct, so that is DynamoDB's semantics), nothing
   is written if one fails, and only the touched items are backed up for the unlikely failure
   while writing.
3. Queries that read their partition. moto's ``Table.query`` lists and sorts every item of the
   table and then keeps the partition asked for (1.1 s for one Query on a 50,000-item table);
   DynamoDB reads only the partition. While a base-table Query runs, ``all_items`` of that table
   returns only the queried partition; moto then filters by the same key, so results are equal.

Applied once per process, before any request; written against moto 5.x (pinned below 6).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

_LOCK = threading.RLock()
_query_partition = threading.local()
_applied = False
CONDITION_FAILED = "The conditional request failed"


def serialize_dynamodb() -> None:
    """Apply the three patches (idempotent)."""
    global _applied  # noqa: PLW0603 - a process-wide, idempotent patch
    if _applied:
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _LOCK:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    _scope_queries_to_their_partition()
    _applied = True


def _scope_queries_to_their_partition() -> None:
    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_all_items = Table.all_items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # index_name is the 7th parameter after hash_key (moto passes it by position).
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is not None or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        _query_partition.scope = (self, hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _query_partition.scope = None

    def all_items(self: Any) -> Any:
        scope = getattr(_query_partition, "scope", None)
        if scope is None or scope[0] is not self:
            return original_all_items(self)
        partition = self.items.get(scope[1])
        if partition is None:
            return []
        if not self.range_key_attr:
            return [partition]
        return sorted(partition.values(), key=lambda item: item.range_key)

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    planned: list[tuple[str, dict[str, Any], str, dict[str, Any], Any]] = []
    reasons: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        table = self.get_table(table_name)
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        identity = (str(table_name), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        if condition is not None:
            check = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not check.expr(current):
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                reasons.append(("ConditionalCheckFailed", CONDITION_FAILED, old))
                continue
        reasons.append((None, None, None))
        planned.append((op_type, op, table_name, key, current))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)

    backups = [(name, key, copy.deepcopy(current)) for _, _, name, key, current in planned]
    try:
        for op_type, op, table_name, key, _ in planned:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(
                    table_name,
                    op["Item"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name, key, expression_attribute_names=names, expression_attribute_values=values
                )
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except Exception:
        for table_name, key, previous in backups:
            if previous is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, previous.to_json()["Attributes"])
        raise
