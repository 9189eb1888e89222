"""Make moto's DynamoDB behave like the real one where the chat depends on it (moto 5.2.5 internals).

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
4. Answers that cost what they carry. moto 5.1+ writes every response through a generic,
   model-driven serializer at about 0.7 ms per item: a Query for one fan-out shard of 250
   members took ~190 ms, one request at a time (patch 1), so a message to a 1,000-member room
   waited most of a second on moto. The data-plane answers of DynamoDB are already in wire
   format (items as ``{"S": ...}`` maps), so they are written with ``json.dumps``, as moto
   before 5.1 did; anything that will not encode that way takes moto's serializer.
5. Projections that copy what they keep. ``Item.project`` turns the whole item into plain Python
   once per projected name and serializes the result back: a fan-out shard Query (``sk,
   userId`` of 250 subscriptions) spent ~60 ms of the moto process there, a quarter of its CPU
   under fan-out (docs/benchmarks.md, the worker-process profile). A projection of top-level
   string, number or boolean attributes keeps those attributes' wire values as they are (what
   the round trip returns for them); any other projection takes moto's own path.
6. (server only, `cache_server_dispatch`) A dispatch that does not rediscover moto per request.
   For every request the server lists moto's package directories (to match a service name) and
   inspects the handler class's methods: a quarter of the time of a GetItem. Neither changes
   while the server runs, so both are computed once.
7. Receives that read the retention period once. For every message a ReceiveMessage looks at,
   moto builds all of the queue's attributes (counting its messages) to read
   ``MessageRetentionPeriod``: a receive of 10 from a queue of 50 took ~40 to 55 ms. The period is
   read from the queue itself, with the same comparison against moto's clock.
8. Conditions lexed once per expression. moto lexes a ConditionExpression with one regular
   expression search per pattern per token, on every request: ~0.1 ms of the limiter's
   UpdateItem, under the lock of patch 1 (``python -m dynamowave.bench.moto_calls``). The chat
   sends a few distinct expressions millions of times, so the token list
   of each (immutable nodes, independent of the names and values) is kept in a bounded cache
   and every parse gets a fresh copy of it; the parse itself, and its errors, are moto's.

Applied once per process, before any request, and only to the pinned moto (`require`, in
dynamowave/compat/__init__.py). No upstream issue is known for 1 to 8; moto's own work on copy
costs (getmoto/moto#9670, item deep copies in Query) does not cover them.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

from dynamowave.compat import require

_LOCK = threading.RLock()
_query_partition = threading.local()
_applied = False
CONDITION_FAILED = "The conditional request failed"


def serialize_dynamodb() -> None:
    """Apply patches 1 to 5, 7 and 8 (idempotent); patch 6 is the server's (`cache_server_dispatch`)."""
    global _applied  # noqa: PLW0603 - a process-wide, idempotent patch
    if _applied:
        return
    require("moto")
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _LOCK:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    _scope_queries_to_their_partition()
    _serialize_item_answers_directly()
    _project_top_level_scalars_directly()
    _read_retention_from_the_queue()
    _lex_each_condition_once()
    _applied = True


def _read_retention_from_the_queue() -> None:
    from moto.sqs import models

    original = models.SQSBackend.is_message_valid_based_on_retention_period

    @functools.wraps(original)
    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        retain_until = retention_period + message.sent_timestamp / 1000
        # Looked up on the module at each call, as moto's own code does (tests move its clock).
        return bool(retain_until > models.unix_time())  # type: ignore[attr-defined]

    models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )


# Distinct condition expressions kept lexed; the chat uses a few dozen.
CONDITION_LEX_CACHE_SIZE = 1024


def _lex_each_condition_once() -> None:
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    original = ConditionExpressionParser._lex_condition_expression

    @functools.lru_cache(maxsize=CONDITION_LEX_CACHE_SIZE)
    def lexed(expression: str) -> tuple[Any, ...]:
        # Lexing reads only the expression text; a failure raises and is not cached.
        return tuple(original(ConditionExpressionParser(expression, None, None)))

    @functools.wraps(original)  # __wrapped__: moto's own lexer, which tests compare against
    def _lex_condition_expression(self: Any) -> Any:
        return deque(lexed(self.condition_expression))

    ConditionExpressionParser._lex_condition_expression = _lex_condition_expression  # type: ignore[method-assign]


# Wire types whose value a projection's round trip through plain Python returns unchanged.
_SCALAR_TYPES = frozenset({"S", "BOOL", "NULL"})


def _project_top_level_scalars_directly() -> None:
    from moto.dynamodb.models.dynamo_type import Item

    original = Item.project

    @functools.wraps(original)  # __wrapped__: moto's own, which tests compare against
    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        names = [path[0] for path in projection_expressions if len(path) == 1]
        if len(names) != len(projection_expressions) or any("[" in name for name in names):
            return original(self, projection_expressions)
        kept: dict[str, Any] = {}
        for name in names:
            value = self.attrs.get(name)
            if value is None:
                continue
            if value.type not in _SCALAR_TYPES and not (value.type == "N" and _plain_number(value.value)):
                return original(self, projection_expressions)
            kept[name] = {value.type: value.value}
        return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=kept)

    Item.project = project  # type: ignore[method-assign]


def _plain_number(text: str) -> bool:
    """A number the Decimal round trip writes back as it was (an integer without a sign or zeros)."""
    return text.isdigit() and (text == "0" or not text.startswith("0"))


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


# Operations whose answers hold only items, keys, counts and consumed capacity: JSON as they are.
DIRECT_JSON_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def cache_server_dispatch() -> None:
    """Patch 6, for the moto server process (`dynamowave.local.moto_backend.serve`)."""
    require("moto")
    from functools import cache

    from moto import backends
    from moto.core import responses

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    responses.method_names_from_class = cache(responses.method_names_from_class)  # type: ignore[attr-defined]


def _serialize_item_answers_directly() -> None:
    import json

    from moto.core.responses import ActionResult, PaginatedResult

    original = ActionResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        if (
            not isinstance(self, PaginatedResult)
            and isinstance(self.result, dict)
            and context.service_model.service_name == "dynamodb"
            and context.operation_model.name in DIRECT_JSON_OPERATIONS
        ):
            try:
                body = json.dumps(self.result, separators=(",", ":"))
            except (TypeError, ValueError):
                return original(self, context)
            version = context.service_model.metadata.get("jsonVersion", "1.0")
            return 200, {"Content-Type": f"application/x-amz-json-{version}"}, body
        return original(self, context)

    ActionResult.execute_result = execute_result  # type: ignore[method-assign]


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
