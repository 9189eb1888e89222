"""Two places where moto's DynamoDB costs grow with the table and real DynamoDB's do not (bench only).

Left alone, 100,000 idle rows would slow this project's hot path in moto, an artifact that says
nothing about the design; the tutorial's Scan, which really does read every row, is unaffected.

* Query: moto lists and *sorts every item of the table* (``Table.query`` -> ``all_items()``),
  then keeps the partition asked for; DynamoDB reads only that partition. While a base-table
  Query runs, ``all_items`` of that table returns only the queried partition (moto then filters
  it by the same hash key, so results are identical).
* TransactWriteItems: moto deep-copies *every table the transaction names* before applying it,
  to roll back on cancellation. Here only the items the transaction touches are saved (deep
  copies, or "absent"), moto's whole-table copy is skipped, and a cancelled or failed
  transaction puts exactly those items back: the same all-or-nothing result.

moto handles one DynamoDB request at a time in the local runtime (dynamowave.local.moto_patches
or the runtime's serialized moto app), which both patches rely on.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

_query_partition = threading.local()
_applied = False


def partition_scoped_queries() -> Callable[[], None]:
    """Both speed-ups, once per process; returns a function that takes them out again."""
    global _applied  # noqa: PLW0603 - a process-wide, idempotent patch
    if _applied:
        return lambda: None
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    saved = (Table.query, Table.all_items, DynamoDBBackend.transact_write_items, getattr(models, "copy"))  # noqa: B009
    _scope_queries()
    _item_level_transaction_rollback()
    _applied = True

    def undo() -> None:
        global _applied  # noqa: PLW0603
        Table.query, Table.all_items, DynamoDBBackend.transact_write_items = saved[:3]  # type: ignore[method-assign]
        setattr(models, "copy", saved[3])  # noqa: B010
        _applied = False

    return undo


def _scope_queries() -> None:
    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_all_items = Table.all_items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # index_name is the 8th parameter after hash_key (moto passes it by position).
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


class _CopyWithoutTables:
    """moto's module-level ``copy``, except that a whole Table is not deep-copied."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, self._table_type):
            return value  # the rollback below saves the touched items instead
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _item_level_transaction_rollback() -> None:
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    setattr(models, "copy", _CopyWithoutTables(Table))  # noqa: B010 - replacing a module global
    original = DynamoDBBackend.transact_write_items

    def touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
        saved = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            attrs = op.get("Key") or op.get("Item") or {}
            if table.hash_key_attr not in attrs:
                continue
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr in attrs else None
            if table.range_key_attr and range_key is None:
                continue
            partition = table.items.get(hash_key)
            current = (partition or {}).get(range_key) if table.range_key_attr else partition
            saved.append((table, hash_key, range_key, copy.deepcopy(current)))
        return saved

    def restore(saved: list[tuple[Any, Any, Any, Any]]) -> None:
        for table, hash_key, range_key, item in reversed(saved):
            if table.range_key_attr:
                if item is None:
                    table.items.get(hash_key, {}).pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = item
            elif item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = touched(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            restore(saved)
            raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
