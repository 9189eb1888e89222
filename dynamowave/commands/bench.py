"""`dynamowave bench`: dynamowave vs the AWS tutorial's design vs websockets' broadcast(), one run.

Heavy imports (websockets, the runtime) happen in `run`, after argument parsing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dynamowave.cli import CommandError

SYSTEMS = ("dynamowave", "tutorial", "broadcast")


def _count(minimum: int) -> Any:
    def parse(raw: str) -> int:
        try:
            value = int(raw.replace("_", "").replace(",", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=_count(1), default=100, metavar="N", help="room size (100)")
    parser.add_argument(
        "--idle",
        type=_count(0),
        default=0,
        metavar="M",
        help="connections in other rooms, as DynamoDB rows (0)",
    )
    parser.add_argument("--messages", type=_count(1), default=20, metavar="K", help="measured messages (20)")
    parser.add_argument(
        "--post-latency-ms",
        type=float,
        default=0.0,
        metavar="L",
        help="modelled Management API latency per call, to reason about AWS (0)",
    )
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated subset of dynamowave,tutorial,broadcast"
    )
    parser.add_argument("--shard-size", type=_count(1), metavar="S", help="SHARD_SIZE for dynamowave (250)")
    parser.add_argument("--text-size", type=_count(1), default=64, metavar="C", help="characters per message")
    parser.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="messages per second into the room, shared by --senders, for --duration (instead of --messages)",
    )
    parser.add_argument("--senders", type=_count(1), default=1, metavar="S", help="members sending (1)")
    parser.add_argument(
        "--duration", type=float, default=10.0, metavar="SECONDS", help="of --rate and --join-storm (10)"
    )
    parser.add_argument(
        "--coalesce",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="members connect with ?batch=1 and the fan-out gathers batches (--batch-size, "
        "--batching-window); --no-coalesce: v1 clients, batches of 10, no window (the default)",
    )
    parser.add_argument(
        "--batch-size",
        type=_count(1),
        default=100,
        metavar="B",
        help="fan-out batch size with --coalesce (100)",
    )
    parser.add_argument(
        "--batching-window",
        type=float,
        default=1.0,
        metavar="W",
        help="fan-out batching window with --coalesce, seconds (1.0: the smallest AWS allows)",
    )
    parser.add_argument(
        "--join-storm",
        type=_count(1),
        metavar="N",
        help="N more members (distinct users) join over --duration while --rate messages flow",
    )
    parser.add_argument(
        "--fanout-workers",
        default="0",
        metavar="N[,M...]",
        help="fan-out worker processes (serve --fanout-workers); a list runs the pipeline once per "
        "entry, e.g. 0,2 (0: the runtime's threads, the default)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per system per line")
    parser.add_argument("--log-dir", type=Path, metavar="DIR", help="keep each server's log here")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy (on PATH) samples the pipeline servers into DIR"
    )


def _systems(raw: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
    unknown = [s for s in chosen if s not in SYSTEMS]
    if unknown or not chosen:
        raise CommandError(f"--systems: choose from {', '.join(SYSTEMS)} (got {raw!r})")
    return chosen


def _worker_counts(raw: str) -> tuple[int, ...]:
    try:
        counts = tuple(dict.fromkeys(int(part) for part in raw.split(",") if part.strip()))
    except ValueError:
        raise CommandError(f"--fanout-workers: comma-separated whole numbers, got {raw!r}") from None
    if not counts or any(not 0 <= n <= 64 for n in counts):
        raise CommandError(f"--fanout-workers: each 0..64, got {raw!r}")
    return counts


def run(args: argparse.Namespace) -> int:
    import asyncio

    from dynamowave.bench.clients import BenchError
    from dynamowave.bench.report import table
    from dynamowave.bench.runner import BenchConfig
    from dynamowave.bench.runner import run as run_bench

    if args.post_latency_ms < 0:
        raise CommandError("--post-latency-ms must be >= 0")
    if args.rate is not None and args.rate <= 0:
        raise CommandError("--rate must be > 0")
    if args.duration <= 0 or args.batching_window < 0:
        raise CommandError("--duration must be > 0 and --batching-window >= 0")
    config = BenchConfig(
        members=args.members,
        idle=args.idle,
        messages=args.messages,
        post_latency_ms=args.post_latency_ms,
        systems=_systems(args.systems),
        text_size=args.text_size,
        shard_size=args.shard_size,
        log_dir=args.log_dir,
        profile=args.profile,
        rate=args.rate,
        senders=args.senders,
        duration=args.duration,
        coalesce=args.coalesce,
        batch_size=args.batch_size,
        batching_window=args.batching_window,
        join_storm=args.join_storm or 0,
        fanout_workers=_worker_counts(args.fanout_workers),
    )
    try:
        results = asyncio.run(run_bench(config))
    except BenchError as error:
        raise CommandError(str(error)) from None
    if args.json:
        for result in results:
            print(json.dumps(result.as_json()), flush=True)
    else:
        print(table(results, config))
    return 0
