"""Counts the AWS requests a process makes, from the real boto3 calls (botocore event hooks).

Every client the process creates gets two hooks: ``before-parameter-build`` keeps the call's
parameters, ``after-call`` (which botocore fires for successes and errors alike) counts the
request and, for DynamoDB, its capacity units. moto's ConsumedCapacity is a constant per call
(0.5 or 1.0, whatever was read), so the units are computed here from item sizes by DynamoDB's
on-demand rules (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html):

* reads: 4 KB per unit, summed over every item a Query or Scan *evaluates* (before its
  filter), rounded up per request; strongly consistent reads cost 1 RRU per 4 KB, eventually
  consistent 0.5, transactional 2; a GetItem that finds nothing still costs one read.
* writes: 1 KB per unit per item, rounded up per item; transactional writes cost 2 per KB; a
  write refused by its condition still costs its unit.

Sizes of items the response does not show (filtered out, projected away, the old image of an
update or delete) are the mean size of the items seen so far (puts, full reads, and rows the
benchmark seeds itself) in the same partition when the meter knows the table's partition key
(`use_partition_keys`), else in the whole table. Per partition matters in a single-table design:
the rooms table holds small subscription items beside larger user memberships, and a projected
Query of a membership shard weighs what the shard's items weigh, not the table's average.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from functions.chat.schema import TableDefinition

READ_UNIT_BYTES: Final = 4096
WRITE_UNIT_BYTES: Final = 1024
DEFAULT_ITEM_BYTES: Final = 200
BUSIEST_ITEMS: Final = 5  # the most-written items a snapshot lists
_EQUALITY = re.compile(r"(#?[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)")


def attribute_value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB's wire format ({"S": ...}, {"M": {...}}, ...)."""
    (kind, raw), *_ = value.items()
    if kind == "S":
        return len(str(raw).encode("utf-8"))
    if kind == "N":
        digits = str(raw).lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(raw) if isinstance(raw, bytes | bytearray) else math.ceil(len(str(raw)) * 3 / 4)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in raw)
    if kind == "NS":
        return sum(attribute_value_size({"N": n}) for n in raw)
    if kind == "BS":
        return sum(attribute_value_size({"B": b}) for b in raw)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + attribute_value_size(v) + 1 for k, v in raw.items())
    if kind == "L":
        return 3 + sum(attribute_value_size(v) + 1 for v in raw)
    return 0


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values."""
    return sum(len(name.encode("utf-8")) + attribute_value_size(value) for name, value in item.items())


@dataclass
class AwsUsage:
    """Counters since the last reset; `snapshot` is what the benchmark reports."""

    calls: Counter[str] = field(default_factory=Counter)  # "service.Operation" -> requests
    dynamodb_rru: float = 0.0
    dynamodb_wru: float = 0.0
    empty_receives: int = 0  # idle long polls: a fixed cost per poller, not per message
    lambda_invocations: Counter[str] = field(default_factory=Counter)
    lambda_gb_seconds: float = 0.0
    lambda_ms: dict[str, float] = field(default_factory=dict)
    # Hot keys: write requests per item ("table key"), a refused condition included (it is
    # billed and it loads the item's partition), and cancelled transactions by reason.
    item_writes: Counter[str] = field(default_factory=Counter)
    transactions_cancelled: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        sqs = sum(n for name, n in self.calls.items() if name.startswith("sqs."))
        return {
            "calls": dict(self.calls),
            "dynamodb_rru": round(self.dynamodb_rru, 3),
            "dynamodb_wru": round(self.dynamodb_wru, 3),
            "dynamodb_requests": sum(n for name, n in self.calls.items() if name.startswith("dynamodb.")),
            "sqs_requests": sqs - self.empty_receives,
            "sqs_empty_receives": self.empty_receives,
            "post_to_connection": self.calls.get("apigatewaymanagementapi.PostToConnection", 0),
            "lambda_invocations": dict(self.lambda_invocations),
            "lambda_gb_seconds": self.lambda_gb_seconds,
            "lambda_ms": {name: round(ms, 1) for name, ms in self.lambda_ms.items()},
            "busiest_items": dict(self.item_writes.most_common(BUSIEST_ITEMS)),
            "transactions_cancelled": dict(self.transactions_cancelled),
        }


class AwsMeter:
    """Thread-safe counters fed by botocore hooks (`attach`) and by the Lambda runner."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.usage = AwsUsage()
        self._sizes: dict[str, tuple[int, int]] = {}  # table -> (bytes seen, items seen)
        self._partition_sizes: dict[tuple[str, str], tuple[int, int]] = {}  # (table, key value) -> same
        self._partition_keys: dict[str, str] = {}  # table -> partition key attribute

    # -- wiring ----------------------------------------------------------------------------------

    def attach(self, events: Any) -> None:
        """Register on one client's event system (``client.meta.events``)."""
        events.register("before-parameter-build", self._remember_params)
        events.register("after-call", self._count)

    def reset(self) -> None:
        with self._lock:
            self.usage = AwsUsage()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.usage.snapshot()

    def use_partition_keys(self, partition_keys: Mapping[str, str]) -> None:
        """Table name -> partition key attribute: sizes are then also learned per partition."""
        with self._lock:
            self._partition_keys.update(partition_keys)

    def observe_item(self, table: str, size: int, count: int = 1, partition: str | None = None) -> None:
        """Teach the meter what a table's items weigh (the benchmark's own seeded rows)."""
        with self._lock:
            _add(self._sizes, table, size, count)
            if partition is not None:
                _add(self._partition_sizes, (table, partition), size, count)

    def lambda_invocation(self, function: str, duration_ms: float, memory_mb: int) -> None:
        with self._lock:
            self.usage.lambda_invocations[function] += 1
            self.usage.lambda_ms[function] = self.usage.lambda_ms.get(function, 0.0) + duration_ms
            self.usage.lambda_gb_seconds += duration_ms / 1000 * memory_mb / 1024

    # -- hooks -----------------------------------------------------------------------------------

    def _remember_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["dynamowave_bench_params"] = params

    def _count(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        service = model.service_model
        params: dict[str, Any] = context.get("dynamowave_bench_params") or {}
        self.count_call(
            str(service.endpoint_prefix), str(service.service_name), str(model.name), params, parsed
        )

    def count_calls(self, calls: list[tuple[Any, ...]]) -> None:
        """Calls another process made (a fan-out worker's, dynamowave/local/worker_process.py):
        ``(endpoint prefix, service name, operation, params, parsed)`` each."""
        for call in calls:
            self.count_call(*call)

    def count_call(
        self, service: str, service_name: str, operation: str, params: dict[str, Any], parsed: dict[str, Any]
    ) -> None:
        with self._lock:
            self.usage.calls[f"{service_name}.{operation}"] += 1
            if operation == "ReceiveMessage" and not parsed.get("Messages"):
                self.usage.empty_receives += 1
            if service == "dynamodb":
                self._dynamodb(operation, params, parsed)
                if operation == "TransactWriteItems" and parsed.get("Error"):
                    self._cancelled(parsed)

    # -- DynamoDB capacity -------------------------------------------------------------------------

    def _mean(self, table: str, partition: str | None = None) -> float:
        if partition is not None:
            total, seen = self._partition_sizes.get((table, partition), (0, 0))
            if seen:
                return total / seen
        total, seen = self._sizes.get(table, (0, 0))
        return total / seen if seen else DEFAULT_ITEM_BYTES

    def _learn(self, table: str, item: Mapping[str, Any]) -> int:
        size = item_size(item)
        _add(self._sizes, table, size)
        partition = self._partition_of_item(table, item)
        if partition is not None:
            _add(self._partition_sizes, (table, partition), size)
        return size

    def _partition_of_item(self, table: str, item: Mapping[str, Any] | None) -> str | None:
        name = self._partition_keys.get(table)
        value = (item or {}).get(name) if name else None
        return _scalar(value)

    def _partition_of_query(self, table: str, params: Mapping[str, Any]) -> str | None:
        """The partition a Query's key condition names (``pk = :pk``, aliases resolved)."""
        name = self._partition_keys.get(table)
        if name is None:
            return None
        aliases = params.get("ExpressionAttributeNames") or {}
        values = params.get("ExpressionAttributeValues") or {}
        for attribute, placeholder in _EQUALITY.findall(str(params.get("KeyConditionExpression", ""))):
            if aliases.get(attribute, attribute) == name:
                return _scalar(values.get(placeholder))
        return None

    def _dynamodb(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        handler = _DYNAMODB_RULES.get(operation)
        if handler is not None:
            handler(self, params, parsed)

    def _get_item(self, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        table = str(params.get("TableName", ""))
        factor = 1.0 if params.get("ConsistentRead") else 0.5
        item = parsed.get("Item")
        if item is None:
            size = 0.0
        elif params.get("ProjectionExpression"):
            size = max(
                float(item_size(item)), self._mean(table, self._partition_of_item(table, params.get("Key")))
            )
        else:
            size = float(self._learn(table, item))
        self.usage.dynamodb_rru += factor * max(1, math.ceil(size / READ_UNIT_BYTES))

    def _query_or_scan(self, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        table = str(params.get("TableName", ""))
        factor = 1.0 if params.get("ConsistentRead") else 0.5
        items = parsed.get("Items") or []
        evaluated = int(parsed.get("ScannedCount", len(items)))
        full_items = not params.get("ProjectionExpression") and params.get("Select") != "COUNT"
        if full_items and not params.get("FilterExpression"):
            total = float(sum(self._learn(table, item) for item in items))
        elif full_items and items:
            sizes = [self._learn(table, item) for item in items]
            total = sum(sizes) / len(sizes) * evaluated
        else:
            total = self._mean(table, self._partition_of_query(table, params)) * evaluated
        self.usage.dynamodb_rru += factor * max(1, math.ceil(total / READ_UNIT_BYTES))

    def _write(self, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        self.usage.dynamodb_wru += self._write_units(params, parsed.get("Attributes"))
        self._count_item(params)

    def _count_item(self, request: Mapping[str, Any]) -> None:
        table = str(request.get("TableName", ""))
        key = request.get("Key") or _key_of(table, request.get("Item") or {})
        if key:
            label = " / ".join(str(next(iter(value.values()))) for value in key.values())
            self.usage.item_writes[f"{_table_label(table)} {label}"] += 1

    def _cancelled(self, parsed: dict[str, Any]) -> None:
        """A cancelled transaction: TransactionConflict (a concurrent transaction on an item) or a
        condition that lost a race (the seq counter moved), counted by the first reason given."""
        codes = [
            str(r.get("Code")) for r in parsed.get("CancellationReasons") or [] if r.get("Code") != "None"
        ]
        self.usage.transactions_cancelled[codes[0] if codes else str(parsed["Error"].get("Code"))] += 1

    def _write_units(self, request: Mapping[str, Any], returned: Mapping[str, Any] | None) -> int:
        table = str(request.get("TableName", ""))
        if "Item" in request:
            size = float(self._learn(table, request["Item"]))
        else:
            mean = self._mean(table, self._partition_of_item(table, request.get("Key")))
            size = max(float(item_size(returned)), mean) if returned else mean
        return max(1, math.ceil(size / WRITE_UNIT_BYTES))

    def _transact_write(self, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        for entry in params.get("TransactItems") or []:
            for kind, request in entry.items():  # {"Put": {...}} / Update / Delete / ConditionCheck
                self.usage.dynamodb_wru += 2 * self._write_units(request, None)
                if kind != "ConditionCheck":
                    self._count_item(request)

    def _batch_write(self, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        for table, requests in (params.get("RequestItems") or {}).items():
            for request in requests:
                put = request.get("PutRequest")
                body = {"TableName": table, **({"Item": put["Item"]} if put else {})}
                self.usage.dynamodb_wru += self._write_units(body, None)
                delete = request.get("DeleteRequest")
                self._count_item({**body, **({"Key": delete["Key"]} if delete else {})})

    def _transact_get(self, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        for entry, response in zip(
            params.get("TransactItems") or [], parsed.get("Responses") or [], strict=False
        ):
            get = entry.get("Get", {})
            table = str(get.get("TableName", ""))
            item = response.get("Item")
            size = (
                item_size(item) if item else self._mean(table, self._partition_of_item(table, get.get("Key")))
            )
            self.usage.dynamodb_rru += 2 * max(1, math.ceil(size / READ_UNIT_BYTES))

    def _batch_get(self, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        for table, items in (parsed.get("Responses") or {}).items():
            factor = 1.0 if (params.get("RequestItems") or {}).get(table, {}).get("ConsistentRead") else 0.5
            for item in items:
                self.usage.dynamodb_rru += factor * max(1, math.ceil(item_size(item) / READ_UNIT_BYTES))


def _add(sizes: dict[Any, tuple[int, int]], key: Any, size: int, count: int = 1) -> None:
    total, seen = sizes.get(key, (0, 0))
    sizes[key] = (total + size * count, seen + count)


def _scalar(value: Mapping[str, Any] | None) -> str | None:
    """A key attribute's value ({"S": ...} or {"N": ...}) as text, None if absent."""
    if not value:
        return None
    raw = value.get("S", value.get("N"))
    return None if raw is None else str(raw)


_DYNAMODB_RULES: Final[dict[str, Callable[[AwsMeter, dict[str, Any], dict[str, Any]], None]]] = {
    "GetItem": AwsMeter._get_item,
    "Query": AwsMeter._query_or_scan,
    "Scan": AwsMeter._query_or_scan,
    "PutItem": AwsMeter._write,
    "UpdateItem": AwsMeter._write,
    "DeleteItem": AwsMeter._write,
    "TransactWriteItems": AwsMeter._transact_write,
    "BatchWriteItem": AwsMeter._batch_write,
    "TransactGetItems": AwsMeter._transact_get,
    "BatchGetItem": AwsMeter._batch_get,
}


def _table_definition(table: str) -> TableDefinition | None:
    from functions.chat.schema import TABLES

    return next((t for t in TABLES if table == t.logical_name or table.endswith(f"-{t.logical_name}")), None)


def _table_label(table: str) -> str:
    definition = _table_definition(table)
    return str(definition.logical_name) if definition is not None else table


def _key_of(table: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """The key attributes of an item about to be put (the table's key schema, functions/chat/schema.py)."""
    definition = _table_definition(table)
    if definition is None:
        return {}
    keys = (definition.partition_key, definition.sort_key)
    return {key.name: item[key.name] for key in keys if key is not None and key.name in item}


def meter_every_client(meter: AwsMeter) -> Callable[[], None]:
    """Attach `meter` to every botocore client created from now on, in this process.

    botocore copies a session's event system into each client it creates, and the functions
    build their own sessions (functions.chat.deps), so the hooks go onto each new client.
    Returns a function that undoes it.
    """
    from dynamowave.compat.botocore_hooks import on_every_new_client

    return on_every_new_client(lambda client: meter.attach(client.meta.events))
