"""SigV4 verification for the runtime's own AWS-style HTTP APIs, answering as API Gateway does.

The signature is never re-implemented: `SigV4Verifier` rebuilds the request it received as a
botocore ``AWSRequest`` (same method, raw path and query, the headers the caller listed as
signed, the body) and recomputes the signature with botocore's own ``SigV4Auth`` at the
caller's timestamp. A request signed with credentials the runtime does not know, with the wrong
secret, for another region or service, or too long ago is refused with the 403 and the
``x-amzn-ErrorType`` API Gateway sends, so botocore raises the same exceptions locally as on AWS.

One verifier serves every signed surface of the runtime: the Management API (``@connections``,
docs/local-runtime.md) and the operator API under ``/admin``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from botocore.auth import EMPTY_SHA256_HASH, SIGV4_TIMESTAMP, UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM: Final = "AWS4-HMAC-SHA256"
EXECUTE_API: Final = "execute-api"
# API Gateway refuses a signature more than 5 minutes away from its clock, either way.
MAX_SKEW_SECONDS: Final = 300.0


@dataclass(frozen=True)
class LocalCredentials:
    """Credentials the runtime knows, and who they belong to (a function, an operator)."""

    access_key: str
    secret_key: str
    token: str | None
    principal: str

    def as_botocore(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key, self.token)

    def environment(self) -> dict[str, str]:
        """The variables boto3 reads these credentials from."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        if self.token:
            env["AWS_SESSION_TOKEN"] = self.token
        return env


# What the runtime, its functions and its clients sign with unless told otherwise (moto's own
# test credentials, so the embedded moto accepts them too). `dynamowave serve` prints them.
LOCAL_CREDENTIALS: Final = LocalCredentials("testing", "testing", "testing", "local")


@dataclass(frozen=True)
class Rejection:
    """Why a request's signature was refused: API Gateway's status, error type and message."""

    error_type: str
    message: str
    status: int = 403


