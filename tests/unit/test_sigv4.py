"""The runtime's SigV4 verifier against requests signed by botocore itself (dynamowave/local/sigv4.py)."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dynamowave.local.sigv4 import (
    LOCAL_CREDENTIALS,
    LocalCredentials,
    SignatureRejected,
    SigV4Verifier,
    sign,
)

URL = "http://127.0.0.1:8765/local/@connections/Ab3dEfGhIAMCJ-Q%3D"
REGION = "us-east-1"


def signed(
    credentials: LocalCredentials = LOCAL_CREDENTIALS,
    *,
    url: str = URL,
    body: bytes = b'{"type":"message"}',
    region: str = REGION,
    service: str = "execute-api",
    method: str = "POST",
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(
        Credentials(credentials.access_key, credentials.secret_key, credentials.token), service, region
    ).add_auth(request)
    headers = dict(request.headers.items())
    headers["Host"] = "127.0.0.1:8765"  # what the HTTP client adds on the wire
    headers["User-Agent"] = "Boto3/1.x"  # never signed by botocore
    return headers


def verifier(**kwargs: object) -> SigV4Verifier:
    return SigV4Verifier([LOCAL_CREDENTIALS], region=REGION, **cast(Any, kwargs))


def rejection(
    headers: dict[str, str], *, body: bytes = b'{"type":"message"}', url: str = URL, method: str = "POST"
) -> str:
    with pytest.raises(SignatureRejected) as caught:
        verifier().verify(method, url, headers, body)
    assert caught.value.rejection.status == 403
    return caught.value.rejection.error_type


def test_a_request_signed_by_botocore_verifies_and_names_its_principal() -> None:
    verified = verifier().verify("POST", URL, signed(), b'{"type":"message"}')
    assert verified.principal == "local"


def test_get_and_delete_with_no_body_verify() -> None:
    for method in ("GET", "DELETE"):
        assert verifier().verify(method, URL, signed(method=method, body=b""), b"").principal == "local"


def test_unsigned_request_is_missing_authentication_token() -> None:
    assert rejection({"Host": "127.0.0.1:8765"}) == "MissingAuthenticationTokenException"


def test_wrong_secret_does_not_match() -> None:
    wrong = LocalCredentials("testing", "not-the-secret", "testing", "x")
    assert rejection(signed(wrong)) == "InvalidSignatureException"


def test_unknown_access_key_and_wrong_session_token_are_invalid_tokens() -> None:
    assert (
        rejection(signed(LocalCredentials("AKIAOTHER", "testing", "testing", "x")))
        == "UnrecognizedClientException"
    )
    assert (
        rejection(signed(LocalCredentials("testing", "testing", "other-token", "x")))
        == "UnrecognizedClientException"
    )


def test_tampered_body_path_or_method_does_not_match() -> None:
    headers = signed()
    assert rejection(headers, body=b'{"type":"other"}') == "InvalidSignatureException"
    assert rejection(headers, url=URL.replace("Q%3D", "R%3D")) == "InvalidSignatureException"
    assert rejection(headers, method="DELETE") == "InvalidSignatureException"


def test_other_region_or_service_is_refused() -> None:
    assert rejection(signed(region="eu-west-1")) == "InvalidSignatureException"
    assert rejection(signed(service="dynamodb")) == "InvalidSignatureException"


def test_malformed_authorization_is_incomplete() -> None:
    headers = signed()
    headers["Authorization"] = (
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/execute-api/aws4_request"
    )
    assert rejection(headers) == "IncompleteSignatureException"


def test_signature_older_than_five_minutes_expired() -> None:
    headers = signed()
    later = SigV4Verifier([LOCAL_CREDENTIALS], region=REGION, clock=lambda: time.time() + 301)
    with pytest.raises(SignatureRejected) as caught:
        later.verify("POST", URL, headers, b'{"type":"message"}')
    assert caught.value.rejection.message.startswith("Signature expired")
    within = SigV4Verifier([LOCAL_CREDENTIALS], region=REGION, clock=lambda: time.time() + 200)
    assert within.verify("POST", URL, headers, b'{"type":"message"}').principal == "local"


def test_sign_helper_produces_headers_the_verifier_accepts() -> None:
    headers = sign(LOCAL_CREDENTIALS, "GET", "http://127.0.0.1:8765/admin/rooms?limit=5&a=b", region=REGION)
    headers["Host"] = "127.0.0.1:8765"
    verified = verifier().verify("GET", "http://127.0.0.1:8765/admin/rooms?limit=5&a=b", headers, b"")
    assert verified.credentials == LOCAL_CREDENTIALS


def test_repeated_header_values_as_pairs() -> None:
    pairs = [*signed().items(), ("X-Extra", "1"), ("X-Extra", "2")]
    assert verifier().verify("POST", URL, pairs, b'{"type":"message"}').principal == "local"
