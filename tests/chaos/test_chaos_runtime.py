"""Chaos against the real local runtime (`dynamowave serve --faults FILE`), over real WebSockets.

The runtime injects what it can (dynamowave/local/faults.py): PostToConnection 429 / 500 and
latency, fan-out invocations that crash mid-batch, duplicated SQS deliveries. Connections are
dropped behind its back with /dev/connections/{id}/drop (no $disconnect: stale records). DynamoDB
and SQS errors have no runtime hook; test_chaos_pipeline.py injects those in-process.

Asserted, as there: every acked message stored once with its seq, no gap; every member still
connected got every acked message (de-duplicated by seq) or it is in the DLQ and `dynamowave
redrive` delivers it; no partial state; dropped connections pruned by the fan-out (410) or the
janitor. K from DYNAMOWAVE_CHAOS_MESSAGES (30 in `make test`, 400 in `make chaos`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.abuse.live import Client, DevApi
from tests.chaos.invariants import Acked, check_all
from tests.clients.local_runtime import REPO, runtime_available, start_local_runtime

pytestmark = pytest.mark.skipif(
    runtime_available() is not None, reason=f"runtime missing: {runtime_available()}"
)

MESSAGES = int(os.environ.get("DYNAMOWAVE_CHAOS_MESSAGES", "30"))
MEMBERS = int(os.environ.get("DYNAMOWAVE_CHAOS_MEMBERS", "5"))
ROOM = "chaos"
FAULTS = {
    "post_to_connection": {"throttle_rate": 0.25, "error_rate": 0.15, "latency_ms": 5},
    "fanout_crash_rate": 0.1,
    "sqs_duplicate_rate": 0.1,
    "seed": 7,
}
IDLE_SECONDS = 6  # the janitor's idle timeout (the gateway's own stays at 600 s)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevApi]:
    workdir = Path(tmp_path_factory.mktemp("chaos-runtime"))
    faults = workdir / "faults.json"
    faults.write_text(json.dumps(FAULTS))
    env = {
        "POST_MAX_RETRIES": "1",  # few retries and one retry job: the DLQ path runs every time
        "POST_BACKOFF_BASE_MS": "5",
        "POST_BACKOFF_CAP_MS": "50",
        "FANOUT_MAX_ATTEMPTS": "1",
        "FANOUT_RETRY_DELAY_SECONDS": "0",
        "IDLE_TIMEOUT_SECONDS": str(IDLE_SECONDS),
    }
    runtime = start_local_runtime(
        workdir,
        *("--faults", str(faults), "--visibility-timeout", "3", "--janitor-interval", "0", "--quiet"),
        *[arg for key, value in env.items() for arg in ("--env", f"{key}={value}")],
    )
    try:
        yield DevApi(runtime)
    finally:
        runtime.stop()


def send_until_acked(
    client: Client, text: str, client_msg_id: str, stats: dict[str, int]
) -> dict[str, object]:
    """A careful client: resend the same clientMsgId after an error frame or a silence."""
    for attempt in range(20):
        if attempt:
            stats["client resends"] = stats.get("client resends", 0) + 1
        mark = len(client.frames)
        client.send(action="sendmessage", room=ROOM, text=text, clientMsgId=client_msg_id)
        reply = client.wait_for(
            lambda f: (
                (f.get("type") in ("ack", "error") and f.get("clientMsgId") == client_msg_id)
                or ("message" in f and "type" not in f)
            ),  # the gateway's own "Internal server error"
            timeout=5,
            start=mark,
        )
        if reply is not None and reply.get("type") == "ack":
            return reply
    raise AssertionError(f"{client_msg_id} never acked")


def wait_quiet(dev: DevApi, timeout: float = 120) -> None:
    """Until the fan-out queue is empty (retries and redeliveries included) twice in a row."""
    deadline, empty = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and empty < 2:
        empty = empty + 1 if dev.queue_depth() == 0 else 0
        time.sleep(0.5)


def covered_by(jobs: list[dict[str, object]], connection_id: str) -> set[int]:
    seqs = set()
    for job in jobs:
        frame = job.get("frame")
        connections = job.get("connections")
        addressed = connections is None or connection_id in connections  # type: ignore[operator]
        if isinstance(frame, dict) and frame.get("type") == "message" and addressed:
            seqs.add(int(frame["seq"]))
    return seqs


def test_a_room_survives_runtime_faults(dev: DevApi) -> None:
    started = time.monotonic()
    members = [Client(dev, f"member{i}") for i in range(MEMBERS)]
    assert all(m.connection_id for m in members)
    for member in members:
        member.join(ROOM)
    live, dropped_early, dropped_late = members[:-2], members[-2], members[-1]
    acked, stats, problems = Acked(), dict[str, int](), list[str]()

    for index in range(MESSAGES):
        if index == MESSAGES // 3:
            dev.drop(dropped_early.connection_id)  # gone; later posts to it answer 410
        sender = live[index % len(live)]
        ack = send_until_acked(sender, f"message {index}", f"m{index}", stats)
        problems += acked.record(sender.user, ROOM, str(ack["clientMsgId"]), str(ack["id"]), int(ack["seq"]))  # type: ignore[call-overload]
    assert not problems, problems
    wait_quiet(dev)
    dev.faults({})  # the incident is over; the operator redrives

    expected = acked.seqs(ROOM)
    dead = dev.dead_letters()
    missing_total = 0
    for member in live:
        missing = expected - member.seqs(ROOM)
        missing_total += len(missing)
        assert missing <= covered_by(dead, member.connection_id), (
            f"{member.user} misses {sorted(missing - covered_by(dead, member.connection_id))}, not in the DLQ"
        )
    redriven = 0
    if dead:
        result = subprocess.run(
            [sys.executable, "-m", "dynamowave.cli", "redrive", "--local", dev.base, "--json", "--wait-seconds", "0"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        redriven = int(json.loads(result.stdout.strip().splitlines()[-1])["moved"])
        wait_quiet(dev)
    for member in live:
        deadline = time.monotonic() + 30
        while not expected <= member.seqs(ROOM) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert expected <= member.seqs(ROOM), (
            f"{member.user} still misses {sorted(expected - member.seqs(ROOM))}"
        )

    lost = frozenset({dropped_early.connection_id, dropped_late.connection_id})
    state = dev.state()
    pruned_by_fanout = dropped_early.connection_id not in state.connection_ids()
    problems = check_all(state, acked, [ROOM], lost)
    assert not problems, "\n".join(problems)

    # The late one is dropped after the last message: nothing posts to it, the janitor finds it.
    dev.drop(dropped_late.connection_id)
    time.sleep(IDLE_SECONDS + 0.5)
    for member in live:  # the live ones are active; only the dropped ones are idle
        mark = len(member.frames)
        member.send(action="ping")
        assert member.wait_for(lambda f: f.get("type") == "pong", start=mark) is not None
    janitor = dev.janitor()
    wait_quiet(dev)
    state = dev.state()
    assert not lost & state.connection_ids(), janitor
    assert {m.connection_id for m in live} <= state.connection_ids(), (
        f"janitor pruned a live connection: {janitor}"
    )
    problems = check_all(state, acked, [ROOM])
    assert not problems, "\n".join(problems)

    for member in live:
        member.close()
    deadline = time.monotonic() + 30
    while dev.state().connections and time.monotonic() < deadline:
        time.sleep(0.2)
    state = dev.state()
    assert state.connections == [] and check_all(state, acked, [ROOM]) == []

    deliveries = sum(len(m.messages()) for m in members)
    unique = sum(len(m.seqs(ROOM)) for m in members)
    info = dev.call("GET", "/dev/info")[1]
    figures = {
        "messages acked": len(expected),
        "members (live / dropped)": f"{len(live)} / 2",
        "deliveries (incl. duplicates)": deliveries,
        "duplicates received": deliveries - unique,
        "missing before redrive": missing_total,
        "DLQ entries": len(dead),
        "redriven": redriven,
        "dropped connection pruned by fan-out (410)": pruned_by_fanout,
        "janitor": janitor,
        "function invocations": info.get("invocations"),
        **stats,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(f"\nchaos (runtime, K={MESSAGES}, members={MEMBERS}, faults={FAULTS}):")
    for key, value in figures.items():
        print(f"  {key}: {value}")
