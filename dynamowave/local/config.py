"""Every knob of the local runtime, defaulting to what AWS does (see docs/local-runtime.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dynamowave.local.faults import FaultConfig
from functions.chat.schema import FUNCTIONS

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
API_ID = "local"
RESOURCE_PREFIX = "dynamowave"

# API Gateway WebSocket quotas.
FRAME_LIMIT_BYTES = 32 * 1024
MESSAGE_LIMIT_BYTES = 128 * 1024
IDLE_TIMEOUT_SECONDS = 600.0
MAX_DURATION_SECONDS = 7200.0
# API Gateway stops waiting for an integration after 29 s, whatever the function's own timeout.
INTEGRATION_TIMEOUT_SECONDS = 29.0
# Account-level throttle that a stage inherits unless it sets its own (requests/s, burst).
DEFAULT_THROTTLE_RATE = 10_000.0
DEFAULT_THROTTLE_BURST = 5_000


@dataclass(frozen=True)
class FunctionConfig:
    """One Lambda function: its handler string and the limits the CDK stack gives it."""

    name: str
    handler: str
    timeout_seconds: float
    memory_mb: int
    concurrency: int


# Instances a function may run at once here (the stack leaves most unreserved; these bound the
# local thread pools). Memory and timeout come from the stack's own definitions.
LOCAL_CONCURRENCY = {
    "authorizer": 64,
    "ingress": 64,
    "fanout": 8,
    "janitor": 1,
    "operator": 16,
    "redriver": 2,
}


def default_functions() -> dict[str, FunctionConfig]:
    """Every function of the stack, with the stack's handler, timeout and memory."""
    return {
        spec.name: FunctionConfig(
            spec.name, spec.handler, spec.timeout_seconds, spec.memory_mb, LOCAL_CONCURRENCY[spec.name]
        )
        for spec in FUNCTIONS
    }


# The message review function (`dynamowave serve --review-handler`): Lambda's own timeout is its
# limit; the ingress's budget (REVIEW_TIMEOUT_MS) is usually far shorter.
REVIEW_FUNCTION = "review"


def review_function(handler: str) -> FunctionConfig:
    return FunctionConfig(REVIEW_FUNCTION, handler, 10, 128, 16)


@dataclass
class RuntimeConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    stage: str = "local"
    aws_endpoint: str | None = None  # None: start the embedded moto server
    region: str = REGION
    account_id: str = ACCOUNT_ID
    api_id: str = API_ID
    prefix: str = RESOURCE_PREFIX
    # Gateway
    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    max_duration: float = MAX_DURATION_SECONDS
    integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS
    throttle_rate: float = DEFAULT_THROTTLE_RATE
    throttle_burst: int = DEFAULT_THROTTLE_BURST
    frame_limit: int = FRAME_LIMIT_BYTES
    message_limit: int = MESSAGE_LIMIT_BYTES
    # Local attack surface (dynamowave/local/guard.py): extra Host names and WebSocket origins.
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # SQS event source mapping for the fan-out function
    batch_size: int = 10
    batching_window: float = 0.0
    pollers: int = 4
    poll_wait_seconds: int = 1
    max_receive_count: int = 5
    auto_redrive: bool = True  # the redriver consumes the DLQ (False: dead letters wait for a human)
    visibility_timeout: int | None = None  # None: schema.FANOUT_VISIBILITY_TIMEOUT_SECONDS
    # Fan-out invocations in this many worker processes (0: on the runtime's threads; workers.py)
    fanout_workers: int = 0
    # Schedules (0 disables)
    janitor_interval: float = 60.0
    # Functions
    functions: dict[str, FunctionConfig] = field(default_factory=default_functions)
    function_env: dict[str, str] = field(default_factory=dict)  # extra settings, e.g. SHARD_SIZE
    jwt_secret: str | None = None  # None: DYNAMOWAVE_JWT_SECRET, else the state folder's dev secret
    state_dir: Path | None = None
    # Keep the embedded moto's tables and queues in the state folder across restarts
    # (dynamowave/local/journal.py); `dynamowave serve` persists unless --ephemeral.
    persist: bool = False
    fsync: str = "interval"  # "always": fsync every journaled change before answering
    faults: FaultConfig = field(default_factory=FaultConfig)
    iam: bool = False  # enforce the stack's grants on the functions' AWS calls (dynamowave/local/iam.py)
    web_dir: Path | None = None  # None: the packaged dynamowave/web

    def function(self, name: str) -> FunctionConfig:
        return self.functions[name]

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
