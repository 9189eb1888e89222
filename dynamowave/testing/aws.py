"""Embedded moto with the stack's tables and queues, the functions' environment, Lambda's context."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dynamowave.local.provisioning import Resources


@contextmanager
def moto_resources(
    prefix: str, *, visibility_timeout: int = 30, max_receive_count: int = 3
) -> Iterator[Resources]:
    """moto in this process for the duration, patched as the runtime patches it, with the tables
    and queues `functions.chat.schema` defines; the functions' cached clients forgotten after."""
    from moto import mock_aws

    from dynamowave.compat.moto_patches import serialize_dynamodb
    from dynamowave.local.provisioning import provision
    from functions.chat import deps

    serialize_dynamodb()  # atomic conditional writes: handlers run from several threads at once
    try:
        with mock_aws():
            yield provision(
                prefix=prefix,
                region="us-east-1",
                visibility_timeout=visibility_timeout,
                max_receive_count=max_receive_count,
            )
    finally:
        deps.reset()


class SetsEnv(Protocol):
    def setenv(self, name: str, value: str, prepend: str | None = None) -> None: ...


def configure_functions(
    env: SetsEnv,
    resources: Resources,
    *,
    management_endpoint: str,
    jwt_secret: str,
    overrides: Mapping[str, str | int] | None = None,
) -> None:
    """The functions' environment as the stack sets it (plus `overrides`), then fresh clients."""
    from functions.chat import deps

    values: dict[str, str | int] = {
        **resources.function_environment(management_endpoint=management_endpoint, jwt_secret=jwt_secret),
        **(overrides or {}),
    }
    for key, value in values.items():
        env.setenv(key, str(value))
    deps.reset()


class LambdaContext:
    """What Lambda passes as `context` (the attributes powertools and the functions read).

    `remaining_ms` is what get_remaining_time_in_millis answers, and it stands still: a budget
    runs out where a test lowers it (e.g. from a fake's callback), never because a loaded
    machine was slow, so deadline tests stay deterministic."""

    function_name = "test-function"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    memory_limit_in_mb = 1024
    aws_request_id = "11111111-2222-3333-4444-555555555555"
    log_group_name = "/aws/lambda/test-function"
    log_stream_name = "2026/11/21/[$LATEST]abcdef"

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def create_key_value_table(client: Any, name: str) -> None:
    """A pay-per-request table keyed by string ``pk`` and ``sk``, shaped as the rooms table."""
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
