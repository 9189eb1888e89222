"""A tiny `dynamowave bench --json`: every system delivers every message to every member."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The console script `make bench` runs (`python -m dynamowave.cli` would load the CLI twice).
DYNAMOWAVE = str(Path(sys.executable).parent / "dynamowave")
MEMBERS, MESSAGES = 12, 3
FIELDS = {"system", "members", "idle", "messages", "deliveries", "deliveries_per_s", "p50_ms", "p99_ms"}
AWS_FIELDS = {"dynamodb_rru", "dynamodb_wru", "sqs_requests", "post_to_connection", "lambda_invocations"}


def test_tiny_bench_reports_every_system_with_all_deliveries(tmp_path: Path) -> None:
    command = [
        DYNAMOWAVE, "bench",
        "--members", str(MEMBERS), "--messages", str(MESSAGES), "--idle", "50",
        "--json", "--log-dir", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {line["system"]: line for line in map(json.loads, done.stdout.splitlines())}
    assert set(results) == {"dynamowave", "tutorial", "broadcast"}
    for system, result in results.items():
        assert set(result) >= FIELDS, system
        assert result["deliveries"] == MEMBERS * MESSAGES, system
        assert result["members"] == MEMBERS and result["messages"] == MESSAGES
        assert result["p99_ms"] >= result["p50_ms"] > 0
    for system in ("dynamowave", "tutorial"):
        requests = results[system]["aws_requests_per_message"]
        assert set(requests) == AWS_FIELDS, system
        assert results[system]["idle"] == 50
        # Every member gets one post per message; dynamowave also posts the sender's ack.
        assert requests["post_to_connection"] >= MEMBERS
        assert (
            results[system]["usd_per_million_messages"] > results[system]["apigw_floor_usd_per_million"] > 0
        )
    ours, theirs = (
        results["dynamowave"]["aws_requests_per_message"],
        results["tutorial"]["aws_requests_per_message"],
    )
    assert ours["sqs_requests"] > 0 and theirs["sqs_requests"] == 0  # only dynamowave has the queue hop
    assert ours["lambda_invocations"] >= 2 and theirs["lambda_invocations"] == 1


def test_unknown_system_is_a_usage_error() -> None:
    done = subprocess.run(
        [DYNAMOWAVE, "bench", "--systems", "dynamowave,nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--systems" in done.stderr


RATE_FIELDS = {"messages_per_s", "posts_per_delivery", "busiest_item_key", "transaction_conflicts"}


def bench_json(*args: str) -> dict[str, Any]:
    command = [DYNAMOWAVE, "bench", "--systems", "dynamowave", "--json", *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = done.stdout.splitlines()
    result: dict[str, object] = json.loads(line)
    return result


def test_a_tiny_join_storm_at_a_rate_reports_every_field() -> None:
    storm = bench_json(
        "--members", "4", "--join-storm", "6", "--rate", "4", "--senders", "2", "--duration", "2",
        "--coalesce", "--batching-window", "0.3",
    )  # fmt: skip
    assert set(storm) >= FIELDS | RATE_FIELDS | {"usd_per_million_messages", "apigw_floor_usd_per_million"}
    assert set(storm) >= {"busiest_item_writes_per_message", "busiest_item_writes_per_join", "joins_per_s"}
    assert storm["messages"] == 8 and storm["deliveries"] == 4 * 8 and storm["coalesce"] is True
    assert storm["joins"] == 6 and storm["joins_per_s"] > 0
    assert storm["posts_per_delivery"] > 0


def test_fanout_workers_run_side_by_side_and_their_calls_are_metered() -> None:
    command = [
        DYNAMOWAVE, "bench", "--systems", "dynamowave", "--json", "--fanout-workers", "0,1",
        "--members", str(MEMBERS), "--messages", str(MESSAGES),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    threads, workers = map(json.loads, done.stdout.splitlines())
    assert (threads["fanout_workers"], workers["fanout_workers"]) == (0, 1)
    assert threads["deliveries"] == workers["deliveries"] == MEMBERS * MESSAGES
    # The worker's shard Queries are counted (and weighed) as the in-process fan-out's are.
    for field in ("dynamodb_rru", "dynamodb_wru", "post_to_connection"):
        assert workers["aws_requests_per_message"][field] == threads["aws_requests_per_message"][field]
    assert workers["calls"]["dynamodb.Query"] == threads["calls"]["dynamodb.Query"] > 0
