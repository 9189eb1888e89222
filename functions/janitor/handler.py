"""Janitor: prunes idle and expired connections on a schedule, within a time budget (docs/fanout.md).

A thin adapter: the EventBridge event in, one resumable `Janitor.run`, its summary out
(scanned, pruned, deleted, kept, deferred, pages, resumed_from, finished).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat import deps
from functions.chat.domain.delivery import Deadline, Janitor
from functions.chat.observability import is_warmup, observability
from functions.chat.settings import get_settings

logger, tracer, metrics = observability("janitor")

# GetConnection/DeleteConnection calls in flight: they share the account's API Gateway throttle
# with the fan-out, so the janitor stays modest.
JANITOR_CONCURRENCY: Final = 8


@cache
def check_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=JANITOR_CONCURRENCY, thread_name_prefix="janitor")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_warmup(event):
        return {"warmup": True}
    settings = get_settings()
    endpoint = deps.management_endpoint()
    correlation_id = str(event.get("id") or context.aws_request_id)
    logger.set_correlation_id(correlation_id)
    janitor = Janitor(
        store=deps.store(),
        api=deps.management_api(endpoint),
        prune=deps.chat_service(endpoint).remove_connection,
        settings=settings,
        executor=check_pool(),
    )
    report = janitor.run(
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
