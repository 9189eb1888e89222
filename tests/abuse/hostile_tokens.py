"""Hostile JWTs: every way a token can be wrong, named, for the authorizer and handshake tests.

Each builder takes the deployment's secret (so "tampered" and "expired" are otherwise perfect
tokens) and returns the token text. `VALID` builds the one token that must be accepted.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TokenBuilder = Callable[[str], str]

_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PRIVATE_PEM = _RSA_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
RSA_PUBLIC_PEM = _RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {"sub": "mallory", "iat": now, "exp": now + 600, "name": "Mallory"}
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), signature])


def hs256(secret: str | bytes, payload: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def _tampered(secret: str) -> str:
    """A genuine token whose payload was edited (sub -> admin, rooms widened); signature kept."""
    header, _, signature = hs256(secret, claims(rooms=["public"])).split(".")
    payload = b64url(json.dumps(claims(sub="admin")).encode())
    return f"{header}.{payload}.{signature}"


def _signature_stripped(secret: str) -> str:
    header, payload, _ = hs256(secret, claims()).split(".")
    return f"{header}.{payload}."


def _hs_with_public_key(secret: str) -> str:
    # RS/HS confusion: HMAC keyed with the (public) RSA key a confused verifier would use.
    return (
        jwt.encode(claims(), RSA_PUBLIC_PEM, algorithm="HS256")
        if _pyjwt_allows_pem_hmac()
        else _manual_hs(RSA_PUBLIC_PEM, claims())
    )


def _pyjwt_allows_pem_hmac() -> bool:
    try:
        jwt.encode({"x": 1}, RSA_PUBLIC_PEM, algorithm="HS256")
    except jwt.InvalidKeyError:
        return False
    return True


def _manual_hs(key: bytes, payload: dict[str, Any]) -> str:
    import hashlib
    import hmac

    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    signature = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(signature)}"


# Tokens that must be refused: name -> builder(secret).
REFUSED: dict[str, TokenBuilder] = {
    "garbage": lambda secret: "not-a-jwt",
    "garbage-three-parts": lambda secret: "a.b.c",
    "empty-parts": lambda secret: "..",
    "json-garbage": lambda secret: unsigned({"alg": "HS256"}, {"sub": "x"}, "!!!"),
    "expired": lambda secret: hs256(secret, claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
    "not-yet-valid": lambda secret: hs256(secret, claims(nbf=int(time.time()) + 3600)),
    "wrong-key": lambda secret: hs256("some-other-secret-0123456789abcdef", claims()),
    "alg-none": lambda secret: unsigned({"alg": "none", "typ": "JWT"}, claims()),
    "alg-None-case": lambda secret: unsigned({"alg": "None", "typ": "JWT"}, claims()),
    "alg-none-with-signature": lambda secret: unsigned(
        {"alg": "none"}, claims(), hs256(secret, claims()).split(".")[2]
    ),
    "rs256-attacker-key": lambda secret: jwt.encode(claims(), RSA_PRIVATE_PEM, algorithm="RS256"),
    "hs256-keyed-with-rsa-public-key": _hs_with_public_key,
    "hs512-right-secret": lambda secret: jwt.encode(claims(), secret, algorithm="HS512"),
    "tampered-payload": _tampered,
    "signature-stripped": _signature_stripped,
    "missing-exp": lambda secret: hs256(secret, claims(exp=None)),
    "missing-sub": lambda secret: hs256(secret, claims(sub=None)),
    "sub-not-a-user-id": lambda secret: hs256(secret, claims(sub="bob#ROOM")),
    "sub-too-long": lambda secret: hs256(secret, claims(sub="u" * 65)),
    "sub-not-a-string": lambda secret: hs256(secret, claims(sub=12345)),
    "exp-as-string": lambda secret: hs256(secret, claims(exp="9999999999")),
    "rooms-not-a-list": lambda secret: hs256(secret, claims(rooms="*")),
    "rooms-bad-name": lambda secret: hs256(secret, claims(rooms=["ok", "bad room"])),
    "mod-not-a-list": lambda secret: hs256(secret, claims(mod="general")),
    "mod-bad-name": lambda secret: hs256(secret, claims(mod=["ok", "bad room"])),
    "mod-not-strings": lambda secret: hs256(secret, claims(mod=[1, 2])),
    "name-too-long": lambda secret: hs256(secret, claims(name="n" * 65)),
    "jku-header-injection": lambda secret: hs256(
        "attacker-secret-0123456789abcdef", claims(), jku="http://127.0.0.1:1/jwks.json", kid="../../dev/null"
    ),
}


def valid_token(secret: str, **overrides: Any) -> str:
    """The control: a well-formed token the authorizer must accept."""
    return hs256(secret, claims(**{"rooms": ["public"], **overrides}))


KINDS = sorted(REFUSED)
