"""`dynamowave`: the command line. Each subcommand lives in `dynamowave.commands.<name>`.

Modules are imported only when their command runs, so `dynamowave token` does not pay for
moto or the gateway.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

COMMANDS: dict[str, str] = {
    "serve": "start the local chat service (gateway, web client, Lambda runner, embedded moto)",
    "token": "mint a JWT for a user (local dev secret, DYNAMOWAVE_JWT_SECRET, or --secret-arn)",
    "chat": "terminal chat client for a local or deployed endpoint",
    "redrive": "move dead-lettered fan-out jobs back to the fan-out queue",
    "admin": "the operator API: publish, delete, ban, unban, kick, mute, disconnect, history, presence, rooms, event",
    "check": "conformance run of docs/protocol.md against a deployment (local or AWS); exit 1 on a failure",
    "bench": "benchmark dynamowave against the tutorial design and websockets.broadcast()",
}


class CommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class CommandError(Exception):
    """A user-facing failure: printed as `dynamowave: error: ...` with exit status 2."""


def _load(name: str) -> CommandModule:
    return cast(CommandModule, importlib.import_module(f"dynamowave.commands.{name}"))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynamowave", description="DynamoWave serverless chat")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or only == name:
            _load(name).add_arguments(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Only the chosen command's module is imported to build its arguments.
    chosen = next((a for a in args_list if a in COMMANDS), None)
    parser = build_parser(only=chosen)
    args = parser.parse_args(args_list)
    try:
        return _load(args.command).run(args)
    except CommandError as exc:
        print(f"dynamowave: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run through the imported module, not this __main__ copy, so the commands' CommandError is
    # the one `main` catches.
    from dynamowave.cli import main as _main

    raise SystemExit(_main())
