"""Chaos, in one process: a room of members through K messages while everything fails sometimes.

The real ingress, fan-out and janitor handlers over moto. Faults (tests/chaos/botofaults.py and
pipeline.py): DynamoDB ProvisionedThroughputExceeded / ThrottlingException / InternalServerError
on any call, TransactWriteItems that commit but answer 500, SQS throttling and 5xx,
PostToConnection 429 and 500, fan-out invocations that crash mid-batch, duplicated SQS
deliveries, and connections that API Gateway lost (410) with nobody telling the runtime.

Asserted every run: every acked message stored exactly once with its seq and no seq missing;
every member that stayed connected got every acked message (after de-dup by seq), or the
missing part is in the DLQ and `dynamowave redrive` then delivers it; no partial state
(counters equal what they count, no orphan memberships, no half-written message); the lost
connections are pruned, by the fan-out's 410 or by the janitor.

K comes from DYNAMOWAVE_CHAOS_MESSAGES (30 in `make test`, 400 in `make chaos`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Iterator
from typing import cast

import pytest

from dynamowave.cli import main as cli
from functions.chat import deps
from tests.chaos.botofaults import BotoFaults
from tests.chaos.invariants import Acked, State, check_all
from tests.chaos.pipeline import Member, Pipeline
from tests.fuzz.support import ENDPOINT, ingress_harness

MESSAGES = int(os.environ.get("DYNAMOWAVE_CHAOS_MESSAGES", "30"))
MEMBERS = int(os.environ.get("DYNAMOWAVE_CHAOS_MEMBERS", "5"))
ROOM = "chaos"


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    settings = {
        "RATE_LIMIT_PER_SECOND": "100000",
        "RATE_LIMIT_BURST": "100000",
        # Fail fast and often: few retries, short backoffs, a retry job becomes visible at once,
        # and a recipient that fails twice is dead-lettered (so the DLQ path runs every time).
        "POST_MAX_RETRIES": "2",
        "POST_BACKOFF_BASE_MS": "1",
        "POST_BACKOFF_CAP_MS": "5",
        "FANOUT_MAX_ATTEMPTS": "1",
        "FANOUT_RETRY_DELAY_SECONDS": "0",
        "FANOUT_POOL_SIZE": "4",
    }
    with ingress_harness(**settings) as harness:
        faults = BotoFaults(
            rates={
                "dynamodb": 0.03,
                "sqs": float(os.environ.get("CHAOS_SQS_RATE", "0.05")),
                "apigatewaymanagementapi": 0.3,
            },
            ambiguous_rate=0.05,
            enabled=False,
        )
        for client in (deps.dynamodb_client(), deps.sqs_client(), deps.management_api(ENDPOINT)._client):
            faults.install(client)
        yield Pipeline(harness, faults, crash_rate=0.1, duplicate_rate=0.1)


def redrive(pipeline: Pipeline) -> dict[str, int]:
    resources = pipeline.harness.resources
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli(
            ["redrive", "--queue-url", resources.fanout_queue_url, "--dlq-url", resources.fanout_dlq_url,
             "--wait-seconds", "0", "--json"]
        )  # fmt: skip
    assert status == 0, out.getvalue()
    return cast("dict[str, int]", json.loads(out.getvalue().strip().splitlines()[-1]))


def covered_by(jobs: list[dict[str, object]], member: Member) -> set[int]:
    """Seqs of `message` frames the DLQ still holds for this member (explicit list or whole shard)."""
    seqs = set()
    for job in jobs:
        frame = job.get("frame")
        if not isinstance(frame, dict) or frame.get("type") != "message":
            continue
        connections = job.get("connections")
        if connections is None or (isinstance(connections, list) and member.connection_id in connections):
            seqs.add(int(frame["seq"]))
    return seqs


# Not strict: whether a run loses a message depends on where the random faults land (most runs
# at K=30 do). test_ack_durability.py shows the same bug deterministically (strict).
def test_a_room_survives_faults_everywhere(pipeline: Pipeline) -> None:
    started = time.monotonic()
    harness, faults = pipeline.harness, pipeline.faults
    members = [pipeline.member(f"user{i}", ROOM) for i in range(MEMBERS)]
    live, lost_to_fanout, lost_to_janitor = members[:-2], members[-2], members[-1]
    acked = Acked()
    problems: list[str] = []

    faults.enabled = True
    for index in range(MESSAGES):
        if index == MESSAGES // 3:
            faults.gone.add(lost_to_fanout.connection_id)  # API Gateway lost it; no $disconnect
        sender = live[index % len(live)]
        ack = pipeline.send_until_acked(
            sender, ROOM, f"message {index} from {sender.identity.user_id}", f"m{index}"
        )
        problems += acked.record(
            sender.identity.user_id, ROOM, ack["clientMsgId"], ack["id"], int(ack["seq"])
        )
        pipeline.pump(batches=1)
    pipeline.pump()
    faults.enabled = False
    assert not problems, problems

    # Delivery: every live member has every acked seq, or the DLQ holds what is missing.
    expected = acked.seqs(ROOM)
    dead = pipeline.dead_letters()
    missing_before_redrive = 0
    for member in live:
        missing = expected - member.seqs(ROOM)
        missing_before_redrive += len(missing)
        assert missing <= covered_by(dead, member), (
            f"{member.identity.user_id} never got seqs {sorted(missing - covered_by(dead, member))} "
            "and they are not in the DLQ: acked messages lost silently"
        )
    moved = redrive(pipeline) if dead else {"moved": 0}
    pipeline.pump()
    for member in live:
        assert expected <= member.seqs(ROOM), (
            f"{member.identity.user_id} still misses {sorted(expected - member.seqs(ROOM))}"
        )

    # No partial state (a lost connection's prune may be half done until the janitor runs).
    lost = frozenset({lost_to_fanout.connection_id, lost_to_janitor.connection_id})
    state = State.read(harness.dynamodb, harness.resources.tables)
    pruned_by_fanout = lost_to_fanout.connection_id not in state.connection_ids()
    problems = check_all(state, acked, [ROOM], lost)
    assert not problems, "\n".join(problems)

    # The last one is lost with no message after it: only the janitor can find it. Lost
    # connections stop refreshing lastSeen; make them look idle past the timeout, as time would.
    faults.gone.add(lost_to_janitor.connection_id)
    for member in (lost_to_fanout, lost_to_janitor):
        with contextlib.suppress(harness.dynamodb.exceptions.ConditionalCheckFailedException):
            harness.dynamodb.update_item(
                TableName=harness.resources.tables["connections"],
                Key={"connectionId": {"S": member.connection_id}},
                UpdateExpression="SET lastSeen = :old",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues={":old": {"N": "0"}},
            )
    janitor = pipeline.run_janitor()
    pipeline.pump()
    state = State.read(harness.dynamodb, harness.resources.tables)
    assert not lost & state.connection_ids(), janitor
    assert {m.connection_id for m in live} <= state.connection_ids(), "the janitor pruned a live connection"
    problems = check_all(state, acked, [ROOM])
    assert not problems, "\n".join(problems)

    # Everyone leaves: nothing remains but the messages.
    for member in live:
        harness.disconnect(member.connection_id)
    state = State.read(harness.dynamodb, harness.resources.tables)
    assert check_all(state, acked, [ROOM]) == []
    assert state.connections == []
    assert [i for i in state.rooms if str(i["pk"]).startswith(f"ROOM#{ROOM}#S#")] == []

    unique = sum(len(m.seqs(ROOM)) for m in members)  # polls every member first
    deliveries = sum(1 for m in members for f in m.frames if f.get("type") == "message")
    figures = {
        "messages acked": len(expected),
        "members (live / lost)": f"{len(live)} / 2",
        "deliveries (incl. duplicates)": deliveries,
        "duplicates received": deliveries - unique,
        "post retries (429/5xx injected)": sum(v for k, v in faults.counts.items() if k.startswith("apigatewaymanagementapi.PostToConnection:") and "Gone" not in k),
        "missing before redrive": missing_before_redrive,
        "DLQ entries": len(dead),
        "redriven": moved.get("moved", 0),
        "lost connection pruned by fan-out (410)": pruned_by_fanout,
        "janitor": janitor,
        **dict(pipeline.stats),
        **faults.summary(),
        "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip
    print(f"\nchaos (in-process, K={MESSAGES}, members={MEMBERS}):")
    for key, value in figures.items():
        print(f"  {key}: {value}")
