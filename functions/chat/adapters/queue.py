"""SQS adapter: puts fan-out jobs on the queue (ten per SendMessageBatch) and on the DLQ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from functions.chat.domain.ports import MAX_DELAY_SECONDS
from functions.chat.jobs import FanoutJob
from functions.chat.retry import QUEUE_BACKOFF

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

BATCH_SIZE: Final = 10  # SendMessageBatch's limit
BATCH_RETRIES: Final = 4


class EnqueueFailed(Exception):
    """Some jobs could not be put on the queue after retries (the caller fails its unit of work)."""


class JobQueue:
    def __init__(self, client: SQSClient, queue_url: str, dlq_url: str, parked_url: str = "") -> None:
        self._sqs = client
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._parked_url = parked_url

    def enqueue(self, jobs: Sequence[FanoutJob], *, delay_seconds: int = 0) -> int:
        """Send every job, ten per request; entries SQS refuses are retried, then raise.

        `delay_seconds` (0..900) keeps the jobs invisible that long: the fan-out's backoff
        between attempts of a retry job.
        """
        return self._send(self._queue_url, [job.to_json() for job in jobs], delay_seconds=delay_seconds)

    def extend_visibility(self, receipt_handles: list[str], seconds: int) -> None:
        """Keep received fan-out records invisible `seconds` longer (the fan-out's lease)."""
        for start in range(0, len(receipt_handles), BATCH_SIZE):
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for i, handle in enumerate(receipt_handles[start : start + BATCH_SIZE])
            ]
            self._sqs.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=entries)

    def dead_letter(self, jobs: Sequence[FanoutJob]) -> int:
        return self._send(self._dlq_url, [job.to_json() for job in jobs])

    def park(self, bodies: Sequence[str]) -> int:
        """Dead letters the redriver gives up on (too old, or not a job): for a human to see."""
        return self._send(self._parked_url, list(bodies))

    def _send(self, queue_url: str, bodies: list[str], *, delay_seconds: int = 0) -> int:
        delay: dict[str, Any] = (
            {"DelaySeconds": max(0, min(MAX_DELAY_SECONDS, delay_seconds))} if delay_seconds else {}
        )
        requests = 0
        for start in range(0, len(bodies), BATCH_SIZE):
            pending = {str(i): body for i, body in enumerate(bodies[start : start + BATCH_SIZE])}
            for attempt in range(BATCH_RETRIES + 1):
                entries: list[Any] = [
                    {"Id": key, "MessageBody": body, **delay} for key, body in pending.items()
                ]
                response = self._sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
                requests += 1
                failed = response.get("Failed") or []
                pending = {f["Id"]: pending[f["Id"]] for f in failed if f["Id"] in pending}
                if not pending:
                    break
                if attempt < BATCH_RETRIES:
                    QUEUE_BACKOFF.sleep(attempt)
            if pending:
                raise EnqueueFailed(f"{len(pending)} job(s) not accepted by {queue_url}")
        return requests
