"""`SignedPoster` sends the request boto3's client would send, and reads AWS's answers as it does."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config

from dynamowave.local.management_api import BytesBody
from functions.chat.adapters.management_client import SignedPoster
from functions.chat.domain.ports import Gone, Refused, Throttled, Transient
from tests.ports import closed_port

ENDPOINT = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
CONNECTION = "Ab3dEfGhIAMCJ-Q="  # API Gateway ids end in "=", which the URL must encode


def _client(endpoint: str = ENDPOINT) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1"
    )
    config = Config(retries={"total_max_attempts": 1})
    return session, session.client("apigatewaymanagementapi", endpoint_url=endpoint, config=config)


def _answering(client: Any, status: int, error_type: str = "") -> list[Any]:
    """Answer every request the client's events see (no network), keeping the requests."""
    seen: list[Any] = []
    headers = HTTPHeaders.from_dict({"x-amzn-ErrorType": error_type} if error_type else {})

    def answer(request: Any, **_: Any) -> AWSResponse:
        seen.append(request)
        return AWSResponse(request.url, status, headers, BytesBody(b"{}" if error_type else b""))

    client.meta.events.register("before-send.apigatewaymanagementapi.PostToConnection", answer)
    return seen


def _header(request: Any, name: str) -> str:
    value = request.headers[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def _poster(session: Any, client: Any) -> SignedPoster:
    return SignedPoster(client, session.get_credentials(), pool_size=2, connect_timeout=1, read_timeout=1)


def test_the_signed_request_is_the_one_boto3_sends() -> None:
    session, client = _client()
    seen = _answering(client, 200)
    client.post_to_connection(ConnectionId=CONNECTION, Data=b'{"type":"message"}')
    _poster(session, client).post(CONNECTION, b'{"type":"message"}')
    by_boto3, by_poster = seen
    assert by_poster.method == by_boto3.method == "POST"
    assert by_poster.url == by_boto3.url == f"{ENDPOINT}/@connections/Ab3dEfGhIAMCJ-Q%3D"
    assert by_poster.body == by_boto3.body
    scopes = [_header(r, "Authorization").split("Credential=")[1].split(",")[0] for r in seen]
    assert [scope.split("/", 2)[2] for scope in scopes] == ["eu-west-1/execute-api/aws4_request"] * 2
    assert all(scope.startswith("AKIDEXAMPLE/") for scope in scopes)
    assert _header(by_poster, "X-Amz-Date")


@pytest.mark.parametrize(
    ("status", "error_type", "raised"),
    [
        (410, "GoneException", Gone),
        (429, "LimitExceededException", Throttled),
        (500, "InternalServerErrorException", Transient),
        (413, "PayloadTooLargeException", Refused),
        (403, "ForbiddenException", Refused),
    ],
)
def test_error_answers_become_the_fan_outs_kinds_of_failure(
    status: int, error_type: str, raised: type[Exception]
) -> None:
    session, client = _client()
    _answering(client, status, error_type)
    with pytest.raises(raised):
        _poster(session, client).post(CONNECTION, b"{}")


def test_an_unreachable_endpoint_is_transient() -> None:
    session, client = _client(f"http://127.0.0.1:{closed_port()}/prod")
    with pytest.raises(Transient):
        _poster(session, client).post(CONNECTION, b"{}")
