"""`dynamowave token USER`: print a JWT the deployment's authorizer accepts.

The secret: ``--secret-arn`` (the deployed stack's Secrets Manager secret), else env
``DYNAMOWAVE_JWT_SECRET``, else the local dev secret in the state folder.
"""

from __future__ import annotations

import argparse
import json

from dynamowave.cli import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user", metavar="USER", help="user id (the token's sub), ^[A-Za-z0-9_.@-]{1,64}$")
    parser.add_argument("--name", help="display name (default: the user id)")
    parser.add_argument("--rooms", metavar="a,b", help="rooms the user may join (default: any)")
    parser.add_argument(
        "--mod", metavar="a,b|*", help="rooms the user moderates (the 'mod' claim; '*' = every room)"
    )
    parser.add_argument("--ttl", type=int, default=3600, metavar="S", help="lifetime in seconds (3600)")
    parser.add_argument("--secret-arn", metavar="ARN", help="read the secret from AWS Secrets Manager")
    parser.add_argument("--region", help="region of --secret-arn (default: from the ARN)")


def secret_from_string(raw: str) -> str:
    """A SecretString is the secret itself, or JSON ``{"secret": "..."}``."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(parsed, dict):
        value = parsed.get("secret")
        if isinstance(value, str) and value:
            return value
        raise CommandError('the secret is JSON without a non-empty "secret" key')
    return raw


def secret_from_aws(arn: str, region: str | None) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager":
        raise CommandError(f"--secret-arn: not a Secrets Manager ARN: {arn!r}")
    try:
        client = boto3.client("secretsmanager", region_name=region or parts[3])
        raw = client.get_secret_value(SecretId=arn).get("SecretString")
    except (BotoCoreError, ClientError) as exc:
        raise CommandError(f"--secret-arn: cannot read the secret: {exc}") from None
    if not raw:
        raise CommandError("--secret-arn: the secret has no SecretString")
    return secret_from_string(raw)


def run(args: argparse.Namespace) -> int:
    from dynamowave.local.dev_tokens import (
        TokenRequestError,
        local_secret,
        mint,
        parse_mod,
        parse_rooms,
        validate_user,
    )

    try:
        validate_user(args.user)
        rooms = parse_rooms(args.rooms)
        mod = parse_mod(args.mod)
        if args.ttl <= 0:
            raise TokenRequestError(f"--ttl must be a positive number of seconds, got {args.ttl}")
        secret = secret_from_aws(args.secret_arn, args.region) if args.secret_arn else local_secret()
        token = mint(secret, args.user, name=args.name, rooms=rooms, mod=mod, ttl_seconds=args.ttl)
    except TokenRequestError as exc:
        raise CommandError(str(exc)) from None
    print(token)
    return 0
