"""`dynamowave serve`: the whole chat service on one machine, no AWS account needed.

Heavy imports (aiohttp, moto, boto3, the functions) happen in `run`, after argument parsing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dynamowave.cli import CommandError

_ENV_PAIR = re.compile(r"\A([A-Z][A-Z0-9_]*)=(.*)\Z", re.DOTALL)


def _positive(kind: type[float] | type[int]) -> Callable[[str], float | int]:
    def parse(raw: str) -> float | int:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a valid {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {raw}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    positive_float = _positive(float)
    positive_int = _positive(int)
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=8765, help="port for WebSocket + HTTP; 0 picks a free one")
    net.add_argument("--stage", default="local", help="stage name in the Management API path (default local)")
    net.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name the runtime answers to (repeatable; loopback and the bound address always)",
    )
    net.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin that may open WebSocket connections, e.g. http://localhost:5173 (repeatable)",
    )
    net.add_argument(
        "--aws-endpoint", metavar="URL", help="use this AWS-compatible endpoint instead of the embedded moto"
    )
    gw = parser.add_argument_group("API Gateway emulation")
    gw.add_argument("--idle-timeout", type=positive_float, default=600.0, metavar="S", help="default 600")
    gw.add_argument("--max-duration", type=positive_float, default=7200.0, metavar="S", help="default 7200")
    gw.add_argument(
        "--throttle-rate", type=positive_float, default=10_000.0, metavar="R", help="stage requests/s (10000)"
    )
    gw.add_argument(
        "--throttle-burst", type=positive_int, default=5_000, metavar="B", help="stage burst (5000)"
    )
    fn = parser.add_argument_group("functions and event sources")
    fn.add_argument(
        "--rate-limit",
        type=positive_float,
        metavar="R",
        help="per-connection sends/s (RATE_LIMIT_PER_SECOND)",
    )
    fn.add_argument(
        "--rate-burst", type=positive_int, metavar="B", help="per-connection burst (RATE_LIMIT_BURST)"
    )
    fn.add_argument(
        "--janitor-interval", type=float, default=60.0, metavar="S", help="janitor schedule; 0 disables (60)"
    )
    fn.add_argument("--batch-size", type=positive_int, default=10, help="SQS event source batch size (10)")
    fn.add_argument("--batching-window", type=float, default=0.0, metavar="S", help="max batching window (0)")
    fn.add_argument("--pollers", type=positive_int, default=4, help="concurrent SQS pollers (4)")
    fn.add_argument(
        "--fanout-workers",
        type=int,
        default=0,
        metavar="N",
        help="run the fan-out's invocations in N worker processes, e.g. $(nproc); 0: on the runtime's threads (0)",
    )
    fn.add_argument(
        "--max-receive-count", type=positive_int, default=5, help="redrive to the DLQ after N (5)"
    )
    fn.add_argument(
        "--no-auto-redrive",
        action="store_true",
        help="dead letters wait in the DLQ for `dynamowave redrive` (default: the redriver consumes it)",
    )
    fn.add_argument(
        "--visibility-timeout",
        type=positive_int,
        metavar="S",
        help="fan-out queue (default 15, the fan-out timeout)",
    )
    fn.add_argument(
        "--function-timeout",
        action="append",
        default=[],
        metavar="NAME=S",
        help="override a function's timeout, e.g. fanout=10 (repeatable)",
    )
    fn.add_argument(
        "--handler",
        action="append",
        default=[],
        metavar="NAME=MODULE.ATTR",
        help="override a function's handler string (tests), e.g. ingress=tests.stubs.ingress",
    )
    fn.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra function setting, e.g. SHARD_SIZE=2 (repeatable)",
    )
    review = parser.add_argument_group("message review (docs/protocol.md)")
    review.add_argument(
        "--review-handler",
        metavar="MODULE.ATTR",
        help="review every message and edit with this Lambda handler, e.g. functions.review.handler.handler",
    )
    review.add_argument(
        "--review-timeout",
        type=positive_int,
        metavar="MS",
        help="review time budget (REVIEW_TIMEOUT_MS, 1000)",
    )
    review.add_argument(
        "--review-fallback",
        choices=("allow", "deny"),
        help="what a review that times out or fails decides (REVIEW_FALLBACK, allow)",
    )
    parser.add_argument(
        "--faults", type=Path, metavar="FILE", help="fault-injection JSON (docs/local-runtime.md)"
    )
    state = parser.add_argument_group("state (docs/local-runtime.md, Persistence)")
    state.add_argument(
        "--ephemeral",
        action="store_true",
        help="keep nothing: tables and queues live in memory and vanish on exit (tests)",
    )
    state.add_argument(
        "--fsync",
        choices=["interval", "always"],
        default="interval",
        help="journal fsync: 'interval' (each second, the default) or 'always' (before every answer)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-invocation log lines")
    parser.add_argument(
        "--iam",
        action="store_true",
        help="enforce the stack's IAM grants on each function's AWS calls (AccessDeniedException)",
    )


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for raw in values:
        name, sep, value = raw.partition("=")
        if not sep or not name or not value:
            raise CommandError(f"{flag} expects NAME=VALUE, got {raw!r}")
        result[name] = value
    return result


def _load_faults(path: Path | None) -> object:
    from dynamowave.local.faults import FaultConfig, FaultConfigError

    if path is None:
        return FaultConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"--faults: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CommandError(f"--faults: {path} is not valid JSON: {exc}") from None
    try:
        return FaultConfig.from_json(data)
    except FaultConfigError as exc:
        raise CommandError(f"--faults: {path}: {exc}") from None


def build_config(args: argparse.Namespace) -> object:
    from dataclasses import replace

    from dynamowave.local.config import REVIEW_FUNCTION, RuntimeConfig, default_functions, review_function
    from dynamowave.local.faults import FaultConfig

    faults = _load_faults(args.faults)
    assert isinstance(faults, FaultConfig)
    functions = default_functions()
    for name, value in _pairs(args.handler, "--handler").items():
        if name not in functions:
            raise CommandError(f"--handler: unknown function {name!r} (one of {', '.join(functions)})")
        functions[name] = replace(functions[name], handler=value)
    for name, value in _pairs(args.function_timeout, "--function-timeout").items():
        if name not in functions:
            raise CommandError(f"--function-timeout: unknown function {name!r}")
        try:
            seconds = float(value)
        except ValueError:
            raise CommandError(f"--function-timeout: {value!r} is not a number") from None
        functions[name] = replace(functions[name], timeout_seconds=seconds)
    function_env: dict[str, str] = {}
    for raw in args.env:
        match = _ENV_PAIR.fullmatch(raw)
        if match is None:
            raise CommandError(f"--env expects KEY=VALUE with an upper-case KEY, got {raw!r}")
        function_env[match.group(1)] = match.group(2)
    if args.review_handler:
        if "." not in args.review_handler:
            raise CommandError(f"--review-handler expects MODULE.ATTR, got {args.review_handler!r}")
        functions[REVIEW_FUNCTION] = review_function(args.review_handler)
    if args.review_timeout is not None:
        function_env["REVIEW_TIMEOUT_MS"] = str(args.review_timeout)
    if args.review_fallback is not None:
        function_env["REVIEW_FALLBACK"] = args.review_fallback
    if args.rate_limit is not None:
        function_env["RATE_LIMIT_PER_SECOND"] = str(args.rate_limit)
    if args.rate_burst is not None:
        function_env["RATE_LIMIT_BURST"] = str(args.rate_burst)
    from functions.chat.settings import ORIGIN_PATTERN

    for origin in args.allowed_origin:
        if not ORIGIN_PATTERN.fullmatch(origin):
            raise CommandError(
                f"--allowed-origin expects an origin like http://localhost:5173, got {origin!r}"
            )
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be 0..65535, got {args.port}")
    if not 0 <= args.fanout_workers <= 64:
        raise CommandError(f"--fanout-workers must be 0..64, got {args.fanout_workers}")
    if args.janitor_interval < 0 or args.batching_window < 0:
        raise CommandError("--janitor-interval and --batching-window must be >= 0")
    return RuntimeConfig(
        host=args.host,
        port=args.port,
        stage=args.stage,
        aws_endpoint=args.aws_endpoint,
        idle_timeout=args.idle_timeout,
        max_duration=args.max_duration,
        throttle_rate=args.throttle_rate,
        throttle_burst=args.throttle_burst,
        allowed_hosts=tuple(args.allowed_host),
        allowed_origins=tuple(args.allowed_origin),
        batch_size=args.batch_size,
        batching_window=args.batching_window,
        pollers=args.pollers,
        fanout_workers=args.fanout_workers,
        max_receive_count=args.max_receive_count,
        auto_redrive=not args.no_auto_redrive,
        visibility_timeout=args.visibility_timeout,
        janitor_interval=args.janitor_interval,
        functions=functions,
        function_env=function_env,
        faults=faults,
        persist=not args.ephemeral,
        fsync=args.fsync,
        iam=args.iam,
    )


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", args.stage):
        raise CommandError(f"--stage must match [A-Za-z0-9_-]{{1,128}}, got {args.stage!r}")
    config = build_config(args)

    import asyncio
    import logging
    import signal

    from dynamowave.local.config import RuntimeConfig
    from dynamowave.local.runtime import LocalRuntime
    from dynamowave.local.sigv4 import LOCAL_CREDENTIALS

    assert isinstance(config, RuntimeConfig)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s.%(msecs)03d %(name)-20s %(message)s", datefmt="%H:%M:%S"
    )
    if args.quiet:
        logging.getLogger("dynamowave.lambda").setLevel(logging.WARNING)
    for noisy in ("botocore", "boto3", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    async def main() -> int:
        runtime = LocalRuntime(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await runtime.start()
        except OSError as exc:
            await runtime.stop()
            raise CommandError(f"cannot start: {exc}") from None
        elapsed = time.perf_counter() - started
        print(runtime.ws_url, flush=True)
        print(runtime.http_url, flush=True)
        print(
            f"dynamowave: ready in {elapsed:.2f}s ({time.process_time():.2f}s CPU; stage {config.stage}, AWS endpoint {runtime.aws_endpoint}); "
            "Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        print(
            f"dynamowave: signed APIs (@connections, the operator API at {runtime.http_url}admin) take SigV4 from AWS_ACCESS_KEY_ID={LOCAL_CREDENTIALS.access_key} "
            f"AWS_SECRET_ACCESS_KEY={LOCAL_CREDENTIALS.secret_key} AWS_SESSION_TOKEN={LOCAL_CREDENTIALS.token} "
            f"(region {config.region})",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        print("dynamowave: stopping", file=sys.stderr, flush=True)
        await runtime.stop()
        return 0

    return asyncio.run(main())
