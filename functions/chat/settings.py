"""Typed configuration, parsed once from the environment (the same variables on AWS and locally).

The CDK stack sets these on each function; the local runtime sets the same names. ``ENV`` lists
every variable so neither side can drift from what the functions read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Final

# CloudWatch EMF: every function's custom metrics share one namespace and carry the dimensions
# of `metric_dimensions(stage)`, which the stack's alarms and dashboard read: one stage's alarms
# never count another stage's metrics in the same account.
METRICS_NAMESPACE = "DynamoWave"
METRICS_SERVICE = "dynamowave"
# The stage a function runs in (the stack sets it; the local runtime runs as "local").
LOCAL_STAGE = "local"


def metric_dimensions(stage: str) -> dict[str, str]:
    """The dimension set of every custom metric: what the functions emit and the alarms select."""
    return {"service": METRICS_SERVICE, "stage": stage}


class ENV:
    """Environment variable names read by the functions."""

    CONNECTIONS_TABLE = "CONNECTIONS_TABLE"
    ROOMS_TABLE = "ROOMS_TABLE"
    MESSAGES_TABLE = "MESSAGES_TABLE"
    FANOUT_QUEUE_URL = "FANOUT_QUEUE_URL"
    FANOUT_DLQ_URL = "FANOUT_DLQ_URL"
    # https://{apiId}.execute-api.{region}.amazonaws.com/{stage}; locally http://host:port/{stage}.
    MANAGEMENT_API_ENDPOINT = "MANAGEMENT_API_ENDPOINT"
    JWT_SECRET = "DYNAMOWAVE_JWT_SECRET"  # local development: the secret itself
    JWT_SECRET_ARN = "JWT_SECRET_ARN"  # AWS: a Secrets Manager secret (cached)
    STAGE = "DYNAMOWAVE_STAGE"  # the deployment stage: a dimension of every custom metric
    # edge=true: the header CloudFront adds to every origin request, which the authorizer requires
    # (so nobody bypasses CloudFront and WAF through the execute-api URL). Unset: no check.
    ORIGIN_SECRET = "DYNAMOWAVE_ORIGIN_SECRET"  # local tests: the value itself
    ORIGIN_SECRET_ARN = "ORIGIN_SECRET_ARN"  # AWS: a Secrets Manager secret (cached)
    MAX_TEXT_LENGTH = "MAX_TEXT_LENGTH"
    RATE_LIMIT_PER_SECOND = "RATE_LIMIT_PER_SECOND"
    RATE_LIMIT_BURST = "RATE_LIMIT_BURST"
    SHARD_SIZE = "SHARD_SIZE"
    IDLE_TIMEOUT_SECONDS = "IDLE_TIMEOUT_SECONDS"
    MAX_CONNECTION_SECONDS = "MAX_CONNECTION_SECONDS"
    IDEMPOTENCY_TTL_SECONDS = "IDEMPOTENCY_TTL_SECONDS"
    MESSAGE_RETENTION_DAYS = "MESSAGE_RETENTION_DAYS"
    FANOUT_POOL_SIZE = "FANOUT_POOL_SIZE"
    FANOUT_MAX_ATTEMPTS = "FANOUT_MAX_ATTEMPTS"
    POST_MAX_RETRIES = "POST_MAX_RETRIES"
    POST_BACKOFF_BASE_MS = "POST_BACKOFF_BASE_MS"
    POST_BACKOFF_CAP_MS = "POST_BACKOFF_CAP_MS"
    JANITOR_BUDGET_SAFETY_MS = "JANITOR_BUDGET_SAFETY_MS"
    MEMBERS_IN_JOINED = "MEMBERS_IN_JOINED"
    FANOUT_DEADLINE_SAFETY_MS = "FANOUT_DEADLINE_SAFETY_MS"
    FANOUT_RETRY_DELAY_SECONDS = "FANOUT_RETRY_DELAY_SECONDS"
    JANITOR_PAGE_SIZE = "JANITOR_PAGE_SIZE"
    # Message review (docs/protocol.md): the function, its time budget and the fallback policy.
    REVIEW_FUNCTION_ARN = "REVIEW_FUNCTION_ARN"
    REVIEW_TIMEOUT_MS = "REVIEW_TIMEOUT_MS"
    REVIEW_FALLBACK = "REVIEW_FALLBACK"
    # Comma-separated web origins whose pages may open connections (empty: any origin); the
    # authorizer refuses a handshake whose Origin header names another one.
    ALLOWED_ORIGINS = "ALLOWED_ORIGINS"
    FANOUT_VISIBILITY_SECONDS = "FANOUT_VISIBILITY_SECONDS"
    FANOUT_PARKED_URL = "FANOUT_PARKED_URL"
    REDRIVE_BASE_DELAY_SECONDS = "REDRIVE_BASE_DELAY_SECONDS"
    REDRIVE_MAX_AGE_SECONDS = "REDRIVE_MAX_AGE_SECONDS"


@dataclass(frozen=True)
class Settings:
    connections_table: str = "dynamowave-connections"
    rooms_table: str = "dynamowave-rooms"
    messages_table: str = "dynamowave-messages"
    fanout_queue_url: str = ""
    fanout_dlq_url: str = ""
    management_api_endpoint: str = ""
    jwt_secret: str = field(default="", repr=False)
    jwt_secret_arn: str = ""
    stage: str = LOCAL_STAGE
    origin_secret: str = field(default="", repr=False)
    origin_secret_arn: str = ""
    max_text_length: int = 4000
    rate_limit_per_second: float = 10.0
    rate_limit_burst: int = 20
    # Members per membership shard: one fan-out job (one Query, one pool of posts) per shard.
    shard_size: int = 250
    idle_timeout_seconds: int = 600  # API Gateway: 10 minutes
    max_connection_seconds: int = 7200  # API Gateway: 2 hours
    idempotency_ttl_seconds: int = 86400
    message_retention_days: int = 0  # 0 keeps history forever
    fanout_pool_size: int = 32
    fanout_max_attempts: int = 5
    post_max_retries: int = 6
    post_backoff_base_ms: int = 50
    post_backoff_cap_ms: int = 2000
    janitor_budget_safety_ms: int = 5000
    members_in_joined: int = 500
    # Fan-out stops backing off this long before the invocation's timeout, leaving time for an
    # in-flight post (connect 2 s + read 5 s) and for re-enqueueing the recipients still failing.
    fanout_deadline_safety_ms: int = 7000
    # SQS DelaySeconds of a retry job: base * 2**(attempt - 1), capped at SQS's 900 s; 0 = none.
    fanout_retry_delay_seconds: int = 2
    # Items the janitor's Scan evaluates per page (its Limit); the cursor is saved after each page.
    janitor_page_size: int = 500
    # "" = no review. The budget bounds the whole synchronous invoke; past it the fallback decides.
    review_function_arn: str = ""
    review_timeout_ms: int = 1000
    review_fallback: str = "allow"  # or "deny"
    allowed_origins: tuple[str, ...] = ()
    # The fan-out queue's visibility timeout, which the fan-out renews while it works on a batch
    # (functions/chat/lease.py): a crashed invocation's records are back within this long.
    fanout_visibility_seconds: int = 15  # schema.FANOUT_VISIBILITY_TIMEOUT_SECONDS
    # Auto-redrive (functions/chat/domain/redrive.py): the n-th redrive of a dead-lettered job waits
    # base * 2**n seconds (SQS caps a delay at 900 s); a job first dead-lettered longer ago than
    # the max age is parked instead, and only that pages someone.
    fanout_parked_url: str = ""
    redrive_base_delay_seconds: int = 5
    redrive_max_age_seconds: int = 3600

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        d = cls()

        def text(name: str, default: str) -> str:
            return env.get(name, default) or default

        def integer(name: str, default: int, minimum: int = 0) -> int:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError as exc:
                raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")
            return value

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw)
            except ValueError as exc:
                raise ValueError(f"{name} must be a number, got {raw!r}") from exc
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
            return value

        return cls(
            connections_table=text(ENV.CONNECTIONS_TABLE, d.connections_table),
            rooms_table=text(ENV.ROOMS_TABLE, d.rooms_table),
            messages_table=text(ENV.MESSAGES_TABLE, d.messages_table),
            fanout_queue_url=text(ENV.FANOUT_QUEUE_URL, d.fanout_queue_url),
            fanout_dlq_url=text(ENV.FANOUT_DLQ_URL, d.fanout_dlq_url),
            management_api_endpoint=text(ENV.MANAGEMENT_API_ENDPOINT, d.management_api_endpoint),
            jwt_secret=text(ENV.JWT_SECRET, d.jwt_secret),
            jwt_secret_arn=text(ENV.JWT_SECRET_ARN, d.jwt_secret_arn),
            stage=text(ENV.STAGE, d.stage),
            origin_secret=text(ENV.ORIGIN_SECRET, d.origin_secret),
            origin_secret_arn=text(ENV.ORIGIN_SECRET_ARN, d.origin_secret_arn),
            max_text_length=integer(ENV.MAX_TEXT_LENGTH, d.max_text_length, 1),
            rate_limit_per_second=number(ENV.RATE_LIMIT_PER_SECOND, d.rate_limit_per_second),
            rate_limit_burst=integer(ENV.RATE_LIMIT_BURST, d.rate_limit_burst, 1),
            shard_size=integer(ENV.SHARD_SIZE, d.shard_size, 1),
            idle_timeout_seconds=integer(ENV.IDLE_TIMEOUT_SECONDS, d.idle_timeout_seconds, 1),
            max_connection_seconds=integer(ENV.MAX_CONNECTION_SECONDS, d.max_connection_seconds, 1),
            idempotency_ttl_seconds=integer(ENV.IDEMPOTENCY_TTL_SECONDS, d.idempotency_ttl_seconds, 60),
            message_retention_days=integer(ENV.MESSAGE_RETENTION_DAYS, d.message_retention_days),
            fanout_pool_size=integer(ENV.FANOUT_POOL_SIZE, d.fanout_pool_size, 1),
            fanout_max_attempts=integer(ENV.FANOUT_MAX_ATTEMPTS, d.fanout_max_attempts, 1),
            post_max_retries=integer(ENV.POST_MAX_RETRIES, d.post_max_retries),
            post_backoff_base_ms=integer(ENV.POST_BACKOFF_BASE_MS, d.post_backoff_base_ms, 1),
            post_backoff_cap_ms=integer(ENV.POST_BACKOFF_CAP_MS, d.post_backoff_cap_ms, 1),
            janitor_budget_safety_ms=integer(ENV.JANITOR_BUDGET_SAFETY_MS, d.janitor_budget_safety_ms),
            members_in_joined=integer(ENV.MEMBERS_IN_JOINED, d.members_in_joined, 1),
            fanout_deadline_safety_ms=integer(ENV.FANOUT_DEADLINE_SAFETY_MS, d.fanout_deadline_safety_ms),
            fanout_retry_delay_seconds=integer(ENV.FANOUT_RETRY_DELAY_SECONDS, d.fanout_retry_delay_seconds),
            janitor_page_size=integer(ENV.JANITOR_PAGE_SIZE, d.janitor_page_size, 1),
            review_function_arn=text(ENV.REVIEW_FUNCTION_ARN, d.review_function_arn),
            review_timeout_ms=integer(ENV.REVIEW_TIMEOUT_MS, d.review_timeout_ms, 1),
            review_fallback=_choice(text(ENV.REVIEW_FALLBACK, d.review_fallback), ENV.REVIEW_FALLBACK),
            allowed_origins=normalize_origins(text(ENV.ALLOWED_ORIGINS, "").split(",")),
            fanout_visibility_seconds=integer(ENV.FANOUT_VISIBILITY_SECONDS, d.fanout_visibility_seconds, 1),
            fanout_parked_url=text(ENV.FANOUT_PARKED_URL, d.fanout_parked_url),
            redrive_base_delay_seconds=integer(ENV.REDRIVE_BASE_DELAY_SECONDS, d.redrive_base_delay_seconds),
            redrive_max_age_seconds=integer(ENV.REDRIVE_MAX_AGE_SECONDS, d.redrive_max_age_seconds),
        )


def _choice(value: str, name: str, choices: tuple[str, ...] = ("allow", "deny")) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


# A web origin as browsers send it in the Origin header: scheme, host, optional port.
ORIGIN_PATTERN: Final = re.compile(r"\Ahttps?://[A-Za-z0-9.-]+(:[0-9]{1,5})?\Z")


def normalize_origin(origin: str) -> str:
    """``https://App.example.com/`` -> ``https://app.example.com``: the form browsers send."""
    return origin.strip().rstrip("/").lower()


