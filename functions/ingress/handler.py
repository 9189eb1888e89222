"""Ingress: every WebSocket route ($connect, $disconnect, $default and the actions).

A thin adapter: API Gateway event in, `ChatService` call, route response out. The reply (if
any) is the route response that API Gateway sends back to the caller.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat import deps, protocol
from functions.chat.auth import Identity
from functions.chat.domain.ports import Result, Verdict
from functions.chat.observability import lambda_entry, observability

logger, tracer, metrics = observability("ingress")


@lambda_entry(logger, tracer, metrics, correlation_id_path="requestContext.requestId")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_context = event["requestContext"]
    route = request_context["routeKey"]
    connection_id = request_context["connectionId"]
    endpoint = deps.management_endpoint(request_context.get("domainName"), request_context.get("stage"))
    service = deps.chat_service(endpoint)
    logger.append_keys(connection_id=connection_id, route=route)

    if route == "$disconnect":
        service.disconnect(connection_id, correlation_id=request_context.get("requestId", ""))
        metrics.add_metric(name="Disconnects", unit=MetricUnit.Count, value=1)
        return {"statusCode": 200}

    identity = Identity.from_context(request_context.get("authorizer") or {})
    logger.append_keys(user_id=identity.user_id)
    if route == "$connect":
        service.connect(
            connection_id, identity, batch=protocol.wants_batches(event.get("queryStringParameters"))
        )
        metrics.add_metric(name="Connects", unit=MetricUnit.Count, value=1)
        return {"statusCode": 200}

    try:
        outcome = service.handle(
            connection_id,
            identity,
            event.get("body"),
            request_context.get("requestId", ""),
            received_ms=_epoch_ms(request_context.get("requestTimeEpoch")),
        )
    except Exception:
        # A bug or an AWS outage: the caller still gets the protocol's error frame.
        logger.exception("frame failed")
        metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1)
        reply = protocol.error_frame(protocol.ErrorCode.INTERNAL, "internal error; retry later")
        return {"statusCode": 500, "body": protocol.encode(reply)}
    if outcome.error is not None:
        logger.info("frame refused", extra={"code": str(outcome.error), "action": outcome.action})
        metrics.add_metric(name="RefusedFrames", unit=MetricUnit.Count, value=1)
    if outcome.message_id is not None:
        # Links this request's id to the message id, the correlation id the fan-out logs carry.
        logger.info(
            "message stored" if outcome.stored else "message resent (idempotent)",
            extra={"message_id": outcome.message_id, "seq": outcome.seq, "jobs": outcome.jobs},
        )
    if outcome.review is not None:
        record_review(outcome.review)
    if outcome.rev is not None:
        logger.info("change stored", extra={"seq": outcome.seq, "rev": outcome.rev, "jobs": outcome.jobs})
        metrics.add_metric(name="ChangesStored", unit=MetricUnit.Count, value=1)
    if outcome.stored:
        metrics.add_metric(name="MessagesStored", unit=MetricUnit.Count, value=1)
    if outcome.duplicate:
        metrics.add_metric(name="DuplicateSends", unit=MetricUnit.Count, value=1)
    if outcome.jobs:
        metrics.add_metric(name="FanoutJobsEnqueued", unit=MetricUnit.Count, value=outcome.jobs)
    response: dict[str, Any] = {"statusCode": 200}
    if outcome.reply is not None:
        response["body"] = protocol.encode(outcome.reply)
    return response


# One metric per review outcome (docs/operations.md): a rise in fallbacks means the reviewer is
# slow or failing, and its fallback policy is deciding instead.
REVIEW_METRICS = {
    Result.ALLOW: "ReviewAllowed",
    Result.DENY: "ReviewDenied",
    Result.REPLACE: "ReviewReplaced",
}


def record_review(verdict: Verdict) -> None:
    logger.info(
        "message reviewed",
        extra={
            "review": verdict.outcome,
            "review_ms": round(verdict.elapsed_ms, 1),
            "reason": verdict.reason,
        },
    )
    metrics.add_metric(name=REVIEW_METRICS[verdict.result], unit=MetricUnit.Count, value=1)
    if verdict.fallback:
        metrics.add_metric(name="ReviewFallbacks", unit=MetricUnit.Count, value=1)


def _epoch_ms(value: Any) -> int | None:
    """API Gateway's ``requestTimeEpoch`` (ms): when the frame arrived, the limiter's clock."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
