"""Powertools Logger, Tracer and Metrics, configured once for every function.

Logs and traces carry the function's name as `service`; metrics go to the "DynamoWave" namespace
as CloudWatch EMF with the dimensions of `metric_dimensions(stage)` (service=dynamowave and the
deployment's stage), exactly the set the stack's alarms read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat.settings import ENV, LOCAL_STAGE, METRICS_NAMESPACE, metric_dimensions


def observability(service: str) -> tuple[Logger, Tracer, Metrics]:
    logger = Logger(service=service)
    tracer = Tracer(service=service)
    # Logs and traces name the function; metrics carry the stage's dimension set the alarms are
    # defined on. Read at import (before the handler's Settings are parsed): only the stage.
    dimensions = metric_dimensions(os.environ.get(ENV.STAGE) or LOCAL_STAGE)
    metrics = Metrics(namespace=METRICS_NAMESPACE, service=dimensions.pop("service"))
    metrics.set_default_dimensions(**dimensions)
    return logger, tracer, metrics


def is_warmup(event: Any) -> bool:
    """The warm-up schedule's ping ({"warmup": true}): answered without touching anything."""
    return isinstance(event, dict) and event.get("warmup") is True


R = TypeVar("R")
Handler = Callable[[dict[str, Any], LambdaContext], R]


def lambda_entry(
    logger: Logger, tracer: Tracer, metrics: Metrics, *, correlation_id_path: str | None = None
) -> Callable[[Handler[R]], Callable[..., Any]]:
    """Every function's entry, wrapped once: logs with the Lambda context (and the correlation
    id at `correlation_id_path`), a trace, metrics flushed at the end, and the warm-up ping
    answered before the handler runs. Typed as powertools' decorators are (any context), so a
    test may pass its own Lambda context."""

    def wrap(handler: Handler[R]) -> Callable[..., Any]:
        @wraps(handler)
        def answered(event: dict[str, Any], context: LambdaContext) -> R | dict[str, Any]:
            if is_warmup(event):
                return {"warmup": True}
            return handler(event, context)

        traced = tracer.capture_lambda_handler(metrics.log_metrics(answered))
        if correlation_id_path is None:
            return logger.inject_lambda_context(traced)
        return logger.inject_lambda_context(traced, correlation_id_path=correlation_id_path)

    return wrap
