"""Powertools Logger, Tracer and Metrics, configured once for every function.

Service names come from POWERTOOLS_SERVICE_NAME (set per function by the stack); metrics go to
the "DynamoWave" namespace as CloudWatch EMF, which the stack's alarms read.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

METRICS_NAMESPACE = "DynamoWave"


def observability(service: str) -> tuple[Logger, Tracer, Metrics]:
    logger = Logger(service=service)
    tracer = Tracer(service=service)
    metrics = Metrics(namespace=METRICS_NAMESPACE, service=service)
    return logger, tracer, metrics


def is_warmup(event: Any) -> bool:
    """The warm-up schedule's ping ({"warmup": true}): answered without touching anything."""
    return isinstance(event, dict) and event.get("warmup") is True
