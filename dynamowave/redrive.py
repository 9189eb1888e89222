"""Moves dead-lettered fan-out jobs back to the fan-out queue (`dynamowave redrive`).

Each job is re-sent with its attempt count reset (and its reason cleared), and deleted from the
dead-letter queue only once SQS has accepted the copy: a job that could not be re-sent stays in
the DLQ (it becomes visible again after the receive's visibility timeout). A message that is not
a fan-out job (a poison record moved there by maxReceiveCount) is left where it is and counted.

Works against AWS and against the local runtime's embedded moto alike (plain SQS calls).
SQS's own StartMessageMoveTask (`native_move`) is faster for a large DLQ but moves bodies as they
are, attempt counts included, and moto does not implement it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from functions.chat.jobs import FanoutJob, InvalidJob

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

BATCH: Final = 10  # ReceiveMessage / SendMessageBatch / DeleteMessageBatch limit
# Received messages stay hidden this long: a failed one is not seen twice in one run.
DEFAULT_VISIBILITY_SECONDS: Final = 120


@dataclass
class RedriveResult:
    moved: int = 0  # re-sent and deleted from the DLQ
    failed: int = 0  # not re-sent: still in the DLQ
    not_deleted: int = 0  # re-sent, but the DLQ delete failed: it may be redriven twice
    invalid: int = 0  # not a fan-out job: left in the DLQ
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.not_deleted == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "failed": self.failed,
            "not_deleted": self.not_deleted,
            "invalid": self.invalid,
            "errors": self.errors,
        }


def reset_job(body: str) -> str | None:
    """The job with a fresh attempt count and no reason; None if `body` is not a fan-out job."""
    try:
        job = FanoutJob.from_json(body)
    except InvalidJob:
        return None
    # A fresh start for auto-redrive too: a human decided the cause is gone.
    return replace(job, attempt=0, reason=None, redrives=0, dead_since=None).to_json()


class Redriver:
    def __init__(
        self,
        sqs: SQSClient,
        *,
        dlq_url: str,
        queue_url: str,
        wait_seconds: int = 1,
        visibility_seconds: int = DEFAULT_VISIBILITY_SECONDS,
        progress: Callable[[RedriveResult], None] | None = None,
    ) -> None:
        self._sqs = sqs
        self._dlq_url = dlq_url
        self._queue_url = queue_url
        self._wait_seconds = wait_seconds
        self._visibility_seconds = visibility_seconds
        self._progress = progress

    def run(self, limit: int | None = None) -> RedriveResult:
        """Until the DLQ has nothing visible left (or `limit` messages were handled)."""
        result = RedriveResult()
        while limit is None or _handled(result) < limit:
            want = BATCH if limit is None else min(BATCH, limit - _handled(result))
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self._dlq_url,
                    MaxNumberOfMessages=want,
                    WaitTimeSeconds=self._wait_seconds,
                    VisibilityTimeout=self._visibility_seconds,
                ).get("Messages", [])
            except (ClientError, BotoCoreError) as error:
                result.errors.append(f"receive from the DLQ failed: {error}")
                break
            if not messages:
                break
            if not self._move(messages, result):
                break  # the fan-out queue refuses everything: stop rather than churn the DLQ
            if self._progress is not None:
                self._progress(result)
        return result

    def _move(self, messages: list[Any], result: RedriveResult) -> bool:
        """Re-send one received batch; returns False when the whole send failed."""
        entries: list[Any] = []
        handles: dict[str, str] = {}
        for index, message in enumerate(messages):
            body = reset_job(message["Body"])
            if body is None:
                result.invalid += 1
                continue
            entries.append({"Id": str(index), "MessageBody": body})
            handles[str(index)] = message["ReceiptHandle"]
        if not entries:
            return True
        try:
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as error:
            result.failed += len(entries)
            result.errors.append(f"send to the fan-out queue failed: {error}")
            return False
        for failure in response.get("Failed", []):
            result.failed += 1
            result.errors.append(f"send refused: {failure.get('Code')} {failure.get('Message', '')}".strip())
        sent = [entry["Id"] for entry in response.get("Successful", [])]
        if not sent:
            return True
        deletions: list[Any] = [{"Id": key, "ReceiptHandle": handles[key]} for key in sent]
        try:
            deleted = self._sqs.delete_message_batch(QueueUrl=self._dlq_url, Entries=deletions)
        except (ClientError, BotoCoreError) as error:
            result.not_deleted += len(sent)
            result.errors.append(f"the DLQ refused the removal of re-sent jobs: {error}")
            return True
        result.not_deleted += len(deleted.get("Failed", []))
        result.moved += len(deleted.get("Successful", []))
        return True


def _handled(result: RedriveResult) -> int:
    return result.moved + result.failed + result.not_deleted + result.invalid


def queue_arn(sqs: SQSClient, queue_url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def native_move(sqs: SQSClient, *, dlq_url: str, queue_url: str, max_per_second: int | None = None) -> str:
    """Starts SQS's own message move task (AWS only) and returns its task handle."""
    extra: dict[str, Any] = {"MaxNumberOfMessagesPerSecond": max_per_second} if max_per_second else {}
    response = sqs.start_message_move_task(
        SourceArn=queue_arn(sqs, dlq_url), DestinationArn=queue_arn(sqs, queue_url), **extra
    )
    return str(response["TaskHandle"])
