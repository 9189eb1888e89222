"""In-memory implementations of the domain's ports (functions/chat/domain/ports.py), for fast tests of
domain rules with no AWS. Each passes the same contract suite as the AWS adapter it stands for
(tests/contract/)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import ceil

from functions.chat.adapters.queue import BATCH_SIZE
from functions.chat.domain.ports import MAX_DELAY_SECONDS
from functions.chat.jobs import FanoutJob


@dataclass
class InMemoryJobSink:
    """`JobSink` in lists: the bodies as SQS would hold them, with each job's delay."""

    queued: list[tuple[str, int]] = field(default_factory=list)  # (body, delay seconds)
    dead: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)

    def enqueue(self, jobs: Sequence[FanoutJob], *, delay_seconds: int = 0) -> int:
        delay = max(0, min(MAX_DELAY_SECONDS, delay_seconds))
        self.queued.extend((job.to_json(), delay) for job in jobs)
        return ceil(len(jobs) / BATCH_SIZE)

    def dead_letter(self, jobs: Sequence[FanoutJob]) -> int:
        self.dead.extend(job.to_json() for job in jobs)
        return ceil(len(jobs) / BATCH_SIZE)

    def park(self, bodies: Sequence[str]) -> int:
        self.parked.extend(bodies)
        return ceil(len(bodies) / BATCH_SIZE)
