"""Redriver: the fan-out DLQ's consumer, which redrives dead letters or parks them (docs/fanout.md).

A thin adapter: SQS records from the DLQ in, `Redriver.redrive` per record, a partial batch
response out. A record fails (and returns to the DLQ) only when SQS refused the redrive or the
park; the DLQ's own redrive policy parks a record that keeps failing, so nothing loops forever.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat import deps
from functions.chat.clock import now_ms
from functions.chat.domain.redrive import Redriver, Verdict
from functions.chat.observability import lambda_entry, observability
from functions.chat.settings import get_settings

logger, tracer, metrics = observability("redriver")


@lambda_entry(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse | dict[str, Any]:
    redriver = Redriver(queue=deps.job_queue(), settings=get_settings(), clock=now_ms)

    def redrive(record: SQSRecord) -> None:
        sent = record.attributes.sent_timestamp
        verdict, detail = redriver.redrive(record.body, int(sent) if sent else None)
        if verdict is Verdict.PARKED:
            # What outlives auto-redrive is what pages someone (the parked queue's alarm).
            logger.error("dead letter parked", extra={"message_id": record.message_id, "reason": detail})
            metrics.add_metric(name="DeliveriesParked", unit=MetricUnit.Count, value=1)
        else:
            logger.info("dead letter redriven", extra={"message_id": record.message_id, "detail": detail})
            metrics.add_metric(name="Redriven", unit=MetricUnit.Count, value=1)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=redrive, processor=processor, context=context)
