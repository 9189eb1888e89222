"""The JWT signing secret: DYNAMOWAVE_JWT_SECRET locally, Secrets Manager on AWS (cached 5 min)."""

from __future__ import annotations

import json

from functions.chat.settings import get_settings

SECRET_CACHE_SECONDS = 300


def jwt_secret() -> str:
    settings = get_settings()
    if settings.jwt_secret:
        return settings.jwt_secret
    if not settings.jwt_secret_arn:
        raise RuntimeError("neither DYNAMOWAVE_JWT_SECRET nor JWT_SECRET_ARN is set")
    # Imported here: only the AWS path needs the parameters utility (and its boto3 client).
    from aws_lambda_powertools.utilities.parameters import get_secret

    value = get_secret(settings.jwt_secret_arn, max_age=SECRET_CACHE_SECONDS)
    return secret_from_string(str(value))


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
