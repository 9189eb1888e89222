"""`dynamowave chat`: the terminal chat client (see dynamowave/terminal_client.py)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os

from dynamowave.cli import CommandError
from dynamowave.terminal_client import (
    HELP,
    ROOM_PATTERN,
    ChatClient,
    ChatError,
    ChatOptions,
    print_line,
    stdin_lines,
)


def _default_user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the epilog's lines
    parser.add_argument(
        "--url",
        default="ws://127.0.0.1:8765/",
        help="ws://HOST:PORT/ (local runtime) or wss://API.execute-api.REGION.amazonaws.com/STAGE"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        help="JWT (from `dynamowave token USER`); omitted with a loopback URL: fetched from /dev/token",
    )
    parser.add_argument("--room", default="general", help="room to join first (default: %(default)s)")
    parser.add_argument(
        "--user",
        default=_default_user(),
        help="user id for a fetched development token (default: $USER, here %(default)r)",
    )
    parser.add_argument("--name", help="display name for a fetched development token")
    parser.add_argument(
        "--since",
        type=int,
        metavar="SEQ",
        help="on the first join, print every message after SEQ (0: from the start, up to 100)",
    )


def run(args: argparse.Namespace) -> int:
    if not ROOM_PATTERN.fullmatch(args.room):
        raise CommandError(f"bad room name {args.room!r}: letters, digits and _ . - (up to 64)")
    if args.since is not None and args.since < 0:
        raise CommandError("--since must be 0 or more")
    options = ChatOptions(
        url=args.url,
        room=args.room,
        token=args.token,
        user=args.user or None,
        name=args.name,
        since=args.since,
    )
    try:
        return asyncio.run(_chat(options))
    except ChatError as exc:
        raise CommandError(str(exc)) from None


async def _chat(options: ChatOptions) -> int:
    client = ChatClient(options, print_line)
    return await client.run(stdin_lines())
