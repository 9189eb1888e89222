"""Chaos with the fan-out in worker processes (`dynamowave serve --fanout-workers 2`).

The same real runtime and clients as test_chaos_runtime.py, with the fan-out's invocations in
two worker processes (dynamowave/local/workers.py): PostToConnection answers 429 and 500 (from
the runtime's own Management API, decided on its loop), a dropped member answers 410 (pruned by
a worker's fan-out), invocations crash mid-batch, SQS duplicates records, and the test kills a
worker process with SIGKILL twice while messages flow (its invocations fail, their records
come back after the visibility timeout, a new worker takes its place). Asserted: every acked
message reaches every live member, each seq carrying its own text, so that after sorting by seq
a member holds exactly the acked seqs once each (duplicates on the wire are the at-least-once
contract, de-duplicated by seq); nothing is lost or parked; the tables hold no partial state;
the dead workers were replaced.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.abuse.live import Client, DevApi
from tests.chaos.invariants import Acked, check_all
from tests.chaos.test_chaos_runtime import faulted_runtime, first_arrivals, send_once, wait_quiet
from tests.clients.local_runtime import runtime_available, start_local_runtime

pytestmark = pytest.mark.skipif(
    runtime_available() is not None, reason=f"runtime missing: {runtime_available()}"
)

ROOM = "chaos"  # send_once and first_arrivals read this room
WORKERS = 2
MESSAGES = 24
KILLS_AT = (MESSAGES // 3, 2 * MESSAGES // 3)
FAULTS = {
    "post_to_connection": {"throttle_rate": 0.3, "error_rate": 0.15, "latency_ms": 2},
    "fanout_crash_rate": 0.2,
    "sqs_duplicate_rate": 0.2,
    "seed": 11,
}
DELIVERY_BOUND_SECONDS = 120


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevApi]:
    with faulted_runtime(
        Path(tmp_path_factory.mktemp("chaos-workers")),
        FAULTS,
        *("--fanout-workers", str(WORKERS), "--visibility-timeout", "4"),
        *("--env", "REDRIVE_BASE_DELAY_SECONDS=1", "--batch-size", "100", "--batching-window", "0.2"),
    ) as dev:
        yield dev


def workers(dev: DevApi) -> dict[str, Any]:
    info: dict[str, Any] = dev.call("GET", "/dev/info")[1]["fanout_workers"]
    return info


def texts_by_seq(client: Client) -> dict[int, set[str]]:
    seen: dict[int, set[str]] = {}
    for _, frame in client.messages():
        if frame.get("room") == ROOM:
            seen.setdefault(int(frame["seq"]), set()).add(str(frame["text"]))
    return seen


def test_worker_processes_deliver_everything_through_faults_and_kills(dev: DevApi) -> None:
    deadline = time.monotonic() + 60
    while len(workers(dev)["pids"]) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.2)
    first_pids = workers(dev)["pids"]
    assert len(first_pids) == WORKERS, workers(dev)

    members = [Client(dev, f"member{i}", batch=i % 2 == 0) for i in range(5)]
    for member in members:
        member.join(ROOM)
    live, dropped = members[:-1], members[-1]
    acked, problems, text_of = Acked(), list[str](), dict[int, str]()
    killed: list[int] = []
    for index in range(MESSAGES):
        if index == 4:
            dev.drop(dropped.connection_id)  # its posts answer 410 from now on
        sender = live[index % len(live)]
        _, ack = send_once(sender, f"message {index}", f"w{index}")
        text_of[int(ack["seq"])] = f"message {index}"
        problems += acked.record(sender.user, ROOM, str(ack["clientMsgId"]), str(ack["id"]), int(ack["seq"]))
        time.sleep(0.1)
        if index in KILLS_AT:  # past the batching window: its fan-out is likely in that worker now
            time.sleep(0.2)
            pid = workers(dev)["pids"][0]
            os.kill(pid, signal.SIGKILL)  # the sandbox dies with whatever it was doing
            killed.append(pid)
    assert not problems, problems

    expected = acked.seqs(ROOM)
    assert expected == set(text_of)
    deadline = time.monotonic() + DELIVERY_BOUND_SECONDS
    while time.monotonic() < deadline and not all(expected <= set(first_arrivals(m)) for m in live):
        time.sleep(0.5)
    for member in live:
        received = texts_by_seq(member)
        missing = expected - set(received)
        assert not missing, f"{member.user} never got {sorted(missing)}"
        assert sorted(received) == sorted(expected), f"{member.user} got seqs nobody was acked for"
        wrong = {seq: texts for seq, texts in received.items() if texts != {text_of[seq]}}
        assert not wrong, f"{member.user}: a seq carried another message's text: {wrong}"

    wait_quiet(dev)
    assert dev.queue_depth("fanout_parked_url") == 0, "a dead letter outlived auto-redrive"
    state = dev.state()
    assert dropped.connection_id not in state.connection_ids(), "the 410 was not pruned by a worker"
    problems = check_all(state, acked, [ROOM], frozenset({dropped.connection_id}))
    assert not problems, "\n".join(problems)

    after = workers(dev)
    assert len(after["pids"]) == WORKERS and not set(killed) & set(after["pids"]), after
    assert after["started"] == WORKERS + len(killed), after
    assert after["invocations"] > 0, after
    injected = dev.call("GET", "/dev/info")[1]["injected_faults"]
    assert injected["throttle"] and injected["error"] and injected["fanout_crash"], injected
    for member in live:
        member.close()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_the_workers_end_with_the_runtime(tmp_path: Path, stop: str) -> None:
    """A clean stop ends them; so does the runtime's death (their pipe closes): none is left."""
    runtime = start_local_runtime(tmp_path, "--fanout-workers", "2", "--janitor-interval", "0", "--quiet")
    try:
        dev = DevApi(runtime)
        deadline = time.monotonic() + 60
        while len(workers(dev)["pids"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = workers(dev)["pids"]
        assert len(pids) == 2
        if stop == "SIGTERM":
            assert runtime.stop() == 0
        else:
            runtime.process.kill()
            runtime.process.wait()
        deadline = time.monotonic() + 15
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if _running(pid)], "a worker outlived the runtime"
    finally:
        runtime.stop()
