"""Deployment configuration: every CDK context option, parsed once into a typed, validated model.

Context values come from ``cdk.json`` (typed JSON) or from ``cdk deploy -c key=value`` (always
strings), so every parser below accepts both. docs/deploy.md lists the options with their
defaults; keep the two in step.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.chat.settings import ENV, ORIGIN_PATTERN

ContextLookup = Callable[[str], Any]

DEFAULT_REGION = "us-east-1"
# The AWS-managed Powertools for AWS Lambda (Python) v3 layer version (per runtime and
# architecture, published in every commercial region by account 017000801446).
DEFAULT_POWERTOOLS_LAYER_VERSION = 38
# Lambda keeps this many executions of the account unreserved; a new account's whole limit is
# often 10, so any reservation there fails the deploy (docs/deploy.md, pre-flight).
UNRESERVED_CONCURRENCY_MINIMUM = 100
NEW_ACCOUNT_CONCURRENCY = 10
# `-c profile=production`: the explicit production configuration. Each value is a context
# option; an option given on its own still wins over the profile.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "production": {
        "stage": "prod",
        "retainData": True,
        # Chat keeps working when other functions in the account spike, and a fan-out storm cannot
        # starve $connect. Needs an account limit of 100 + 50 + 100 unreserved = 250.
        "ingressReservedConcurrency": 100,
        "fanoutReservedConcurrency": 50,
        "warmer": True,
    },
}
# Partitions other than `aws` (China, GovCloud, ISO) publish the Powertools layer from other
# accounts and lack some services this stack uses: refused rather than deployed half-working.
_OTHER_PARTITION_PREFIXES = ("cn-", "us-gov-", "us-iso")

# Whole-string patterns (`\Z`: `$` also matches before a final newline), applied with fullmatch.
_STAGE_PATTERN = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
_REGION_PATTERN = re.compile(r"\A[a-z]{2}(-gov)?-[a-z]+-\d\Z")
_KEY_ARN_PATTERN = re.compile(r"\Aarn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+\Z")
_EMAIL_PATTERN = re.compile(r"\A[^@\s]+@[^@\s]+\.[^@\s]+\Z")
# A Lambda function ARN, optionally with a version or alias (what lambda:InvokeFunction names).
_FUNCTION_ARN_PATTERN = re.compile(
    r"\Aarn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?\Z"
)
# Environment variables the stack itself sets from its resources: not tunable through context.
_RESOURCE_ENV = frozenset(
    {
        ENV.CONNECTIONS_TABLE,
        ENV.ROOMS_TABLE,
        ENV.MESSAGES_TABLE,
        ENV.FANOUT_QUEUE_URL,
        ENV.FANOUT_DLQ_URL,
        ENV.MANAGEMENT_API_ENDPOINT,
        ENV.JWT_SECRET,
        ENV.JWT_SECRET_ARN,
        ENV.STAGE,
        ENV.ORIGIN_SECRET,
        ENV.ORIGIN_SECRET_ARN,
        # The stack sets it from `reviewFunctionArn`, with the grant that goes with it.
        ENV.REVIEW_FUNCTION_ARN,
    }
)
TUNABLE_ENV = frozenset(
    value for name, value in vars(ENV).items() if not name.startswith("_") and value not in _RESOURCE_ENV
)


class ConfigError(ValueError):
    """A context option has a value the stack cannot deploy."""


@dataclass(frozen=True)
class DeploymentConfig:
    """What one deployment of DynamoWave looks like (one stack per stage)."""

    stage: str = "dev"
    region: str = DEFAULT_REGION
    account: str | None = None
    # Production keeps data (tables, keys, the secret, logs) on `cdk destroy`.
    retain_data: bool = False
    # None = unreserved, the default: it deploys in a new account (whose limit of 10 leaves
    # nothing to reserve). profile=production reserves 100 and 50.
    ingress_reserved_concurrency: int | None = None
    fanout_reserved_concurrency: int | None = None
    fanout_batch_size: int = 10
    fanout_max_batching_window_seconds: int = 0
    fanout_max_concurrency: int = 20
    max_receive_count: int = 5
    # Auto-redrive (functions/chat/domain/redrive.py): first delay, doubled per redrive; the age after
    # which a dead letter is parked (and alarmed) instead.
    redrive_base_delay_seconds: int = 5
    redrive_max_age_seconds: int = 3600
    throttle_rate_limit: float = 1000.0
    throttle_burst_limit: int = 2000
    # The operator API's $default stage (docs/operator-api.md): a few backends, not every client.
    operator_throttle_rate_limit: float = 100.0
    operator_throttle_burst_limit: int = 200
    # Message review (docs/protocol.md): the function the ingress invokes before storing a
    # message or edit; None = no review, and no lambda:InvokeFunction grant.
    review_function_arn: str | None = None
    log_retention_days: int = 30
    janitor_rate_minutes: int = 5
    warmer: bool = False
    alarm_email: str | None = None
    edge: bool = False
    waf_rate_limit: int = 1000
    replica_regions: tuple[str, ...] = ()
    replica_key_arns: Mapping[str, str] = field(default_factory=dict)
    # None = the newest layer, resolved at deploy time from Powertools' public SSM parameter.
    powertools_layer_version: int | None = DEFAULT_POWERTOOLS_LAYER_VERSION
    api_gateway_cloudwatch_role: bool = True
    function_settings: Mapping[str, str] = field(default_factory=dict)
    # Web origins whose pages may connect (the authorizer refuses others); empty: any origin.
    allowed_origins: tuple[str, ...] = ()

    @property
    def stack_name(self) -> str:
        return f"DynamoWave-{self.stage}"

    @property
    def required_account_concurrency(self) -> int:
        """The account concurrency limit this configuration needs (0 when it reserves nothing)."""
        reserved = (self.ingress_reserved_concurrency or 0) + (self.fanout_reserved_concurrency or 0)
        return reserved + UNRESERVED_CONCURRENCY_MINIMUM if reserved else 0

    def __post_init__(self) -> None:
        if not _STAGE_PATTERN.fullmatch(self.stage):
            raise ConfigError(f"stage must be 1..64 of A-Z a-z 0-9 _ -, got {self.stage!r}")
        for region in (self.region, *self.replica_regions):
            if not _REGION_PATTERN.fullmatch(region):
                raise ConfigError(f"region {region!r} is not an AWS region name")
            if region.startswith(_OTHER_PARTITION_PREFIXES):
                raise ConfigError(
                    f"region {region} is outside the aws partition: the Powertools layer "
                    "(account 017000801446) and this stack are built for commercial regions only"
                )
        for name, value in (
            ("ingressReservedConcurrency", self.ingress_reserved_concurrency),
            ("fanoutReservedConcurrency", self.fanout_reserved_concurrency),
        ):
            # Lambda treats a reservation of 0 as "never run": refuse it rather than deploy a dead stack.
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1 (or false for no reservation), got {value}")
        if not 1 <= self.fanout_batch_size <= 10_000:
            raise ConfigError(f"fanoutBatchSize must be 1..10000, got {self.fanout_batch_size}")
        if self.fanout_batch_size > 10 and self.fanout_max_batching_window_seconds < 1:
            raise ConfigError("fanoutBatchSize above 10 needs fanoutMaxBatchingWindow >= 1 (an SQS rule)")
        if not 0 <= self.fanout_max_batching_window_seconds <= 300:
            raise ConfigError("fanoutMaxBatchingWindow must be 0..300 seconds")
        if not 2 <= self.fanout_max_concurrency <= 1000:
            raise ConfigError(f"fanoutMaxConcurrency must be 2..1000, got {self.fanout_max_concurrency}")
        if (
            self.fanout_reserved_concurrency is not None
            and self.fanout_max_concurrency > self.fanout_reserved_concurrency
        ):
            # More pollers than reserved instances only produces throttled invocations.
            raise ConfigError("fanoutMaxConcurrency must not exceed fanoutReservedConcurrency")
        if not 1 <= self.max_receive_count <= 1000:
            raise ConfigError(f"maxReceiveCount must be 1..1000, got {self.max_receive_count}")
        if not 1 <= self.redrive_base_delay_seconds <= 900:
            raise ConfigError(
                f"redriveBaseDelay must be 1..900 seconds, got {self.redrive_base_delay_seconds}"
            )
        if not 60 <= self.redrive_max_age_seconds <= 14 * 24 * 3600:
            raise ConfigError(
                f"redriveMaxAge must be 60..1209600 seconds (the DLQ's retention), got {self.redrive_max_age_seconds}"
            )
        if self.throttle_rate_limit <= 0 or self.throttle_burst_limit < 1:
            raise ConfigError("throttleRateLimit must be > 0 and throttleBurstLimit >= 1")
        if self.operator_throttle_rate_limit <= 0 or self.operator_throttle_burst_limit < 1:
            raise ConfigError("operatorThrottleRateLimit must be > 0 and operatorThrottleBurstLimit >= 1")
        if self.review_function_arn is not None and not _FUNCTION_ARN_PATTERN.fullmatch(
            self.review_function_arn
        ):
            raise ConfigError(
                f"reviewFunctionArn {self.review_function_arn!r} is not a Lambda function ARN "
                "(arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])"
            )
        if self.log_retention_days not in RETENTION_DAYS:
            raise ConfigError(f"logRetentionDays must be one of {sorted(RETENTION_DAYS)}")
        if not 1 <= self.janitor_rate_minutes <= 60:
            raise ConfigError("janitorRateMinutes must be 1..60")
        if self.alarm_email is not None and not _EMAIL_PATTERN.fullmatch(self.alarm_email):
            raise ConfigError(f"alarmEmail {self.alarm_email!r} is not an e-mail address")
        if not 100 <= self.waf_rate_limit <= 2_000_000_000:
            raise ConfigError("wafRateLimit must be >= 100 (a WAF rule limit)")
        for region in self.replica_regions:
            if region == self.region:
                raise ConfigError(f"replicaRegions must not contain the stack's own region {region}")
        for region, arn in self.replica_key_arns.items():
            if region not in self.replica_regions:
                raise ConfigError(f"replicaKeyArns names {region}, which is not in replicaRegions")
            if not _KEY_ARN_PATTERN.fullmatch(arn) or f":kms:{region}:" not in arn:
                raise ConfigError(f"replicaKeyArns[{region}] must be a KMS key ARN in {region}")
        if self.powertools_layer_version is not None and self.powertools_layer_version < 1:
            raise ConfigError("powertoolsLayerVersion must be >= 1")
        for origin in self.allowed_origins:
            if not ORIGIN_PATTERN.fullmatch(origin):
                raise ConfigError(
                    f"allowedOrigins: {origin!r} is not an origin like https://chat.example.com"
                )
        unknown = set(self.function_settings) - TUNABLE_ENV
        if unknown:
            raise ConfigError(f"functionSettings: unknown or stack-owned variables {sorted(unknown)}")

    @property
    def function_environment(self) -> dict[str, str]:
        """Settings every function gets from the context (the stack adds its resources' names)."""
        env = dict(self.function_settings)
        if self.allowed_origins:
            env[ENV.ALLOWED_ORIGINS] = ",".join(self.allowed_origins)
        return env

    @property
    def log_retention(self) -> str:
        """The aws_logs.RetentionDays member name for ``log_retention_days``."""
        return RETENTION_DAYS[self.log_retention_days]

    @property
    def replicas_use_customer_key(self) -> bool:
        """Replicas need a key in their own region; without one per replica, AWS-managed keys."""
        return not self.replica_regions or set(self.replica_key_arns) == set(self.replica_regions)

    @classmethod
    def from_context(
        cls, lookup: ContextLookup, environ: Mapping[str, str] | None = None
    ) -> DeploymentConfig:
        """Build the config from CDK context (``node.try_get_context``) and the CDK CLI's env."""
        env = os.environ if environ is None else environ
        profile_name = _text(lookup("profile")) or "default"
        if profile_name not in PROFILES:
            raise ConfigError(f"profile must be one of {sorted(PROFILES)}, got {profile_name!r}")
        profile = PROFILES[profile_name]

        def option(key: str) -> Any:
            value = lookup(key)
            return profile.get(key) if value is None or value == "" else value

        d = cls()
        stage = _text(option("stage")) or d.stage
        retain = _boolean(option("retainData"), "retainData")
        reserved = _boolean(option("reservedConcurrency"), "reservedConcurrency")
        ingress_reserved = _optional_int(option("ingressReservedConcurrency"), "ingressReservedConcurrency")
        fanout_reserved = _optional_int(option("fanoutReservedConcurrency"), "fanoutReservedConcurrency")
        replica_regions = _string_list(option("replicaRegions"), "replicaRegions")
        return cls(
            stage=stage,
            region=_text(option("region")) or env.get("CDK_DEFAULT_REGION") or DEFAULT_REGION,
            account=_text(option("account")) or env.get("CDK_DEFAULT_ACCOUNT") or None,
            retain_data=stage in ("prod", "production") if retain is None else retain,
            ingress_reserved_concurrency=None
            if reserved is False
            else _default(ingress_reserved, d.ingress_reserved_concurrency),
            fanout_reserved_concurrency=None
            if reserved is False
            else _default(fanout_reserved, d.fanout_reserved_concurrency),
            fanout_batch_size=_int(option("fanoutBatchSize"), "fanoutBatchSize", d.fanout_batch_size),
            fanout_max_batching_window_seconds=_int(
                option("fanoutMaxBatchingWindow"),
                "fanoutMaxBatchingWindow",
                d.fanout_max_batching_window_seconds,
            ),
            fanout_max_concurrency=_int(
                option("fanoutMaxConcurrency"), "fanoutMaxConcurrency", d.fanout_max_concurrency
            ),
            max_receive_count=_int(option("maxReceiveCount"), "maxReceiveCount", d.max_receive_count),
            redrive_base_delay_seconds=_int(
                option("redriveBaseDelay"), "redriveBaseDelay", d.redrive_base_delay_seconds
            ),
            redrive_max_age_seconds=_int(option("redriveMaxAge"), "redriveMaxAge", d.redrive_max_age_seconds),
            throttle_rate_limit=_float(
                option("throttleRateLimit"), "throttleRateLimit", d.throttle_rate_limit
            ),
            throttle_burst_limit=_int(
                option("throttleBurstLimit"), "throttleBurstLimit", d.throttle_burst_limit
            ),
            operator_throttle_rate_limit=_float(
                option("operatorThrottleRateLimit"),
                "operatorThrottleRateLimit",
                d.operator_throttle_rate_limit,
            ),
            operator_throttle_burst_limit=_int(
                option("operatorThrottleBurstLimit"),
                "operatorThrottleBurstLimit",
                d.operator_throttle_burst_limit,
            ),
            review_function_arn=_text(option("reviewFunctionArn")) or None,
            log_retention_days=_int(option("logRetentionDays"), "logRetentionDays", d.log_retention_days),
            janitor_rate_minutes=_int(
                option("janitorRateMinutes"), "janitorRateMinutes", d.janitor_rate_minutes
            ),
            warmer=bool(_boolean(option("warmer"), "warmer")),
            alarm_email=_text(option("alarmEmail")) or None,
            edge=bool(_boolean(option("edge"), "edge")),
            waf_rate_limit=_int(option("wafRateLimit"), "wafRateLimit", d.waf_rate_limit),
            replica_regions=replica_regions,
            replica_key_arns=_string_map(option("replicaKeyArns"), "replicaKeyArns"),
            powertools_layer_version=_layer_version(option("powertoolsLayerVersion")),
            api_gateway_cloudwatch_role=_boolean(
                option("apiGatewayCloudWatchRole"), "apiGatewayCloudWatchRole"
            )
            is not False,
            function_settings=_string_map(option("functionSettings"), "functionSettings"),
            allowed_origins=_string_list(option("allowedOrigins"), "allowedOrigins"),
        )


# CloudWatch Logs accepts only these retention periods (days -> aws_logs.RetentionDays member).
RETENTION_DAYS: dict[int, str] = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}


