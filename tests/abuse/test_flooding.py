"""Flooding, against a real `dynamowave serve`: the limits hold and a flooder hurts only itself.

- per-connection rate limit (RATE_LIMIT_PER_SECOND / BURST): the excess gets `rate_limited`,
  the connection stays open;
- stage throttling (API Gateway's requests/s + burst): frames get "Too Many Requests", and
  handshakes get HTTP 429 with no record written;
- a flooding connection (4x its limit) does not move a bystander pair's delivery p99 past twice
  its quiet p99 (windows with and without the flood by turns), stores no more than its limit
  allows, and gets no `internal` (both p99s and the counts are printed).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
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
# Four times the per-connection limit by default (DYNAMOWAVE_FLOOD_RATE to change): three
# frames in four refused, the rest stored in the flooder's own room.
FLOOD_RATE = float(os.environ.get("DYNAMOWAVE_FLOOD_RATE", "20"))
# The bystanders' windows: quiet and flooded by turns, so that the machine's own load (other
# tests, other processes) falls on both alike. DYNAMOWAVE_FLOOD_ROUNDS for a longer run.
ROUNDS = int(os.environ.get("DYNAMOWAVE_FLOOD_ROUNDS", "10"))
VICTIM_MESSAGES = 6  # per window


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


def flood_next_to_bystanders(dev: DevApi, rounds: int) -> tuple[float, float]:
    """A connection flooding at 4x its limit next to a bystander pair, in `rounds` quiet and
    flooded windows by turns: the flooder stores no more than its limit allows and none of its
    frames gets `internal` or any error but `rate_limited`. Returns the bystanders' (quiet,
    flooded) delivery p99, printed with both p50s.

    Before (issue 19): the flooder's allowed sends raced each other for its room's seq (every
    lost race a whole transaction in the one serialized moto), its refused frames each cost a
    write there too, and under load the retries fed the load: sends took seconds, 64 of them
    held every ingress slot, and everyone's delivery waited (p99 2.4x in one run, bystanders
    stalled for minutes in a longer one); its SDK calls timed out into `internal`.
    """
    # Rooms and clientMsgIds of their own per call: the module's tests share one server, and a
    # clientMsgId another call already sent is a resend (acked, not delivered again).
    run = uuid.uuid4().hex[:8]
    victims, flood_room = f"victims-{run}", f"flood-{run}"
    alice, bob = Client(dev, "victim-a"), Client(dev, "victim-b")
    alice.join(victims)
    bob.join(victims)
    flooder = Client(dev, "flooder-2")
    flooder.join(flood_room)
    exchange(alice, bob, victims, 3, f"{run}-warm")
    quiet: list[float] = []
    flooded: list[float] = []
    sent, allowed, flood_seconds = [0], 0, 0.0
    for round_ in range(rounds):
        quiet += exchange(alice, bob, victims, VICTIM_MESSAGES, f"{run}-quiet{round_}")
        stop = threading.Event()

        def flood(stop: threading.Event) -> None:
            while not stop.is_set():
                flooder.send(
                    action="sendmessage", room=flood_room, text="spam", clientMsgId=f"{run}-f{sent[0]}"
                )
                sent[0] += 1
                time.sleep(1 / FLOOD_RATE)

        thread = threading.Thread(target=flood, args=(stop,), daemon=True)
        started = time.monotonic()
        thread.start()
        try:
            flooded += exchange(alice, bob, victims, VICTIM_MESSAGES, f"{run}-flooded{round_}")
        finally:
            stop.set()
            thread.join()
        seconds = time.monotonic() - started
        flood_seconds += seconds
        # Each flood window starts with a full bucket (the quiet window refilled it).
        allowed += BURST + int(seconds * RATE) + 1
        # The flood is over when every frame of it is answered: then the next quiet window.
        deadline = time.monotonic() + 60
        while len([f for _, f in flooder.frames if f.get("type") in ("ack", "error")]) < sent[0]:
            assert time.monotonic() < deadline, f"{sent[0]} flood frames, {len(flooder.frames)} answers"
            time.sleep(0.1)
    codes = [f.get("code") for _, f in flooder.frames if f.get("type") == "error"]
    acks = sum(1 for _, f in flooder.frames if f.get("type") == "ack")
    internal = [str(f.get("message")) for _, f in flooder.frames if f.get("code") == "internal"]
    stored = len([m for m in dev.state().messages if m["room"] == flood_room])
    quiet_p99, flooded_p99 = percentile(quiet, 0.99), percentile(flooded, 0.99)
    print(
        f"\nbystander delivery, {len(quiet)} messages each way, quiet / next to a flooder: "
        f"p50 {statistics.median(quiet):.0f} / {statistics.median(flooded):.0f} ms, "
        f"p99 {quiet_p99:.0f} / {flooded_p99:.0f} ms ({flooded_p99 / quiet_p99:.2f}x); flooder: "
        f"{sent[0]} frames in {flood_seconds:.0f} s at {FLOOD_RATE:g}/s, {codes.count('rate_limited')} "
        f"rate_limited, {acks} acked, {stored} stored (limit allows {allowed}), {len(internal)} internal"
    )
    assert codes.count("rate_limited") > 0, codes[:10]
    # The limiter holds by arrival time: the flooder stores at most its bursts plus the refill.
    assert acks == stored <= allowed, (acks, stored, allowed)
    assert internal == [], sorted(set(internal))
    assert set(codes) == {"rate_limited"}, sorted(set(map(str, codes)))
    for client in (alice, bob, flooder):
        client.close()
    return quiet_p99, flooded_p99


def test_a_flooder_does_not_move_a_bystanders_p99_past_twice_quiet(dev: DevApi) -> None:
    """The issue's bound, over 10 rounds (60 bystander messages each way, quiet and flooded;
    `pytest tests/abuse/test_flooding.py -s` prints the figures). Before the flooder's AWS calls
    yielded to other connections' (dynamowave/local/fair_share.py) it failed on an idle machine
    (2.05x) and on a loaded one (2.4x-3.4x); docs/operations.md, "Measured: flooding"."""
    quiet_p99, flooded_p99 = flood_next_to_bystanders(dev, ROUNDS)
    assert flooded_p99 <= 2 * quiet_p99, (quiet_p99, flooded_p99)


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
