"""Event sources: the SQS event source mapping of the fan-out function, and the janitor's schedule.

The SQS mapping does what Lambda's poller does: long-poll with several concurrent pollers,
invoke with up to ``batch_size`` records, delete what succeeded (everything but the
``batchItemFailures`` of a partial batch response; nothing if the invocation failed or timed
out) and leave the rest to reappear after the visibility timeout. The queue's redrive policy
moves a record to the dead-letter queue once it has been received ``maxReceiveCount`` times
(moto applies it on receive, as SQS does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dynamowave.local.faults import FaultInjector
from dynamowave.local.lambda_runner import Invocation, LambdaRunner

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger("dynamowave.events")


class InjectedCrash(Exception):
    """fanout_crash_rate: the invocation died part-way through its batch."""


@dataclass(frozen=True)
class SqsMapping:
    function: str
    queue_url: str
    queue_arn: str
    region: str
    batch_size: int = 10
    batching_window: float = 0.0
    pollers: int = 4
    wait_seconds: int = 1


def sqs_record(message: MessageTypeDef, *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the event Lambda builds from a ReceiveMessage result."""
    attributes = {key: value for key, value in message.get("Attributes", {}).items()}
    message_attributes: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        # Lambda's record uses camelCase keys where ReceiveMessage uses PascalCase.
        message_attributes[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": list(value.get("StringListValues", [])),
            "binaryListValues": list(value.get("BinaryListValues", [])),
            "dataType": value.get("DataType"),
        }
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(invocation: Invocation, records: list[dict[str, Any]]) -> set[str]:
    """Which records to leave on the queue: all of them if the invocation failed, else the
    ``batchItemFailures`` it reported (an unparseable response fails the whole batch, as on AWS)."""
    every = {record["messageId"] for record in records}
    if not invocation.ok:
        return every
    result = invocation.result
    if result is None:
        return set()
    if not isinstance(result, dict):
        return every
    failures = result.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return every
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in every:
            return every  # Lambda treats a malformed failure entry as a failed batch
        failed.add(identifier)
    return failed


class SqsEventSource:
    def __init__(
        self,
        mapping: SqsMapping,
        runner: LambdaRunner,
        faults: FaultInjector,
        sqs: SQSClient,
    ) -> None:
        self.mapping = mapping
        self._runner = runner
        self._faults = faults
        self._sqs = sqs
        # Long polls block a thread each: they get their own pool so they never starve handlers.
        self._io = ThreadPoolExecutor(max_workers=mapping.pollers + 4, thread_name_prefix="sqs-poller")
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.batches = 0

    def start(self) -> None:
        for index in range(self.mapping.pollers):
            self._tasks.append(asyncio.create_task(self._poll(), name=f"sqs-poller-{index}"))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._io.shutdown(wait=False, cancel_futures=True)

    async def _call(self, function: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, lambda: function(**kwargs))

    async def _receive(self, max_messages: int, wait_seconds: int) -> list[MessageTypeDef]:
        response = await self._call(
            self._sqs.receive_message,
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    async def _receive_batch(self) -> list[MessageTypeDef]:
        mapping = self.mapping
        messages = await self._receive(min(mapping.batch_size, 10), mapping.wait_seconds)
        if not messages or mapping.batching_window <= 0:
            return messages
        # MaximumBatchingWindowInSeconds: keep gathering until the batch is full or the window ends.
        deadline = time.monotonic() + mapping.batching_window
        while len(messages) < mapping.batch_size and time.monotonic() < deadline:
            more = await self._receive(min(mapping.batch_size - len(messages), 10), 0)
            if not more:
                await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
            messages.extend(more)
        return messages

    async def _poll(self) -> None:
        while not self._stopping:
            try:
                messages = await self._receive_batch()
                if messages:
                    await self._process(messages)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SQS poller for %s failed; retrying in 1 s", self.mapping.function)
                await asyncio.sleep(1.0)

    async def _process(self, messages: list[MessageTypeDef]) -> None:
        mapping = self.mapping
        records = [sqs_record(m, queue_arn=mapping.queue_arn, region=mapping.region) for m in messages]
        self.batches += 1
        crash_after = self._faults.fanout_crash_after(len(records))
        if crash_after is None:
            invocation = await self._runner.invoke(
                mapping.function, {"Records": records}, trigger=f"sqs batch of {len(records)}"
            )
        else:
            invocation = await self._crash(records, crash_after)
        failed = failed_message_ids(invocation, records)
        to_delete: list[dict[str, Any]] = []
        for record in records:
            if record["messageId"] in failed:
                continue
            first_receive = record["attributes"].get("ApproximateReceiveCount", "1") == "1"
            if first_receive and self._faults.duplicate_record():
                # Redelivered once more right away, same messageId, as SQS occasionally does.
                await self._call(
                    self._sqs.change_message_visibility,
                    QueueUrl=mapping.queue_url,
                    ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=0,
                )
                continue
            to_delete.append({"Id": str(len(to_delete)), "ReceiptHandle": record["receiptHandle"]})
        for start in range(0, len(to_delete), 10):
            await self._call(
                self._sqs.delete_message_batch,
                QueueUrl=mapping.queue_url,
                Entries=to_delete[start : start + 10],
            )

    async def _crash(self, records: list[dict[str, Any]], processed: int) -> Invocation:
        """The handler runs on the first ``processed`` records, then the invocation dies."""
        if processed:
            await self._runner.invoke(
                self.mapping.function,
                {"Records": records[:processed]},
                trigger=f"sqs crash after {processed}",
            )
        error = InjectedCrash(f"injected crash after {processed} of {len(records)} records")
        log.info(
            "%-10s %-22s injected crash (batch of %d left on the queue)",
            self.mapping.function,
            "sqs",
            len(records),
        )
        return Invocation(self.mapping.function, str(uuid.uuid4()), None, error, 0.0)


def scheduled_event(*, rule_name: str, region: str, account_id: str) -> dict[str, Any]:
    """The event EventBridge sends to a schedule's target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account_id}:rule/{rule_name}"],
        "detail": {},
    }


class Schedule:
    """rate(N seconds) for one function; invocations never overlap (the janitor is resumable)."""

    def __init__(
        self,
        runner: LambdaRunner,
        function: str,
        *,
        interval: float,
        rule_name: str,
        region: str,
        account_id: str,
    ) -> None:
        self._runner = runner
        self.function = function
        self.interval = interval
        self._rule_name = rule_name
        self._region = region
        self._account_id = account_id
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name=f"schedule-{self.function}")

    async def fire(self) -> Invocation:
        async with self._lock:
            event = scheduled_event(
                rule_name=self._rule_name, region=self._region, account_id=self._account_id
            )
            return await self._runner.invoke(self.function, event, trigger="schedule")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.fire()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("schedule for %s failed", self.function)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