def normalize_origins(origins: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(normalize_origin(o) for o in origins if o.strip()))


# The variables each function is given of its own (its resources and the settings only it reads):
# the one definition the CDK stack (stacks/stack.py) and the local runtime both build each
# function's environment from. A variable named here reaches only the functions that name it;
# the other ENV names (tunables) go to every function.
FUNCTION_RESOURCES: Mapping[str, tuple[str, ...]] = {
    # ORIGIN_SECRET_ARN only behind the edge (CloudFront): the stack adds it with the edge.
    "authorizer": (ENV.JWT_SECRET_ARN, ENV.ORIGIN_SECRET_ARN),
    "ingress": (
        ENV.CONNECTIONS_TABLE,
        ENV.ROOMS_TABLE,
        ENV.MESSAGES_TABLE,
        ENV.FANOUT_QUEUE_URL,
        ENV.MANAGEMENT_API_ENDPOINT,
        # Only with a review function (reviewFunctionArn; locally --review-handler): the ingress
        # invokes it, nothing else does.
        ENV.REVIEW_FUNCTION_ARN,
    ),
    "fanout": (
        ENV.CONNECTIONS_TABLE,
        ENV.ROOMS_TABLE,
        ENV.FANOUT_QUEUE_URL,
        ENV.FANOUT_DLQ_URL,
        ENV.MANAGEMENT_API_ENDPOINT,
        # The queue's visibility timeout, which the fan-out renews by (functions/chat/lease.py).
        ENV.FANOUT_VISIBILITY_SECONDS,
    ),
    "janitor": (ENV.CONNECTIONS_TABLE, ENV.ROOMS_TABLE, ENV.FANOUT_QUEUE_URL, ENV.MANAGEMENT_API_ENDPOINT),
    "redriver": (
        ENV.FANOUT_QUEUE_URL,
        ENV.FANOUT_PARKED_URL,
        ENV.REDRIVE_BASE_DELAY_SECONDS,
        ENV.REDRIVE_MAX_AGE_SECONDS,
    ),
    # The operator API (docs/operator-api.md): the chat service's tables and queue, and the
    # Management API to disconnect users.
    "operator": (
        ENV.CONNECTIONS_TABLE,
        ENV.ROOMS_TABLE,
        ENV.MESSAGES_TABLE,
        ENV.FANOUT_QUEUE_URL,
        ENV.MANAGEMENT_API_ENDPOINT,
    ),
}
ENV_NAMES: tuple[str, ...] = tuple(
    value for name, value in vars(ENV).items() if not name.startswith("_") and isinstance(value, str)
)


def get_settings() -> Settings:
    """Settings for this environment, parsed on first use (a Lambda cold start). On Lambda the
    environment never changes; cached per distinct environment, so that code running several
    functions side by side with their own environments (the local runtime) gets each its own."""
    return _settings_for(environment_key())


def environment_key() -> tuple[tuple[str, str | None], ...]:
    """This environment's identity: the functions' settings and whose credentials they run with."""
    return tuple((name, os.environ.get(name)) for name in (*ENV_NAMES, "AWS_ACCESS_KEY_ID"))


@cache
def _settings_for(environment: tuple[tuple[str, str | None], ...]) -> Settings:
    return Settings.from_env({name: value for name, value in environment[:-1] if value is not None})


def clear_settings() -> None:
    """Forget every parsed environment (tests, and the local runtime after setting it)."""
    _settings_for.cache_clear()


get_settings.cache_clear = clear_settings  # type: ignore[attr-defined]
