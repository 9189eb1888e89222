"""AWS prices the benchmark turns request counts into dollars with: one table, dated, with sources.

us-east-1, on-demand, list prices as published on 2026-11-21 (free tiers ignored):

* API Gateway WebSocket: $1.00 per million messages (first billion/month), metered in 32 KB
  increments; $0.25 per million connection minutes. https://aws.amazon.com/api-gateway/pricing/
* Lambda: $0.20 per million requests; arm64 $0.0000133334 per GB-second (first 7.5 billion
  GB-s/month). https://aws.amazon.com/lambda/pricing/
* SQS standard: $0.40 per million requests (after the first million), each 64 KB chunk of a
  payload billed as one request. https://aws.amazon.com/sqs/pricing/
* DynamoDB on-demand (Standard table class), after the November 2024 price cut: $0.625 per
  million write request units, $0.125 per million read request units.
  https://aws.amazon.com/dynamodb/pricing/on-demand/
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

PRICES_AS_OF: Final = "2026-11-21"
REGION: Final = "us-east-1"


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str


PRICES: Final[dict[str, Price]] = {
    "apigw_websocket_message": Price(
        1.00 / 1e6, "message (32 KB increments)", "https://aws.amazon.com/api-gateway/pricing/"
    ),
    "apigw_connection_minute": Price(
        0.25 / 1e6, "connection minute", "https://aws.amazon.com/api-gateway/pricing/"
    ),
    "lambda_request": Price(0.20 / 1e6, "invocation", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_second_arm64": Price(
        0.0000133334, "GB-second (arm64)", "https://aws.amazon.com/lambda/pricing/"
    ),
    "sqs_request": Price(0.40 / 1e6, "request (64 KB chunks)", "https://aws.amazon.com/sqs/pricing/"),
    "dynamodb_wru": Price(
        0.625 / 1e6, "write request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
    ),
    "dynamodb_rru": Price(
        0.125 / 1e6, "read request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
    ),
}

APIGW_MESSAGE_BYTES: Final = 32 * 1024


def websocket_messages(frame_bytes: int) -> int:
    """API Gateway bills a message per 32 KB increment."""
    return max(1, math.ceil(frame_bytes / APIGW_MESSAGE_BYTES))


@dataclass(frozen=True)
class UsagePerMessage:
    """AWS usage caused by one chat message (averages over a run)."""

    apigw_messages: float  # inbound frame + every PostToConnection (ack and deliveries)
    lambda_invocations: float
    lambda_gb_seconds: float
    sqs_requests: float
    dynamodb_rru: float
    dynamodb_wru: float

    def usd(self) -> float:
        p = PRICES
        return (
            self.apigw_messages * p["apigw_websocket_message"].usd
            + self.lambda_invocations * p["lambda_request"].usd
            + self.lambda_gb_seconds * p["lambda_gb_second_arm64"].usd
            + self.sqs_requests * p["sqs_request"].usd
            + self.dynamodb_rru * p["dynamodb_rru"].usd
            + self.dynamodb_wru * p["dynamodb_wru"].usd
        )


def apigw_floor_usd(members: int) -> float:
    """The least any API Gateway design can pay per message: one inbound, one outbound per member."""
    return (1 + members) * PRICES["apigw_websocket_message"].usd
