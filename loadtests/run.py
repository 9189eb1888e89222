"""`make loadtest`: a local runtime plus a headless locust run, reports under results/<timestamp>/.

    python -m loadtests.run [--users 50] [--spawn-rate 10] [--run-time 60s] [--rooms 5]
                            [--members-per-room 0] [--send-interval 10] [--results results]
                            [--host ws://... (use a running endpoint instead of starting one)]

Every option also reads an environment variable (LOADTEST_USERS, LOADTEST_SPAWN_RATE,
LOADTEST_RUN_TIME, ...). The runtime is `dynamowave serve --port 0` in a subprocess with a fresh
secret and state folder, generous per-connection rate limits and no janitor. The exit status is
locust's: non-zero on any failure (error frame, close, ack timeout, missing delivery).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from dynamowave.testing.serve import REPO, ServeProcess, start_serve

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
# Per-connection limits far above the load (the test measures the pipeline, not the limiter).
SERVE_ARGS = (
    "--rate-limit",
    "1000",
    "--rate-burst",
    "1000",
    "--janitor-interval",
    "0",
    "--quiet",
    "--ephemeral",
)
READY_TIMEOUT_SECONDS = 60.0


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=int(_env("LOADTEST_USERS", "50")))
    parser.add_argument("--spawn-rate", type=float, default=float(_env("LOADTEST_SPAWN_RATE", "10")))
    parser.add_argument("--run-time", default=_env("LOADTEST_RUN_TIME", "60s"), help="locust -t (60s)")
    parser.add_argument("--rooms", type=int, default=int(_env("LOADTEST_ROOMS", "5")))
    parser.add_argument("--members-per-room", type=int, default=int(_env("LOADTEST_MEMBERS_PER_ROOM", "0")))
    # 50 users x one message per 10 s = 5 messages/s into rooms of 10: what one busy 2-core
    # machine running moto sustains with no failure (docs/benchmarks.md); lower it to find the knee.
    parser.add_argument("--send-interval", type=float, default=float(_env("LOADTEST_SEND_INTERVAL", "10")))
    parser.add_argument("--results", type=Path, default=Path(_env("LOADTEST_RESULTS", "results")))
    parser.add_argument("--host", default=os.environ.get("LOADTEST_HOST"), help="skip the local runtime")
    parser.add_argument(
        "--serve-arg", action="append", default=[], metavar="ARG", help="extra `dynamowave serve` argument"
    )
    return parser


def start_runtime(folder: Path, env: dict[str, str], extra: Sequence[str]) -> ServeProcess:
    """`dynamowave serve --port 0`; ready when it prints its ws:// URL (output goes to a file)."""
    return start_serve(
        [*SERVE_ARGS, *extra],
        env=env,
        log_file=folder / "serve.log",
        ready_timeout=READY_TIMEOUT_SECONDS,
        need_http=False,
    )


def locust_command(args: argparse.Namespace, host: str, folder: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        str(args.run_time),
        "--rooms",
        str(args.rooms),
        "--members-per-room",
        str(args.members_per_room),
        "--send-interval",
        str(args.send_interval),
        "--csv",
        str(folder / "locust"),
        "--html",
        str(folder / "report.html"),
        "--only-summary",
        "--exit-code-on-error",
        "1",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = (args.results / stamp).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DYNAMOWAVE_JWT_SECRET", secrets.token_urlsafe(48))
    env.setdefault("DYNAMOWAVE_STATE_DIR", str(folder / "state"))
    env.setdefault("DYNAMOWAVE_LOAD_ROOM_PREFIX", f"load{stamp[-7:-1]}")
    runtime: ServeProcess | None = None
    host = args.host
    if host is None:
        runtime = start_runtime(folder, env, args.serve_arg)
        host = runtime.ws_url
        print(f"loadtest: local runtime at {host} (log {runtime.log_file})", flush=True)
    try:
        command = locust_command(args, host, folder)
        print("loadtest:", " ".join(command[2:]), flush=True)
        status = subprocess.call(command, cwd=REPO, env=env)  # noqa: S603 - our locust, our arguments
    finally:
        if runtime is not None:
            runtime.stop(timeout=30)
    print(f"loadtest: reports in {folder} (locust_stats.csv, report.html); exit {status}", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
