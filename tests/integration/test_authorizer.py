"""The $connect REQUEST authorizer, called as API Gateway calls it."""

from __future__ import annotations

import base64
import json
import time
from typing import Any, cast

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dynamowave.testing.aws import LambdaContext
from functions.authorizer.handler import handler
from functions.chat import deps
from functions.chat.auth import Identity, mint_token
from functions.chat.settings import ENV
from tests.integration.events import METHOD_ARN, authorize, authorizer_event

SECRET = "authorizer-test-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV.JWT_SECRET, SECRET)
    deps.reset()


def effect(result: dict[str, Any]) -> str:
    return str(result["policyDocument"]["Statement"][0]["Effect"])


def encode(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_valid_token_is_allowed_with_identity_in_context() -> None:
    result = authorize(mint_token(SECRET, "alice", name="Alice A.", rooms=["general", "ops"]))
    assert effect(result) == "Allow"
    assert result["principalId"] == "alice"
    assert result["policyDocument"]["Statement"][0]["Resource"] == METHOD_ARN
    assert result["context"] == {
        "userId": "alice",
        "name": "Alice A.",
        "rooms": '["general", "ops"]',
        "mod": "",
    }
    assert Identity.from_context(result["context"]) == Identity("alice", "Alice A.", ("general", "ops"))
    assert not Identity.from_context(result["context"]).may_moderate("general")


@pytest.mark.parametrize(
    ("claim", "context", "moderated", "not_moderated"),
    [
        (["ops", "team.a"], '["ops", "team.a"]', ["ops", "team.a"], ["general"]),
        ("*", "*", ["ops", "anything"], []),
    ],
)
def test_mod_claim_travels_in_the_context_and_names_the_moderated_rooms(
    claim: Any, context: str, moderated: list[str], not_moderated: list[str]
) -> None:
    result = authorize(mint_token(SECRET, "mia", mod=claim))
    assert effect(result) == "Allow"
    assert result["context"]["mod"] == context
    identity = Identity.from_context(result["context"])
    assert all(identity.may_moderate(room) for room in moderated)
    assert not any(identity.may_moderate(room) for room in not_moderated)


@pytest.mark.parametrize("claim", ["ops", ["bad room"], [1], {"ops": True}, ["r"] * 101, True])
def test_a_malformed_mod_claim_refuses_the_whole_token(claim: Any) -> None:
    token = encode({"sub": "mallory", "exp": FAR, "mod": claim})
    assert effect(authorize(token)) == "Deny"


def test_absent_rooms_claim_means_any_room() -> None:
    context = authorize(mint_token(SECRET, "bob"))["context"]
    assert context["rooms"] == "*"
    assert Identity.from_context(context).may_join("anything")


def test_missing_token_is_unauthorized_401() -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(None)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize("")


now = int(time.time())
# Built at collection: far enough ahead that only the property under test can refuse the token,
# however long the suite runs before this module's tests.
FAR = now + 365 * 86400
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def alg_none_token() -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": "mallory", "exp": FAR}).encode())
    return f"{header}.{payload}."


def rs_hs_confusion_token() -> str:
    # Signed HS256 with the RSA public key as the HMAC secret: the classic confusion attack.
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": "mallory", "exp": FAR}).encode())
    import hashlib
    import hmac

    signature = hmac.new(RSA_PUBLIC_PEM, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def tampered_token() -> str:
    header, _, signature = mint_token(SECRET, "alice").split(".")
    payload = b64(json.dumps({"sub": "admin", "exp": FAR}).encode())
    return f"{header}.{payload}.{signature}"


REFUSED = {
    "garbage": "not-a-jwt",
    "three garbage parts": "a.b.c",
    "expired": encode({"sub": "alice", "exp": now - 1}),
    "not yet valid": encode({"sub": "alice", "exp": FAR, "nbf": now + 30 * 86400}),
    "wrong key": encode({"sub": "alice", "exp": FAR}, key="another-secret-0123456789abcdef"),
    "alg none": alg_none_token(),
    "RS256 signed": jwt.encode({"sub": "alice", "exp": FAR}, RSA_KEY, algorithm="RS256"),
    "RS/HS confusion": rs_hs_confusion_token(),
    "HS512": encode({"sub": "alice", "exp": FAR}, algorithm="HS512"),
    "tampered payload": tampered_token(),
    "missing sub": encode({"exp": FAR}),
    "missing exp": encode({"sub": "alice"}),
    "sub with bad characters": encode({"sub": "al ice", "exp": FAR}),
    "sub too long": encode({"sub": "a" * 65, "exp": FAR}),
    "sub not a string": encode({"sub": 42, "exp": FAR}),
    "rooms not a list": encode({"sub": "alice", "exp": FAR, "rooms": "general"}),
    "rooms with a bad name": encode({"sub": "alice", "exp": FAR, "rooms": ["ok", "not ok"]}),
    "rooms with a number": encode({"sub": "alice", "exp": FAR, "rooms": [1]}),
    "name not a string": encode({"sub": "alice", "exp": FAR, "name": {"x": 1}}),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_tokens_are_denied_403(case: str) -> None:
    result = authorize(REFUSED[case])
    assert effect(result) == "Deny"
    assert "context" not in result


def test_warmup_ping_does_nothing() -> None:
    assert handler({"warmup": True}, LambdaContext()) == {"warmup": True}


def test_secret_from_secrets_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    with mock_aws():
        import boto3

        arn = boto3.client("secretsmanager").create_secret(
            Name="jwt", SecretString="from-secrets-manager-0123456789abcdef"
        )["ARN"]
        monkeypatch.delenv(ENV.JWT_SECRET)
        monkeypatch.setenv(ENV.JWT_SECRET_ARN, arn)
        deps.reset()
        assert effect(authorize(mint_token("from-secrets-manager-0123456789abcdef", "alice"))) == "Allow"
        assert effect(authorize(mint_token(SECRET, "alice"))) == "Deny"


# ----- ALLOWED_ORIGINS: the browser Origin policy at $connect (docs/operations.md) ----------------


def authorize_from(origin: str | None, header: str = "Origin") -> dict[str, Any]:
    event = authorizer_event(mint_token(SECRET, "alice"))
    if origin is not None:
        event["headers"][header] = origin
    result: dict[str, Any] = handler(event, LambdaContext())
    return result


@pytest.mark.parametrize(
    ("origin", "header", "allowed"),
    [
        ("https://chat.example.com", "Origin", True),
        ("https://CHAT.example.com", "origin", True),  # headers and hosts are case-insensitive
        ("http://localhost:5173", "Origin", True),
        (None, "Origin", True),  # not a browser page: the list does not apply
        ("https://evil.example", "Origin", False),
        ("https://chat.example.com.evil.example", "Origin", False),
        ("http://chat.example.com", "Origin", False),  # another scheme is another origin
        ("null", "Origin", False),
    ],
)
def test_allowed_origins_refuse_foreign_pages(
    monkeypatch: pytest.MonkeyPatch, origin: str | None, header: str, allowed: bool
) -> None:
    monkeypatch.setenv(ENV.ALLOWED_ORIGINS, "https://chat.example.com/, http://localhost:5173")
    deps.reset()
    result = authorize_from(origin, header)
    assert effect(result) == ("Allow" if allowed else "Deny")
    assert ("context" in result) is allowed


def test_without_allowed_origins_any_origin_connects() -> None:
    assert effect(authorize_from("https://anywhere.example")) == "Allow"


ORIGIN_SECRET = "origin-secret-0123456789abcdef"


def _via(headers: dict[str, str], token: str) -> dict[str, Any]:
    from tests.integration.events import authorizer_event

    event = authorizer_event(token)
    event["headers"] = {"Host": "d111.cloudfront.net", **headers}
    return cast("dict[str, Any]", handler(event, LambdaContext()))


def test_behind_the_edge_a_handshake_without_the_origin_header_is_denied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """edge=true: the execute-api URL must not be a way around CloudFront and WAF."""
    from functions.chat.schema import ORIGIN_HEADER

    monkeypatch.setenv(ENV.ORIGIN_SECRET, ORIGIN_SECRET)
    deps.reset()
    token = mint_token(SECRET, "alice")
    assert effect(_via({}, token)) == "Deny"
    assert effect(_via({ORIGIN_HEADER: "guessed"}, token)) == "Deny"
    assert effect(_via({ORIGIN_HEADER: ORIGIN_SECRET}, token)) == "Allow"
    assert effect(_via({ORIGIN_HEADER.lower(): ORIGIN_SECRET}, token)) == "Allow"  # case-insensitive
    # The origin header admits nobody on its own: the token is still checked.
    assert effect(
        _via({ORIGIN_HEADER: ORIGIN_SECRET}, mint_token("another-secret-0123456789abcdef", "a"))
    ) == ("Deny")


def test_without_an_edge_no_origin_header_is_needed() -> None:
    assert effect(_via({}, mint_token(SECRET, "alice"))) == "Allow"


def test_origin_secret_from_secrets_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    from functions.chat.schema import ORIGIN_HEADER

    with mock_aws():
        import boto3

        arn = boto3.client("secretsmanager").create_secret(Name="origin", SecretString=ORIGIN_SECRET)["ARN"]
        monkeypatch.setenv(ENV.ORIGIN_SECRET_ARN, arn)
        deps.reset()
        token = mint_token(SECRET, "alice")
        assert effect(_via({ORIGIN_HEADER: ORIGIN_SECRET}, token)) == "Allow"
        assert effect(_via({}, token)) == "Deny"
