"""Flooding, against a real `dynamowave serve`: the limits hold and a flooder hurts only itself.

- per-connection rate limit (RATE_LIMIT_PER_SECOND / BURST): the excess gets `rate_limited`,
  the connection stays open;
- stage throttling (API Gateway's requests/s + burst): frames get "Too Many Requests", and
  handshakes get HTTP 429 with no record written;
- a flooding connection does not stop delivery to others: a victim pair exchanges messages with
  and without a flooder next to them; every message arrives both times. The delivery latency
  (p50/p99) of both runs is printed, not asserted (timing depends on the machine; locally the
  flooder's frames still cost CPU in the same process as everything else).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.abuse.live import Client, DevApi
from tests.clients.local_runtime import runtime_available, start_local_runtime

pytestmark = pytest.mark.skipif(
    runtime_available() is not None, reason=f"runtime missing: {runtime_available()}"
)

RATE, BURST = 5, 10
# Twice the per-connection limit by default (DYNAMOWAVE_FLOOD_RATE to change): refused half the
# time, and what one runtime process (one GIL, moto serialized) absorbs beside the victims on a
# shared 2-core box. docs/operations.md records a run at 15 frames/s.
FLOOD_RATE = float(os.environ.get("DYNAMOWAVE_FLOOD_RATE", "10"))
VICTIM_MESSAGES = 10


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevApi]:
    runtime = start_local_runtime(
        Path(tmp_path_factory.mktemp("abuse-flood")),
        *("--rate-limit", str(RATE), "--rate-burst", str(BURST), "--janitor-interval", "0", "--quiet"),
    )
    try:
        yield DevApi(runtime)
    finally:
        runtime.stop()


def test_per_connection_rate_limit(dev: DevApi) -> None:
    flooder = Client(dev, "flooder-1")
    started = time.monotonic()
    for _ in range(60):
        flooder.send(action="ping")
    assert flooder.wait_for(lambda f: False, timeout=0) is None
    deadline = time.monotonic() + 30
    while len(flooder.frames) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    kinds = [f.get("code", f.get("type")) for _, f in flooder.frames]
    assert len(kinds) == 60 and set(kinds) <= {"pong", "rate_limited"}, kinds
    assert kinds.count("rate_limited") >= 1
    assert kinds.count("pong") <= BURST + int(elapsed * RATE) + 1, (kinds.count("pong"), elapsed)
    time.sleep(1.5)  # tokens refill: the connection is usable again
    mark = len(flooder.frames)
    flooder.send(action="ping")
    assert flooder.wait_for(lambda f: f.get("type") == "pong", start=mark) is not None
    flooder.close()


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "nope"},  # unknown_action
        {"action": "join", "room": "bad room"},  # bad_request
        {"action": "history", "room": "never-joined"},  # not_member
        {"action": "ping", "user": "mallory"},  # forbidden
    ],
    ids=["unknown-action", "bad-request", "not-member", "forbidden"],
)
def test_invalid_frames_are_rate_limited_too(dev: DevApi, frame: dict[str, Any]) -> None:
    """Before: 300 bad frames were answered in 0.2 s, none of them `rate_limited`."""
    flooder = Client(dev, "flooder-bad")
    started = time.monotonic()
    for _ in range(40):
        flooder.send(**frame)
    deadline = time.monotonic() + 30
    while len(flooder.frames) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    codes = [f.get("code") for _, f in flooder.frames]
    assert len(codes) == 40, codes
    refused_otherwise = len(codes) - codes.count("rate_limited")
    assert codes.count("rate_limited") >= 1, codes
    assert refused_otherwise <= BURST + int(elapsed * RATE) + 1, (codes, elapsed)
    flooder.close()


def send_until_acked(sender: Client, room: str, text: str, client_msg_id: str) -> None:
    """A careful client: resend the same clientMsgId after an error or a silence."""
    for _ in range(10):
        mark = len(sender.frames)
        sender.send(action="sendmessage", room=room, text=text, clientMsgId=client_msg_id)
        reply = sender.wait_for(
            lambda f: f.get("clientMsgId") == client_msg_id or ("message" in f and "type" not in f),
            timeout=20,
            start=mark,
        )
        if reply is not None and reply.get("type") == "ack":
            return
        time.sleep(0.3)
    raise AssertionError(f"{client_msg_id} was never acked: {sender.frames[-5:]}")


def exchange(sender: Client, receiver: Client, room: str, count: int, tag: str) -> list[float]:
    """`count` messages sender -> receiver, paced under the rate limit; per-message latency (ms)."""
    sent: dict[str, float] = {}
    for index in range(count):
        client_msg_id = f"{tag}-{index}"
        sent[client_msg_id] = time.monotonic()
        send_until_acked(sender, room, f"{tag} {index}", client_msg_id)
        time.sleep(max(0.0, sent[client_msg_id] + 1.0 / (RATE - 1) - time.monotonic()))
    for client_msg_id in sent:

        def delivered(frame: dict[str, Any], wanted: str = client_msg_id) -> bool:
            return frame.get("type") == "message" and frame["clientMsgId"] == wanted

        assert receiver.wait_for(delivered, timeout=120), f"{client_msg_id} never reached the receiver"
    arrival = {f["clientMsgId"]: t for t, f in receiver.messages()}
    return [(arrival[c] - t) * 1000 for c, t in sent.items()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def test_a_flooder_does_not_stop_delivery_to_others(dev: DevApi) -> None:
    alice, bob = Client(dev, "victim-a"), Client(dev, "victim-b")
    alice.join("victims")
    bob.join("victims")
    quiet = exchange(alice, bob, "victims", VICTIM_MESSAGES, "quiet")

    flooder = Client(dev, "flooder-2")
    flooder.join("flood")
    stop, sent = threading.Event(), [0]

    def flood() -> None:
        while not stop.is_set():
            flooder.send(action="sendmessage", room="flood", text="spam", clientMsgId=f"f{sent[0]}")
            sent[0] += 1
            time.sleep(1 / FLOOD_RATE)

    thread = threading.Thread(target=flood, daemon=True)
    flood_started = time.monotonic()
    thread.start()
    try:
        flooded = exchange(alice, bob, "victims", VICTIM_MESSAGES, "flooded")
    finally:
        stop.set()
        thread.join()
    flood_seconds = time.monotonic() - flood_started
    time.sleep(2.0)  # the flooder's last frames are answered
    codes = [f.get("code") for _, f in flooder.frames if f.get("type") == "error"]
    assert codes.count("rate_limited") > 0, codes[:10]
    # The limiter holds by arrival time: the flooder stores at most its burst plus the refill.
    acks = sum(1 for _, f in flooder.frames if f.get("type") == "ack")
    assert acks <= BURST + int(flood_seconds * RATE) + 1, (acks, sent[0], flood_seconds)
    # Reported, not asserted: under heavy machine load some flood sends still got `internal`
    # (seen once: 21 in a full `make test`); which error it was is the next thing to find.
    internal = [str(f.get("message")) for _, f in flooder.frames if f.get("code") == "internal"]
    print(
        f"\nvictim delivery latency, {VICTIM_MESSAGES} messages each: quiet p50 {statistics.median(quiet):.0f} ms, "
        f"p99 {percentile(quiet, 0.99):.0f} ms | with a flooder ({sent[0]} frames, "
        f"{codes.count('rate_limited')} rate_limited, {acks} stored in {flood_seconds:.0f} s) "
        f"p50 {statistics.median(flooded):.0f} ms, p99 {percentile(flooded, 0.99):.0f} ms "
        f"({percentile(flooded, 0.99) / max(1.0, percentile(quiet, 0.99)):.1f}x the quiet p99); "
        f"flooder's internal errors: {len(internal)} {sorted(set(internal))[:3]}"
    )
    for client in (alice, bob, flooder):
        client.close()


def test_stage_throttling(tmp_path: Path) -> None:
    runtime = start_local_runtime(
        tmp_path, "--throttle-rate", "10", "--throttle-burst", "10", "--janitor-interval", "0", "--quiet"
    )
    try:
        dev = DevApi(runtime)
        client = Client(dev, "loud")
        for _ in range(40):
            client.send(action="ping")
        deadline = time.monotonic() + 30
        while len(client.frames) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        throttled = [f for _, f in client.frames if f.get("message") == "Too Many Requests"]
        assert throttled, client.frames[:5]
        token = dev.call("GET", "/dev/token?user=late")[1]["token"]

        def handshake(_: int) -> int:
            try:
                with connect(runtime.socket_url(token), open_timeout=30):
                    return 101
            except InvalidStatus as refused:
                return int(refused.response.status_code)

        with ThreadPoolExecutor(max_workers=20) as pool:  # 20 at once against a bucket of 10
            statuses = list(pool.map(handshake, range(20)))
        assert 429 in statuses, statuses
        assert set(statuses) <= {101, 429}
        time.sleep(1.0)
        assert {c["userId"] for c in dev.state().connections} <= {"loud", "late"}
        print(
            f"\nstage throttle 10 rps: {len(throttled)}/40 frames throttled, handshakes {statuses.count(429)}/20 got 429"
        )
        client.close()
    finally:
        runtime.stop()
