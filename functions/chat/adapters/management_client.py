"""API Gateway Management API adapter: post to, inspect and close client connections.

botocore's own retries are off: the fan-out decides how to retry (backoff with full jitter
bounded by the invocation's remaining time), and a 410 must never be retried.

PostToConnection, one call per recipient of every message, does not go through the boto3
client's call machinery: `SignedPoster` sends the request botocore would send (same URL, body
and SigV4 signature, made by botocore's own signer) over a urllib3 pool, at about a third of
the client CPU per post (``python -m dynamowave.bench.posting`` prints both). GetConnection and
DeleteConnection, rare, stay on the client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlsplit

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError
from botocore.hooks import first_non_none_response

from functions.chat.domain.ports import ConnectionInfo, Gone, PostError, Refused, Throttled, Transient

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient


RETRYABLE_CODES: Final = frozenset(
    {"LimitExceededException", "ThrottlingException", "TooManyRequestsException"}
)


def classify_status(connection_id: str, status: int, code: str) -> PostError:
    """An error answer (HTTP status, AWS error code) as the fan-out's kind of failure."""
    if code == "GoneException" or status == 410:
        return Gone(connection_id, code or "410")
    if code in RETRYABLE_CODES or status == 429:
        return Throttled(connection_id, code or "429")
    if status >= 500 or status == 0:
        return Transient(connection_id, f"{code} ({status})")
    return Refused(connection_id, f"{code} ({status})")


def classify(connection_id: str, error: Exception) -> PostError:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return classify_status(connection_id, status, code)
    return Transient(connection_id, f"{type(error).__name__}: {error}")


def error_code(headers: Mapping[str, str], body: bytes) -> str:
    """The AWS error code of a rest-json error answer, read where botocore reads it."""
    code = headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
    if code:
        return code
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    return str(parsed.get("__type") or parsed.get("code") or "").rsplit("#", 1)[-1]


class SignedPoster:
    """PostToConnection as one SigV4-signed HTTP request over a pooled urllib3 connection.

    Handlers registered on the client's ``before-send`` event (moto's in-process mock, test
    doubles) still answer it, exactly as they answer the client's own calls.
    """

    SIGNING_NAME: Final = "execute-api"
    EVENT: Final = "before-send.apigatewaymanagementapi.PostToConnection"

    def __init__(
        self,
        client: ApiGatewayManagementApiClient,
        credentials: Credentials,  # refreshable ones are read afresh for every signature
        *,
        pool_size: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._events = client.meta.events
        self._endpoint = client.meta.endpoint_url.rstrip("/")
        self._region = client.meta.region_name
        self._credentials = credentials
        self._path = urlsplit(self._endpoint).path
        # block=True: never more sockets than posting threads; retries are the fan-out's job.
        self._pool = urllib3.connection_from_url(
            self._endpoint,
            maxsize=pool_size,
            block=True,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,
        )

    def post(self, connection_id: str, data: bytes) -> None:
        # botocore's encoding of a URI label: everything but unreserved characters.
        resource = f"/@connections/{quote(connection_id, safe='-._~')}"
        request = AWSRequest(method="POST", url=self._endpoint + resource, data=data)
        SigV4Auth(self._credentials.get_frozen_credentials(), self.SIGNING_NAME, self._region).add_auth(
            request
        )
        prepared = request.prepare()
        stubbed = first_non_none_response(self._events.emit(self.EVENT, request=prepared))
        if stubbed is not None:
            status, headers, body = stubbed.status_code, stubbed.headers, stubbed.content
        else:
            try:
                response = self._pool.urlopen(
                    "POST",
                    self._path + resource,
                    body=data,
                    headers=dict(prepared.headers.items()),
                    redirect=False,
                )
            except urllib3.exceptions.HTTPError as error:
                raise Transient(connection_id, f"{type(error).__name__}: {error}") from error
            status, headers, body = response.status, response.headers, response.data
        if status >= 300:
            raise classify_status(connection_id, status, error_code(headers, body))


class ManagementClient:
    def __init__(self, client: ApiGatewayManagementApiClient, poster: SignedPoster) -> None:
        self._client = client
        self._poster = poster

    def post(self, connection_id: str, data: bytes) -> None:
        self._poster.post(connection_id, data)

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
