"""Auto-redrive: dead-lettered fan-out jobs go back on the queue by themselves, with growing delays.

The fan-out queue's DLQ is the redriver function's event source (docs/fanout.md, "Auto-redrive").
Each dead letter is either

* **redriven**: back on the fan-out queue with its attempts reset, ``redrives`` + 1, delayed
  ``REDRIVE_BASE_DELAY_SECONDS * 2**redrives`` seconds (at most SQS's 900 s), so a transient
  fault (a throttled account, a 5xx burst, crashing invocations) heals without a human; or
* **parked**: moved to the parked queue, when the job first reached the DLQ more than
  ``REDRIVE_MAX_AGE_SECONDS`` ago (the fault is not transient) or the body is not a job at all
  (a poison record is never redriven). Only the parked queue is alarmed.

A job's age counts from ``deadSince``, set at its first redrive from the SQS SentTimestamp of its
first dead letter (for a record SQS moved after maxReceiveCount: when it was first enqueued). So
no record loops forever: every redrive is at least one base delay later, and the age only grows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum

from functions.chat.domain.ports import MAX_DELAY_SECONDS, JobSink
from functions.chat.jobs import FanoutJob, InvalidJob
from functions.chat.settings import Settings

Clock = Callable[[], int]


class Verdict(StrEnum):
    REDRIVEN = "redriven"
    PARKED = "parked"


def redrive_delay_seconds(redrives: int, base_seconds: int) -> int:
    """SQS DelaySeconds of the (redrives + 1)-th redrive: base * 2**redrives, capped at 900."""
    return int(min(MAX_DELAY_SECONDS, base_seconds * 2 ** min(redrives, 10)))


class Redriver:
    def __init__(self, *, queue: JobSink, settings: Settings, clock: Clock) -> None:
        self._queue = queue
        self._settings = settings
        self._clock = clock

    def redrive(self, body: str, sent_timestamp_ms: int | None) -> tuple[Verdict, str]:
        """Redrive or park one dead letter; raises only if SQS refuses (the record then stays in
        the DLQ, whose own maxReceiveCount parks it in the end)."""
        now = self._clock()
        try:
            job = FanoutJob.from_json(body)
        except InvalidJob as invalid:
            self._queue.park([body])
            return Verdict.PARKED, f"poison record, never redriven: {invalid}"
        since = job.dead_since if job.dead_since is not None else (sent_timestamp_ms or now)
        age_seconds = max(0, now - since) // 1000
        if age_seconds > self._settings.redrive_max_age_seconds:
            reason = (
                f"outlived auto-redrive: dead-lettered {age_seconds} s ago, redriven {job.redrives} "
                f"time(s); last: {job.reason or 'unknown'}"
            )
            self._queue.park([replace(job, reason=reason, dead_since=since).to_json()])
            return Verdict.PARKED, reason
        delay = redrive_delay_seconds(job.redrives, self._settings.redrive_base_delay_seconds)
        again = replace(job, attempt=0, redrives=job.redrives + 1, dead_since=since)
        self._queue.enqueue([again], delay_seconds=delay)
        return Verdict.REDRIVEN, f"redrive {again.redrives} in {delay} s"
