"""Two moto calls the local runtime makes per message, with moto's own code and with its patches.

``python -m dynamowave.bench.moto_calls [--calls N] [--json]`` times N calls of each, one after
another, through boto3 against moto in this process (`mock_aws`), first with moto's own
functions and then with the local runtime's patches 7 and 8 (dynamowave/compat/moto_patches.py),
and prints the median and p90 wall time per call side by side:

- ReceiveMessage of 10 from a queue holding 50 (visibility timeout 0, so every receive sees
  them all): patch 7, the retention period read once per message;
- a conditional UpdateItem, the limiter's, and the lexing of its condition alone: patch 8, the
  condition lexed once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

QUEUED_MESSAGES = 50
# The limiter's full-bucket case (functions/chat/adapters/dynamodb/connections.py).
LIMITER_CONDITION = "attribute_exists(connectionId) AND (attribute_not_exists(tat) OR tat <= :now)"


@dataclass(frozen=True)
class CallFigures:
    call: str
    moto: str  # "moto's own" or "patched"
    calls: int
    median_ms: float
    p90_ms: float


@contextmanager
def motos_own_functions() -> Iterator[None]:
    """Patches 7 and 8 taken out (their `__wrapped__` originals put back), then restored."""
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.sqs.models import SQSBackend

    targets = [
        (SQSBackend, "is_message_valid_based_on_retention_period"),
        (ConditionExpressionParser, "_lex_condition_expression"),
    ]
    patched = [getattr(owner, name) for owner, name in targets]
    for (owner, name), function in zip(targets, patched, strict=True):
        setattr(owner, name, function.__wrapped__)
    try:
        yield
    finally:
        for (owner, name), function in zip(targets, patched, strict=True):
            setattr(owner, name, function)


def _time(call: Callable[[], object], calls: int) -> tuple[float, float]:
    for _ in range(10):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), statistics.quantiles(times, n=10)[-1]


def _calls(region: str) -> dict[str, Callable[[], object]]:
    import boto3

    sqs = boto3.client("sqs", region_name=region)
    url = sqs.create_queue(QueueName="bench", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    for index in range(QUEUED_MESSAGES):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{index}")
    dynamodb = boto3.client("dynamodb", region_name=region)
    dynamodb.create_table(
        TableName="connections",
        KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="connections", Item={"connectionId": {"S": "c1"}})

    def receive() -> object:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        if len(received) != 10:
            raise RuntimeError(f"received {len(received)} of 10")
        return received

    def lex_condition() -> object:
        from moto.dynamodb.comparisons import ConditionExpressionParser

        return ConditionExpressionParser(LIMITER_CONDITION, None, None)._lex_condition_expression()

    def conditional_update() -> object:
        # With no interval, so that every call passes its condition.
        now = {"N": str(time.time_ns())}
        return dynamodb.update_item(
            TableName="connections",
            Key={"connectionId": {"S": "c1"}},
            UpdateExpression="SET lastSeen = :now, tat = :next",
            ConditionExpression=LIMITER_CONDITION,
            ExpressionAttributeValues={":now": now, ":next": now},
        )

    return {
        f"ReceiveMessage, 10 of a queue of {QUEUED_MESSAGES}": receive,
        "conditional UpdateItem (the limiter's)": conditional_update,
        "lexing its condition (moto's parser alone)": lex_condition,
    }


def run(calls: int) -> list[CallFigures]:
    from moto import mock_aws

    from dynamowave.compat.moto_patches import serialize_dynamodb

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")
    serialize_dynamodb()
    figures: list[CallFigures] = []
    with mock_aws():
        for name, call in _calls("us-east-1").items():
            with motos_own_functions():
                own = _time(call, calls)
            patched = _time(call, calls)
            figures.append(CallFigures(name, "moto's own", calls, *own))
            figures.append(CallFigures(name, "patched", calls, *patched))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dynamowave.bench.moto_calls", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--calls", type=int, default=200, help="timed calls of each (default 200)")
    parser.add_argument("--json", action="store_true", help="one JSON object per call and moto, a line each")
    args = parser.parse_args(argv)
    if args.calls < 2:
        parser.error("--calls must be at least 2")
    figures = run(args.calls)
    if args.json:
        for figure in figures:
            print(json.dumps(asdict(figure)))
        return 0
    print(f"{'call':46} {'moto':11} {'calls':>6} {'median ms':>10} {'p90 ms':>8}")
    for figure in figures:
        print(
            f"{figure.call:46} {figure.moto:11} {figure.calls:>6} {figure.median_ms:>10.3f} {figure.p90_ms:>8.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
