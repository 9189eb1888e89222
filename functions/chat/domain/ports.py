"""What the domain needs from the outside, as Protocols (docs/architecture.md, "Ports").

The domain (service, delivery, redrive, user delivery) is typed against these, not against an
adapter: `functions.chat.adapters.queue.JobQueue` (SQS) and `functions.chat.adapters.memory.InMemoryJobSink`
both satisfy `JobSink`, and tests/contract/test_job_sink.py runs one suite against both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from functions.chat.clock import Clock
from functions.chat.jobs import FanoutJob

__all__ = ["Clock", "JobSink", "Poster"]

# PostToConnection: (connection id, frame bytes); raises the management client's PostError kinds.
Poster = Callable[[str, bytes], None]


class JobSink(Protocol):
    """Where fan-out jobs go: the work queue, its dead-letter queue, the parked queue.

    Each call sends every job or raises (`functions.chat.adapters.queue.EnqueueFailed`), and returns the
    number of requests it took (ten jobs per request).
    """

    def enqueue(self, jobs: Sequence[FanoutJob], *, delay_seconds: int = 0) -> int: ...

    def dead_letter(self, jobs: Sequence[FanoutJob]) -> int: ...

    def park(self, bodies: Sequence[str]) -> int: ...
