"""Fan-out: the SQS consumer that posts each job's frame to its recipients (docs/fanout.md).

A thin adapter: SQS records in, `Fanout.deliver` per record, a partial batch response out
(ReportBatchItemFailures). A record fails, and SQS redelivers it alone, when its body is not a
job (after maxReceiveCount the queue moves it to the DLQ) or when DynamoDB or SQS failed.

A batch's records are delivered concurrently (the shard jobs of one message to a big room
arrive together, and one after another they would multiply its delivery time by the shard
count); records for the same room and shard are delivered together, coalesced for the members
who opted in (docs/fanout.md, "Coalesced delivery"). powertools' BatchProcessor still collects
each record's outcome.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat import deps
from functions.chat.domain.deadline import Deadline
from functions.chat.domain.fanout import DeliveryReport, Fanout
from functions.chat.jobs import FanoutJob, InvalidJob
from functions.chat.lease import VisibilityLease
from functions.chat.observability import lambda_entry, observability
from functions.chat.settings import get_settings

logger, tracer, metrics = observability("fanout")
MAX_SQS_BATCH = 10


@cache
def record_pool() -> ThreadPoolExecutor:
    """Runs a batch's groups of records side by side; separate from `post_pool`, whose tasks
    they wait on. A batch of more than 10 records (fanoutBatchSize) queues its groups here."""
    return ThreadPoolExecutor(max_workers=MAX_SQS_BATCH, thread_name_prefix="fanout-record")


@lambda_entry(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse | dict[str, Any]:
    started = time.perf_counter()
    settings = get_settings()
    fanout = deps.fanout(deps.management_endpoint())
    deadline = Deadline(context.get_remaining_time_in_millis, settings.fanout_deadline_safety_ms)

    raw_records = event.get("Records", [])
    records = [SQSRecord(raw) for raw in raw_records]
    outcomes = {
        record.message_id: future
        for group, future in start_groups(fanout, deadline, records)
        for record in group
    }

    def unfinished() -> list[str]:
        return [r["receiptHandle"] for r in raw_records if not outcomes[r["messageId"]].done()]

    def deliver(record: SQSRecord) -> None:
        outcomes[record.message_id].result()  # re-raises the record's own (or its group's) failure

    # A processor per invocation: it keeps per-batch state, and the local runtime runs several
    # invocations at once in one process. An all-failed batch is still reported item by item.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    lease = VisibilityLease(deps.job_queue().extend_visibility, settings.fanout_visibility_seconds)
    with lease.held(unfinished):
        response = process_partial_response(
            event=event, record_handler=deliver, processor=processor, context=context
        )
    metrics.add_metric(
        name="BatchLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
    )
    return response


def start_groups(
    fanout: Fanout, deadline: Deadline, records: list[SQSRecord]
) -> list[tuple[list[SQSRecord], Future[None]]]:
    """Parse the batch and start one delivery per recipient set, side by side.

    Jobs for the same room and shard are delivered together (coalesced for the members who
    opted in; the shard is read once); a job with an explicit connection list, and a poison
    record, stand alone. A group's failure fails each of its records.
    """
    groups: dict[tuple[str, str] | str, list[tuple[SQSRecord, FanoutJob | InvalidJob]]] = {}
    for record in records:
        try:
            job: FanoutJob | InvalidJob = FanoutJob.from_json(record.body)
        except InvalidJob as invalid:
            job = invalid
        key: tuple[str, str] | str = (
            (job.room, job.shard)
            if isinstance(job, FanoutJob) and job.shard is not None
            else record.message_id
        )
        groups.setdefault(key, []).append((record, job))
    return [
        ([record for record, _ in members], record_pool().submit(deliver_group, fanout, deadline, members))
        for members in groups.values()
    ]


def deliver_group(
    fanout: Fanout, deadline: Deadline, members: list[tuple[SQSRecord, FanoutJob | InvalidJob]]
) -> None:
    # Groups run on their own threads: their keys are thread-local, so lines never mix them.
    first, job = members[0]
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(correlation_id=first.message_id, message_id=first.message_id)
    if isinstance(job, InvalidJob):
        # Never silently dropped: failing it lets maxReceiveCount move it to the DLQ.
        logger.error(
            "poison record: not a fan-out job", extra={"message_id": first.message_id, "error": str(job)}
        )
        metrics.add_metric(name="InvalidJobs", unit=MetricUnit.Count, value=1)
        raise job
    jobs = [j for _, j in members if isinstance(j, FanoutJob)]
    logger.thread_safe_append_keys(
        correlation_id=job.correlation_id or first.message_id,
        room=job.room,
        shard=job.shard,
        attempt=job.attempt,
        jobs=len(jobs),
    )
    try:
        reports = fanout.deliver_together(jobs, deadline)
    except Exception:
        logger.exception("fan-out job failed; SQS will deliver it again")
        metrics.add_metric(name="FailedRecords", unit=MetricUnit.Count, value=len(jobs))
        raise
    for (record, _), report in zip(members, reports, strict=True):
        record_report(record, report)


def record_report(record: SQSRecord, report: DeliveryReport) -> None:
    """One job's metrics and log line."""
    for name, value in (
        ("Deliveries", report.delivered),
        ("Gone", report.gone),
        ("Skipped", report.refused),
        ("Retries", report.retries),
        ("Requeued", report.requeued),
        ("DeadLettered", report.dead_lettered),
    ):
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    sent = record.attributes.sent_timestamp
    if sent:
        metrics.add_metric(
            name="JobAge", unit=MetricUnit.Milliseconds, value=max(0, time.time() * 1000 - int(sent))
        )
    if report.refusals:
        logger.warning("posts refused (not retried)", extra={"refusals": report.refusals[:20]})
    if report.dead_lettered:
        logger.error("recipients dead-lettered", extra=report.as_dict())
    elif report.requeued:
        logger.warning("recipients re-enqueued", extra=report.as_dict())
    else:
        logger.info("job delivered", extra=report.as_dict())
