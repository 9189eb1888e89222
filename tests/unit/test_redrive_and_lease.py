"""Auto-redrive (functions/chat/domain/redrive.py) and the fan-out's visibility lease (functions/chat/lease.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

from functions.chat.adapters.memory import InMemoryJobSink
from functions.chat.domain.redrive import Redriver, Verdict, redrive_delay_seconds
from functions.chat.jobs import FanoutJob
from functions.chat.lease import VisibilityLease
from functions.chat.settings import Settings


class RecordingQueue(InMemoryJobSink):
    """The in-memory job sink (functions/chat/adapters/memory.py), its queued jobs read back as jobs."""

    @property
    def enqueued(self) -> list[tuple[FanoutJob, int]]:
        return [(FanoutJob.from_json(body), delay) for body, delay in self.queued]


def redriver(queue: RecordingQueue, now: list[int], **settings: Any) -> Redriver:
    values = {"redrive_base_delay_seconds": 5, "redrive_max_age_seconds": 600, **settings}
    return Redriver(queue=queue, settings=Settings(**values), clock=lambda: now[0])


def dead(attempt: int = 5) -> FanoutJob:
    frame = {"type": "message", "room": "r", "seq": 1}
    return FanoutJob(room="r", frame=frame, connections=("c1",), attempt=attempt, reason="429 x 7")


def test_delays_grow_from_the_base_and_stop_at_the_sqs_limit() -> None:
    assert [redrive_delay_seconds(n, 5) for n in range(9)] == [5, 10, 20, 40, 80, 160, 320, 640, 900]
    assert redrive_delay_seconds(50, 5) == 900


def test_a_dead_letter_goes_back_with_fresh_attempts_and_a_growing_delay() -> None:
    queue, now = RecordingQueue(), [1_000_000]
    verdict, _ = redriver(queue, now).redrive(dead().to_json(), sent_timestamp_ms=990_000)
    assert verdict is Verdict.REDRIVEN
    [(job, delay)] = queue.enqueued
    assert (job.attempt, job.redrives, job.dead_since, delay) == (0, 1, 990_000, 5)
    assert job.connections == ("c1",) and job.frame == dead().frame
    # It dead-letters again: the next redrive waits twice as long and keeps the first deadSince.
    again = FanoutJob.from_json(job.to_json())
    redriver(queue, now).redrive(again.to_json(), sent_timestamp_ms=now[0])
    assert (queue.enqueued[1][0].redrives, queue.enqueued[1][0].dead_since, queue.enqueued[1][1]) == (
        2,
        990_000,
        10,
    )
    assert queue.parked == []


def test_what_outlives_the_max_age_is_parked_with_its_reason_never_redriven_again() -> None:
    queue, now = RecordingQueue(), [1_000_000]
    job = FanoutJob.from_json(dead().to_json())
    old = FanoutJob(**{**job.__dict__, "redrives": 7, "dead_since": now[0] - 601_000})
    verdict, reason = redriver(queue, now).redrive(old.to_json(), sent_timestamp_ms=now[0])
    assert verdict is Verdict.PARKED and queue.enqueued == []
    [parked] = queue.parked
    assert "outlived auto-redrive" in reason and "429 x 7" in str(FanoutJob.from_json(parked).reason)


def test_a_poison_record_is_parked_at_once_and_never_loops() -> None:
    queue, now = RecordingQueue(), [1_000_000]
    verdict, reason = redriver(queue, now).redrive("{not a job", sent_timestamp_ms=now[0])
    assert verdict is Verdict.PARKED and queue.parked == ["{not a job"] and queue.enqueued == []
    assert "poison" in reason


def test_the_lease_renews_unfinished_records_until_the_block_ends() -> None:
    renewed: list[tuple[list[str], int]] = []
    pending = ["h1", "h2"]
    lease = VisibilityLease(lambda handles, seconds: renewed.append((list(handles), seconds)), 1)
    with lease.held(lambda: list(pending)):
        time.sleep(lease.renew_every_seconds * 2.5)
        pending.remove("h1")
        time.sleep(lease.renew_every_seconds * 1.5)
    count = len(renewed)
    time.sleep(lease.renew_every_seconds * 2)
    assert len(renewed) == count >= 2  # nothing after the block
    assert renewed[0] == (["h1", "h2"], 1) and renewed[-1] == (["h2"], 1)
    assert not [t for t in threading.enumerate() if t.name == "fanout-lease"]


def test_a_failed_renewal_is_only_logged() -> None:
    def refuse(handles: list[str], seconds: int) -> None:
        raise RuntimeError("SQS says no")

    with VisibilityLease(refuse, 1).held(lambda: ["h"]):
        time.sleep(0.7)
