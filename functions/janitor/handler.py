"""Janitor: prunes idle and expired connections on a schedule, within a time budget (docs/fanout.md).

A thin adapter: the EventBridge event in, one resumable `Janitor.run`, its summary out
(scanned, pruned, deleted, kept, deferred, pages, resumed_from, finished).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat import deps
from functions.chat.domain.deadline import Deadline
from functions.chat.observability import lambda_entry, observability
from functions.chat.settings import get_settings

logger, tracer, metrics = observability("janitor")


@lambda_entry(logger, tracer, metrics)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    correlation_id = str(event.get("id") or context.aws_request_id)
    logger.set_correlation_id(correlation_id)
    report = deps.janitor(deps.management_endpoint()).run(
        Deadline(context.get_remaining_time_in_millis, settings.janitor_budget_safety_ms), correlation_id
    )
    for name, value in (
        ("JanitorScanned", report.scanned),
        ("JanitorPruned", report.pruned),
        ("JanitorDeleted", report.deleted),
        ("JanitorDeferred", report.deferred),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    summary = report.as_dict()
    logger.info("janitor run", extra=summary)
    return summary
