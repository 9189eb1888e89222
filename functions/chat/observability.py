"""Powertools Logger, Tracer and Metrics, configured once for every function.

Logs and traces carry the function's name as `service`; metrics go to the "DynamoWave" namespace
as CloudWatch EMF with the dimension service=dynamowave, which the stack's alarms read.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from functions.chat.settings import METRICS_NAMESPACE, METRICS_SERVICE


def observability(service: str) -> tuple[Logger, Tracer, Metrics]:
    logger = Logger(service=service)
    tracer = Tracer(service=service)
    # Logs and traces name the function; metrics carry the stack-wide service dimension the
    # alarms are defined on.
    metrics = Metrics(namespace=METRICS_NAMESPACE, service=METRICS_SERVICE)
    return logger, tracer, metrics


def is_warmup(event: Any) -> bool:
    """The warm-up schedule's ping ({"warmup": true}): answered without touching anything."""
    return isinstance(event, dict) and event.get("warmup") is True
