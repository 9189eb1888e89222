"""Secrets the authorizer reads: given directly (local development and tests) or by Secrets
Manager ARN on AWS (cached 5 min). The JWT signing secret, and with edge=true the origin secret
CloudFront sends in ORIGIN_HEADER."""

from __future__ import annotations

import json

from functions.chat.settings import get_settings

SECRET_CACHE_SECONDS = 300


def jwt_secret() -> str:
    settings = get_settings()
    secret = _secret(settings.jwt_secret, settings.jwt_secret_arn)
    if secret is None:
        raise RuntimeError("neither DYNAMOWAVE_JWT_SECRET nor JWT_SECRET_ARN is set")
    return secret


def origin_secret() -> str | None:
    """The value CloudFront's origin header must carry, or None where no edge is in front."""
    settings = get_settings()
    return _secret(settings.origin_secret, settings.origin_secret_arn)


def _secret(value: str, arn: str) -> str | None:
    if value:
        return value
    if not arn:
        return None
    # Imported here: only the AWS path needs the parameters utility (and its boto3 client).
    from aws_lambda_powertools.utilities.parameters import get_secret

    return secret_from_string(str(get_secret(arn, max_age=SECRET_CACHE_SECONDS)))


def secret_from_string(value: str) -> str:
    """A SecretString is either the raw secret or JSON ``{"secret": "..."}``."""
    if value.startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, dict) and isinstance(parsed.get("secret"), str):
            return str(parsed["secret"])
    return value
