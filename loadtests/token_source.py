"""Where the load test's tokens come from, for a local runtime or a deployed stack.

In order of preference:

1. ``DYNAMOWAVE_TOKEN_FILE``: one ready-made token per line (user i gets line i mod n); for a
   stack whose secret the tester may not read.
2. ``DYNAMOWAVE_JWT_SECRET``: the secret itself (the variable `dynamowave serve` reads).
3. ``DYNAMOWAVE_SECRET_ARN``: a deployed stack's Secrets Manager secret, read once with boto3.
4. A ``ws://`` host only: the local runtime's dev secret in its state folder
   (``$DYNAMOWAVE_STATE_DIR`` or ``./.dynamowave``, file ``jwt-secret``), never created here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from functions.chat.adapters.secrets import secret_from_string
from functions.chat.auth import mint_token

TOKEN_FILE_ENV = "DYNAMOWAVE_TOKEN_FILE"
JWT_SECRET_ENV = "DYNAMOWAVE_JWT_SECRET"
SECRET_ARN_ENV = "DYNAMOWAVE_SECRET_ARN"
STATE_DIR_ENV = "DYNAMOWAVE_STATE_DIR"
LOCAL_SECRET_FILE = "jwt-secret"  # the runtime's dev secret (dynamowave.local.dev_tokens)
TOKEN_TTL_SECONDS = 4 * 3600


class NoTokenSource(RuntimeError):
    """Nothing in the environment says how to authenticate against this host."""


@dataclass(frozen=True)
class TokenSource:
    secret: str | None = None
    tokens: tuple[str, ...] = ()

    def token(self, index: int, user_id: str) -> str:
        if self.tokens:
            return self.tokens[index % len(self.tokens)]
        assert self.secret is not None
        return mint_token(self.secret, user_id, ttl_seconds=TOKEN_TTL_SECONDS)

    @property
    def describes(self) -> str:
        return f"{len(self.tokens)} tokens from a file" if self.tokens else "tokens minted from the secret"


def _secret_from_arn(arn: str) -> str:
    import boto3

    response = boto3.client("secretsmanager").get_secret_value(SecretId=arn)
    return secret_from_string(str(response["SecretString"]))


def _local_dev_secret() -> str | None:
    path = Path(os.environ.get(STATE_DIR_ENV) or ".dynamowave") / LOCAL_SECRET_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def token_source(host: str) -> TokenSource:
    token_file = os.environ.get(TOKEN_FILE_ENV)
    if token_file:
        lines = Path(token_file).read_text(encoding="utf-8").split()
        if not lines:
            raise NoTokenSource(f"{TOKEN_FILE_ENV}={token_file} holds no tokens")
        return TokenSource(tokens=tuple(lines))
    secret = os.environ.get(JWT_SECRET_ENV)
    if secret:
        return TokenSource(secret=secret)
    arn = os.environ.get(SECRET_ARN_ENV)
    if arn:
        return TokenSource(secret=_secret_from_arn(arn))
    if host.startswith("ws://"):
        local = _local_dev_secret()
        if local:
            return TokenSource(secret=local)
    raise NoTokenSource(
        f"set {JWT_SECRET_ENV}, {SECRET_ARN_ENV} or {TOKEN_FILE_ENV} "
        "(or run against a local runtime whose state folder holds its dev secret)"
    )
