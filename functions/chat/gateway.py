"""API Gateway Management API adapter: post to, inspect and close client connections.

botocore's own retries are off: the fan-out decides how to retry (backoff with full jitter
bounded by the invocation's remaining time), and a 410 must never be retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient


class PostError(Exception):
    """A failed Management API call; `retryable` says whether backing off may help."""

    retryable: bool = False

    def __init__(self, connection_id: str, detail: str) -> None:
        super().__init__(f"{connection_id}: {detail}")
        self.connection_id = connection_id
        self.detail = detail


class Gone(PostError):
    """410: the connection no longer exists; its records are stale."""


class Throttled(PostError):
    """429 / LimitExceeded: the account's API Gateway throttle."""

    retryable = True


class Transient(PostError):
    """5xx or a connection error: worth retrying."""

    retryable = True


class Refused(PostError):
    """403 / 413 and other 4xx: retrying cannot help (logged and skipped)."""


RETRYABLE_CODES: Final = frozenset(
    {"LimitExceededException", "ThrottlingException", "TooManyRequestsException"}
)


def backoff_seconds(retry: int, *, base_ms: int, cap_ms: int, draw: Callable[[float, float], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**retry)] (AWS's recommended backoff)."""
    return draw(0.0, min(cap_ms, base_ms * 2**retry)) / 1000.0


@dataclass(frozen=True)
class ConnectionInfo:
    connected_at: str
    last_active_at: str
    source_ip: str


def classify(connection_id: str, error: Exception) -> PostError:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == "GoneException" or status == 410:
            return Gone(connection_id, code or "410")
        if code in RETRYABLE_CODES or status == 429:
            return Throttled(connection_id, code or "429")
        if status >= 500 or status == 0:
            return Transient(connection_id, f"{code} ({status})")
        return Refused(connection_id, f"{code} ({status})")
    return Transient(connection_id, f"{type(error).__name__}: {error}")


class ManagementApi:
    def __init__(self, client: ApiGatewayManagementApiClient) -> None:
        self._client = client

    def post(self, connection_id: str, data: bytes) -> None:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except (ClientError, BotoCoreError) as error:
            raise classify(connection_id, error) from error

    def get(self, connection_id: str) -> ConnectionInfo:
        try:
            response = self._client.get_connection(ConnectionId=connection_id)
        except (ClientError, BotoCoreError) as error:
            raise classify(connection_id, error) from error
        return ConnectionInfo(
            connected_at=str(response.get("ConnectedAt", "")),
            last_active_at=str(response.get("LastActiveAt", "")),
            source_ip=str(response.get("Identity", {}).get("SourceIp", "")),
        )

    def delete(self, connection_id: str) -> None:
        try:
            self._client.delete_connection(ConnectionId=connection_id)
        except (ClientError, BotoCoreError) as error:
            raise classify(connection_id, error) from error