class SignatureRejected(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


MISSING_TOKEN: Final = Rejection("MissingAuthenticationTokenException", "Missing Authentication Token")
INVALID_TOKEN: Final = Rejection(
    "UnrecognizedClientException", "The security token included in the request is invalid."
)
MISMATCH: Final = Rejection(
    "InvalidSignatureException",
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.",
)


@dataclass(frozen=True)
class Verified:
    """A request whose signature checked out, and whose credentials signed it."""

    credentials: LocalCredentials
    region: str
    service: str

    @property
    def principal(self) -> str:
        return self.credentials.principal


@dataclass(frozen=True)
class _Authorization:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def _parse_authorization(value: str) -> _Authorization:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureRejected(
            Rejection("IncompleteSignatureException", f"Unsupported Authorization Type: {algorithm!r}")
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, _, field_value = part.strip().partition("=")
        fields[key] = field_value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise SignatureRejected(
            Rejection(
                "IncompleteSignatureException",
                f"Authorization header requires {', '.join(repr(m) for m in missing)} parameter(s).",
            )
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise SignatureRejected(
            Rejection(
                "IncompleteSignatureException",
                "Credential must have exactly 5 slash-delimited elements, e.g. "
                "keyid/date/region/service/aws4_request.",
            )
        )
    return _Authorization(
        access_key=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


class _ReceivedRequestSigner(SigV4Auth):
    """botocore's SigV4 over a received request: exactly the headers its signer listed."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: HTTPHeaders) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._signed


Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def _header_pairs(headers: Headers) -> list[tuple[str, str]]:
    if isinstance(headers, Mapping):
        items: Any = headers.items()
        # A multi-dict (aiohttp, HTTPHeaders) yields every value of a repeated header.
        return [(str(k), _text(v)) for k, v in items]
    return [(str(k), _text(v)) for k, v in headers]


def _host_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return _host_of_origin(f"{scheme}://{rest.split('/', 1)[0]}")


@functools.lru_cache(maxsize=64)  # one origin per endpoint: parsed once, not per post
def _host_of_origin(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


@functools.lru_cache(maxsize=256)  # every post signed in the same second has the same stamp
def _signed_at(timestamp: str) -> datetime:
    return datetime.strptime(timestamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)


class SigV4Verifier:
    """Checks SigV4 ``Authorization`` headers against the credentials the runtime knows."""

    def __init__(
        self,
        credentials: Iterable[LocalCredentials],
        *,
        region: str,
        service: str = EXECUTE_API,
        clock: Callable[[], float] = time.time,
        max_skew_seconds: float = MAX_SKEW_SECONDS,
    ) -> None:
        self._credentials = {c.access_key: c for c in credentials}
        self.region = region
        self.service = service
        self._clock = clock
        self._max_skew = max_skew_seconds

    def add(self, credentials: LocalCredentials) -> None:
        self._credentials[credentials.access_key] = credentials

    def known(self) -> tuple[LocalCredentials, ...]:
        """Every credential it accepts (a worker process builds the same verifier from them)."""
        return tuple(self._credentials.values())

    def verify(self, method: str, url: str, headers: Headers, body: bytes) -> Verified:
        """``url`` is the full URL with the raw (still percent-encoded) path and query as sent.

        Raises `SignatureRejected` with API Gateway's answer when the signature does not hold.
        """
        pairs = _header_pairs(headers)
        lowered: dict[str, list[str]] = {}
        for name, value in pairs:
            lowered.setdefault(name.lower(), []).append(value)
        authorization = lowered.get("authorization", [""])[0]
        if not authorization:
            raise SignatureRejected(MISSING_TOKEN)
        parsed = _parse_authorization(authorization)
        credentials = self._credentials.get(parsed.access_key)
        if credentials is None:
            raise SignatureRejected(INVALID_TOKEN)
        if (
            credentials.token is not None
            and lowered.get("x-amz-security-token", [""])[0] != credentials.token
        ):
            raise SignatureRejected(INVALID_TOKEN)
        if parsed.service != self.service:
            raise SignatureRejected(
                Rejection(
                    "InvalidSignatureException",
                    f"Credential should be scoped to correct service: '{self.service}'.",
                )
            )
        if parsed.region != self.region:
            raise SignatureRejected(
                Rejection("InvalidSignatureException", "Credential should be scoped to a valid region.")
            )
        timestamp = lowered.get("x-amz-date", [""])[0]
        self._check_time(timestamp, parsed.date)
        missing = [name for name in ("host", "x-amz-date") if name not in parsed.signed_headers]
        if missing:
            raise SignatureRejected(
                Rejection(
                    "InvalidSignatureException",
                    f"'{missing[0]}' must be a 'SignedHeader' in the AWS Authorization.",
                )
            )
        self._check_payload_hash(lowered.get("x-amz-content-sha256", [None])[0], body)

        if "host" not in lowered:
            # A request caught before it is sent (in process) has no Host yet: the one it would get.
            lowered["host"] = [_host_of(url)]
        signed = HTTPHeaders()
        for name in parsed.signed_headers:
            for value in lowered.get(name, []):
                signed[name] = value
        request = AWSRequest(method=method.upper(), url=url, data=body)
        for name in parsed.signed_headers:
            for value in lowered.get(name, []):
                request.headers.add_header(name, value)
        request.context["timestamp"] = timestamp
        if "X-Amz-Content-SHA256" not in request.headers:
            # The payload hash the signer would compute, given so that it does not prepare the
            # whole request to read its body (a third of a verification); not a signed header.
            request.headers["X-Amz-Content-SHA256"] = (
                hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH
            )
        signer = _ReceivedRequestSigner(credentials.as_botocore(), self.service, self.region, signed)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, parsed.signature):
            raise SignatureRejected(MISMATCH)
        return Verified(credentials, parsed.region, parsed.service)

    def _check_time(self, timestamp: str, scope_date: str) -> None:
        try:
            signed_at = _signed_at(timestamp)
        except ValueError:
            raise SignatureRejected(
                Rejection(
                    "IncompleteSignatureException",
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                )
            ) from None
        if timestamp[:8] != scope_date:
            raise SignatureRejected(
                Rejection(
                    "InvalidSignatureException",
                    f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                    f"from HTTP: '{scope_date}' != '{timestamp[:8]}', from '{timestamp}'.",
                )
            )
        now = self._clock()
        skew = signed_at.timestamp() - now
        if abs(skew) > self._max_skew:

            def stamp(epoch: float) -> str:
                return datetime.fromtimestamp(epoch, UTC).strftime(SIGV4_TIMESTAMP)

            if skew < 0:
                message = (
                    f"Signature expired: {timestamp} is now earlier than {stamp(now - self._max_skew)} "
                    f"({stamp(now)} - 5 min.)"
                )
            else:
                message = (
                    f"Signature not yet current: {timestamp} is still later than "
                    f"{stamp(now + self._max_skew)} ({stamp(now)} + 5 min.)"
                )
            raise SignatureRejected(Rejection("InvalidSignatureException", message))

    @staticmethod
    def _check_payload_hash(declared: str | None, body: bytes) -> None:
        """A declared payload hash is signed as declared: it must be the body's (or unsigned)."""
        if declared is None or declared == UNSIGNED_PAYLOAD:
            return
        actual = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH
        if declared != actual:
            raise SignatureRejected(
                Rejection(
                    "InvalidSignatureException",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                )
            )


def sign(
    credentials: LocalCredentials,
    method: str,
    url: str,
    body: bytes = b"",
    *,
    region: str,
    service: str = EXECUTE_API,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers a botocore client would send for this request (for clients of the runtime's
    signed APIs that are not botocore clients: the admin CLI, tests, curl recipes)."""
    request = AWSRequest(method=method.upper(), url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(credentials.as_botocore(), service, region).add_auth(request)
    return dict(request.headers.items())
