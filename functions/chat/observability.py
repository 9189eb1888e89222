"""Powertools Logger, Tracer and Metrics, configured once for every function.

Logs and traces carry the function's name as `service`; metrics go to the "DynamoWave" namespace
as CloudWatch EMF with the dimensions of `metric_dimensions(stage)` (service=dynamowave and the
deployment's stage), exactly the set the stack's alarms read.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

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
