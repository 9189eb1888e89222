"""`dynamowave check URL`: run docs/protocol.md's client-observable rows against a deployment."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import urllib.parse
from typing import TYPE_CHECKING

from dynamowave.cli import CommandError

if TYPE_CHECKING:
    from dynamowave.admin import AdminClient
    from dynamowave.check.runner import Tokens


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Conformance run against a deployment (local or AWS) over real WebSockets: every row of "
        "docs/protocol.md a client can observe, a fan-out, recovery, cleanup. Prints a table; exits 1 "
        "if any row fails. Tokens: --secret-arn (all rows), --token (rows one user can check; the "
        "others are skipped), DYNAMOWAVE_JWT_SECRET, or a local runtime's /dev/token on loopback."
    )
    parser.add_argument(
        "url", help="ws://127.0.0.1:8765/ or wss://API.execute-api.REGION.amazonaws.com/STAGE"
    )
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument("--token", help="one JWT: rows that need other users are skipped")
    tokens.add_argument("--secret-arn", help="the deployment's JwtSecretArn: mint every token the rows need")
    parser.add_argument("--region", help="region of --secret-arn (default: the ARN's)")
    parser.add_argument("--fanout", type=int, default=5, metavar="N", help="connections in the fan-out row")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for each expected frame")
    parser.add_argument(
        "--max-text-length", type=int, default=4000, help="the deployment's MAX_TEXT_LENGTH (default 4000)"
    )
    parser.add_argument(
        "--operator-url",
        help="the stack's OperatorApiUrl, signed with your AWS credentials (default on loopback: the "
        "runtime's /admin with its local credentials); without it the operator API rows are skipped",
    )
    parser.add_argument(
        "--only", metavar="WORDS", help="run only rows whose title contains one of WORDS (comma-separated)"
    )


def run(args: argparse.Namespace) -> int:
    from dynamowave.check.runner import CheckContext, all_rows, print_table, run_rows
    from dynamowave.terminal_client import is_loopback

    if not args.url.startswith(("ws://", "wss://")):
        raise CommandError(f"URL must start with ws:// or wss://, got {args.url!r}")
    if not 1 <= args.fanout <= 500:
        raise CommandError("--fanout must be 1..500")
    if args.timeout <= 0 or args.max_text_length < 1:
        raise CommandError("--timeout must be > 0 and --max-text-length >= 1")
    run_id = secrets.token_hex(4)
    tokens = _tokens(args, run_id, is_loopback(args.url))
    words = [w.strip().lower() for w in (args.only or "").split(",") if w.strip()]
    selected = [r for r in all_rows() if not words or any(w in r.title.lower() for w in words)]
    if not selected:
        raise CommandError(f"no row matches --only {args.only!r}")

    admin = _operator_client(args, is_loopback(args.url))

    def context() -> CheckContext:
        return CheckContext(
            url=args.url,
            tokens=tokens,
            run_id=run_id,
            timeout=args.timeout,
            fanout=args.fanout,
            max_text_length=args.max_text_length,
            proxy=not is_loopback(args.url),
            admin=admin,
        )

    print(f"dynamowave check {args.url} (run {run_id}, rooms check-{run_id}-*)")
    results = asyncio.run(run_rows(context, selected, row_timeout=max(60.0, 4 * args.timeout)))
    print_table(results, sys.stdout)
    return 1 if any(r.status == "FAIL" for r in results) else 0


def _tokens(args: argparse.Namespace, run_id: str, loopback: bool) -> Tokens:
    from dynamowave.check.runner import DevTokens, SecretTokens, SingleToken
    from dynamowave.terminal_client import token_subject

    if args.token:
        subject = token_subject(args.token)
        if not subject:
            raise CommandError("--token is not a JWT with a sub claim")
        return SingleToken(args.token, subject)
    if args.secret_arn:
        from dynamowave.commands.token import secret_from_aws

        return SecretTokens(secret_from_aws(args.secret_arn, args.region), run_id)
    secret = os.environ.get("DYNAMOWAVE_JWT_SECRET")
    if secret:
        return SecretTokens(secret, run_id)
    if loopback:
        return DevTokens(args.url, run_id)
    raise CommandError("a deployed URL needs --secret-arn ARN or --token JWT")


def _operator_client(args: argparse.Namespace, loopback: bool) -> AdminClient | None:
    """--operator-url with the caller's credentials; on loopback, the runtime's /admin with the
    local credentials it prints (whatever AWS credentials the caller has)."""
    from dynamowave.admin import AdminClient, AdminError
    from dynamowave.local.sigv4 import LOCAL_CREDENTIALS
    from dynamowave.terminal_client import is_loopback

    try:
        if args.operator_url:
            credentials = LOCAL_CREDENTIALS.as_botocore() if is_loopback(args.operator_url) else None
            return AdminClient(args.operator_url, credentials=credentials, timeout=args.timeout)
        if loopback:
            parts = urllib.parse.urlsplit(args.url)
            scheme = "https" if parts.scheme == "wss" else "http"
            return AdminClient(
                f"{scheme}://{parts.netloc}/admin",
                credentials=LOCAL_CREDENTIALS.as_botocore(),
                timeout=args.timeout,
            )
    except AdminError as error:
        raise CommandError(f"--operator-url: {error.message}") from None
    return None
