"""Fan-out: one job's frame posted to each of its recipients (docs/fanout.md).

No boto3 and no Lambda event shapes here: the fanout handler turns SQS records into calls on
`Fanout` (built by deps), which works over the memberships, the job sink and the Management API
ports. Delivery is at least once. A job's record is only deleted from SQS after every
recipient was posted, pruned (410), skipped (403/413) or handed to a new job (still failing);
any error before that fails the record and SQS delivers the whole job again. A recipient may get
a frame twice (clients de-duplicate by room and seq); none is skipped.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from functions.chat import protocol
from functions.chat.domain.deadline import Deadline
from functions.chat.domain.ports import (
    MAX_DELAY_SECONDS,
    Gone,
    JobSink,
    ManagementApi,
    Member,
    PostError,
    Pruner,
    Refused,
    ShardReader,
)
from functions.chat.jobs import FanoutJob
from functions.chat.retry import Backoff
from functions.chat.settings import Settings

logger = logging.getLogger(__name__)

Sleeper = Callable[[float], None]
DEADLINE_REASON: Final = "deadline: the invocation ran out of time before this recipient was tried"


def retry_delay_seconds(attempt: int, base_seconds: int) -> int:
    """SQS DelaySeconds for a retry job of `attempt` (1, 2, ...): base * 2**(attempt - 1)."""
    if base_seconds <= 0 or attempt <= 0:
        return 0
    return int(min(MAX_DELAY_SECONDS, base_seconds * 2 ** min(attempt - 1, 10)))


class PostOutcome(StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"  # 410: pruned, never retried
    REFUSED = "refused"  # 403 / 413 / other 4xx: logged and skipped
    FAILED = "failed"  # still throttled or failing after the retries the deadline allowed
    UNTRIED = "untried"  # the deadline passed before the first post


@dataclass(frozen=True)
class PostResult:
    connection_id: str
    outcome: PostOutcome
    retries: int = 0
    detail: str = ""


@dataclass
class DeliveryReport:
    """What one job did, for the handler's logs and metrics."""

    recipients: int = 0
    delivered: int = 0
    gone: int = 0
    refused: int = 0
    retries: int = 0  # posts repeated after a 429 / 5xx
    requeued: int = 0  # recipients put in a retry job
    dead_lettered: int = 0  # recipients whose job went to the DLQ
    retry_attempt: int | None = None
    reason: str | None = None
    refusals: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Fanout:
    """Posts a job's frame to each recipient over a bounded pool sharing one Management API client."""

    def __init__(
        self,
        *,
        store: ShardReader,
        queue: JobSink,
        api: ManagementApi,
        prune: Pruner,
        settings: Settings,
        executor: Executor,
        sleep: Sleeper = time.sleep,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._store = store
        self._queue = queue
        self._api = api
        self._prune = prune
        self._settings = settings
        self._executor = executor
        self._sleep = sleep
        self._draw = draw

    def deliver(self, job: FanoutJob, deadline: Deadline) -> DeliveryReport:
        """Deliver one job. Raises (so its SQS record fails and is redelivered) when DynamoDB or
        SQS fail; Management API failures are handled per recipient and never raise."""
        return self.deliver_together([job], deadline)[0]

    def deliver_together(self, jobs: Sequence[FanoutJob], deadline: Deadline) -> list[DeliveryReport]:
        """Deliver jobs for one recipient set (one room's shard, or one job alone), coalesced.

        The shard is read once. A member that opted in to coalescing (`Member.batch`) gets the
        jobs' frames in as few `batch` posts as fit 32 KB each (protocol.coalesce); every other
        recipient gets one post per frame, as it always did. Each job's report and retry job
        cover its own frame: a failed batch post fails every job it carried for that member.
        Raises if reading the shard or a prune fails: every job of the group is redelivered.
        """
        members = self._members(jobs[0])
        encoded = [protocol.encode(job.frame).encode("utf-8") for job in jobs]
        wanted = [set(self._recipients(job, members)) for job in jobs]
        # One post per (member, body); `carried[k]` lists the jobs post k delivers a frame of.
        posts: list[tuple[str, bytes]] = []
        carried: list[list[int]] = []
        for member in members.values():
            mine = [index for index, recipients in enumerate(wanted) if member.connection_id in recipients]
            chunks = (
                protocol.coalesce([encoded[i] for i in mine])
                if member.batch and len(mine) > 1
                else [(encoded[i], [position]) for position, i in enumerate(mine)]
            )
            for body, positions in chunks:
                posts.append((member.connection_id, body))
                carried.append([mine[p] for p in positions])
        correlation = jobs[0].correlation_id
        futures: list[Future[PostResult]] = [
            self._executor.submit(self._post, connection_id, body, deadline, correlation)
            for connection_id, body in posts
        ]
        results, error = _gather(futures)
        if error is not None:
            raise error  # a prune failed (DynamoDB/SQS): the whole group is redelivered
        per_job: list[list[PostResult]] = [[] for _ in jobs]
        for result, indexes in zip(results, carried, strict=True):
            for index in indexes:
                per_job[index].append(result)
        reports: list[DeliveryReport] = []
        for job, job_results in zip(jobs, per_job, strict=True):
            report = _summarise(job_results)
            self._requeue(job, job_results, report)
            reports.append(report)
        return reports

    def recipients(self, job: FanoutJob) -> list[str]:
        """The shard's members (paginated, consistent Query) or the job's explicit list, minus
        `exclude`, each once."""
        return self._recipients(job, self._members(job))

    def _members(self, job: FanoutJob) -> dict[str, Member]:
        if job.connections is not None:
            # A retry or a user-addressed job: one frame per post (its list carries no opt-in).
            return {c: Member(c, "") for c in job.connections}
        assert job.shard is not None
        return {m.connection_id: m for m in self._store.shard_members(job.room, job.shard)}

    @staticmethod
    def _recipients(job: FanoutJob, members: dict[str, Member]) -> list[str]:
        return [c for c in members if c != job.exclude]

    def _post(self, connection_id: str, data: bytes, deadline: Deadline, correlation_id: str) -> PostResult:
        settings = self._settings
        retries = 0
        if deadline.expired():
            return PostResult(connection_id, PostOutcome.UNTRIED, detail=DEADLINE_REASON)
        while True:
            try:
                self._api.post(connection_id, data)
                return PostResult(connection_id, PostOutcome.DELIVERED, retries)
            except Gone:
                # The connection is gone for good: its records go, with presence `leave`s.
                self._prune(connection_id, correlation_id)
                return PostResult(connection_id, PostOutcome.GONE, retries)
            except Refused as refused:
                return PostResult(connection_id, PostOutcome.REFUSED, retries, refused.detail)
            except PostError as error:  # Throttled or Transient: back off and try again
                if retries >= settings.post_max_retries:
                    return PostResult(connection_id, PostOutcome.FAILED, retries, error.detail)
                pause = Backoff(settings.post_backoff_base_ms, settings.post_backoff_cap_ms).delay_seconds(
                    retries, self._draw
                )
                if not deadline.allows_sleep(pause):
                    return PostResult(
                        connection_id, PostOutcome.FAILED, retries, f"{error.detail} (deadline)"
                    )
                self._sleep(pause)
                retries += 1

    def _requeue(self, job: FanoutJob, results: list[PostResult], report: DeliveryReport) -> None:
        """One new job for the recipients still failing; past the attempt limit, the DLQ."""
        failed = [r for r in results if r.outcome is PostOutcome.FAILED]
        untried = [r for r in results if r.outcome is PostOutcome.UNTRIED]
        if not failed and not untried:
            return
        connections = [r.connection_id for r in failed + untried]
        if not failed:
            # Nobody was tried: no attempt is used up, the job just continues in a new invocation.
            retry = replace(job, shard=None, connections=tuple(connections), reason=DEADLINE_REASON)
            self._queue.enqueue([retry])
            report.requeued, report.retry_attempt, report.reason = (
                len(connections),
                retry.attempt,
                retry.reason,
            )
            return
        details = Counter(r.detail for r in failed).most_common(1)[0][0]
        reason = f"{len(failed)} recipient(s) still failing after attempt {job.attempt}: {details}"
        retry = job.retry(connections, reason)
        report.reason = reason
        if retry.attempt > self._settings.fanout_max_attempts:
            self._queue.dead_letter([retry.dead_lettered(reason)])
            report.dead_lettered = len(connections)
            return
        self._queue.enqueue(
            [retry],
            delay_seconds=retry_delay_seconds(retry.attempt, self._settings.fanout_retry_delay_seconds),
        )
        report.requeued, report.retry_attempt = len(connections), retry.attempt


def _gather(futures: list[Future[PostResult]]) -> tuple[list[PostResult], BaseException | None]:
    """Every result, waiting for all of them even when one raised (no post outlives its job)."""
    results: list[PostResult] = []
    first_error: BaseException | None = None
    for future in futures:
        try:
            results.append(future.result())
        except Exception as error:
            first_error = first_error or error
    return results, first_error


def _summarise(results: list[PostResult]) -> DeliveryReport:
    counts = Counter(r.outcome for r in results)
    return DeliveryReport(
        recipients=len(results),
        delivered=counts[PostOutcome.DELIVERED],
        gone=counts[PostOutcome.GONE],
        refused=counts[PostOutcome.REFUSED],
        retries=sum(r.retries for r in results),
        refusals=[f"{r.connection_id}: {r.detail}" for r in results if r.outcome is PostOutcome.REFUSED],
    )