def _text(raw: Any) -> str:
    return "" if raw is None else str(raw).strip()


def _default(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


def _boolean(raw: Any, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _layer_version(raw: Any) -> int | None:
    if isinstance(raw, str) and raw.strip().lower() == "latest":
        return None
    return _int(raw, "powertoolsLayerVersion", DEFAULT_POWERTOOLS_LAYER_VERSION)


def _optional_int(raw: Any, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    return _int(raw, name, 0)


def _int(raw: Any, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise ConfigError(f"{name} must be an integer, got {raw!r}")
    try:
        return int(str(raw).strip())
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _float(raw: Any, name: str, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        return float(str(raw).strip())
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _string_list(raw: Any, name: str) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    if isinstance(raw, list | tuple):
        items = [str(item) for item in raw]
    elif isinstance(raw, str):
        text = raw.strip()
        items = [str(item) for item in _json(text, name)] if text.startswith("[") else text.split(",")
    else:
        raise ConfigError(f"{name} must be a list or a comma-separated string, got {raw!r}")
    cleaned = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    return cleaned


def _string_map(raw: Any, name: str) -> dict[str, str]:
    if raw is None or raw == "":
        return {}
    value = _json(raw, name) if isinstance(raw, str) else raw
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object, got {raw!r}")
    return {str(key): str(item) for key, item in value.items()}


def _json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from exc
