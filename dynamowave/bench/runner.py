"""Runs each system in turn against the same client code and turns what it measured into results.

Per system: a fresh server process (dynamowave.bench.server), the idle rows seeded, N members
connected and joined, one warm-up message, the meter reset, then K messages one after another,
each timed from the sender's frame to its arrival at every member (the sender included).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from dynamowave.bench.clients import Delivery, Room
from dynamowave.bench.prices import UsagePerMessage, apigw_floor_usd, websocket_messages

PIPELINE_SYSTEMS: Final = ("dynamowave", "tutorial")
ROOM: Final = "bench"
BENCH_USER: Final = "bench"  # one user on every socket: presence fans out once, not N times
START_TIMEOUT: Final = 120.0
SETTLE_SECONDS: Final = 0.4  # the meter is read once it has not moved for this long


@dataclass(frozen=True)
class BenchConfig:
    members: int = 100
    idle: int = 0
    messages: int = 20
    post_latency_ms: float = 0.0
    systems: tuple[str, ...] = ("dynamowave", "tutorial", "broadcast")
    text_size: int = 64
    warmup: int = 1
    shard_size: int | None = None
    log_dir: Path | None = None
    profile: Path | None = None  # py-spy output folder (one flame graph per pipeline system)
    # --rate mode: `senders` members share `rate` messages per second for `duration` seconds.
    rate: float | None = None
    senders: int = 1
    duration: float = 10.0
    # Coalesced delivery: members connect with ?batch=1 and the fan-out's event source gathers
    # up to `batch_size` jobs for `batching_window` seconds (docs/fanout.md).
    coalesce: bool = False
    batch_size: int = 100
    batching_window: float = 1.0
    join_storm: int = 0  # --join-storm N: N more members join over `duration` while messages flow
    # The pipeline systems run once per entry: the fan-out on the runtime's threads (0) or in
    # that many worker processes (`serve --fanout-workers`), side by side in one run.
    fanout_workers: tuple[int, ...] = (0,)


@dataclass
class SystemResult:
    system: str
    members: int
    idle: int
    messages: int
    deliveries: int
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    message_ms_p50: float  # send -> the last member has it
    setup_s: float
    aws_requests_per_message: dict[str, float] | None = None
    usd_per_million_messages: float | None = None
    apigw_floor_usd_per_million: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "system": self.system,
            "members": self.members,
            "idle": self.idle,
            "messages": self.messages,
            "deliveries": self.deliveries,
            "deliveries_per_s": round(self.deliveries_per_s, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "message_ms_p50": round(self.message_ms_p50, 2),
            "setup_s": round(self.setup_s, 2),
        }
        if self.aws_requests_per_message is not None:
            data["aws_requests_per_message"] = self.aws_requests_per_message
            data["usd_per_million_messages"] = self.usd_per_million_messages
            data["apigw_floor_usd_per_million"] = self.apigw_floor_usd_per_million
        data.update(self.extra)
        return data


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


class ServerProcess:
    """One `python -m dynamowave.bench.server SYSTEM`, driven by JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process, ws_url: str, pid: int) -> None:
        self.process = process
        self.ws_url = ws_url
        self.pid = pid

    @classmethod
    async def start(
        cls, system: str, config: BenchConfig, secret: str, log_file: Path | None, fanout_workers: int = 0
    ) -> ServerProcess:
        from dynamowave.testing.serve import child_environment

        env = child_environment(secret)
        args = [sys.executable, "-m", "dynamowave.bench.server", system]
        args += ["--post-latency-ms", str(config.post_latency_ms)]
        if config.shard_size:
            args += ["--shard-size", str(config.shard_size)]
        if config.coalesce:
            args += ["--batch-size", str(config.batch_size), "--batching-window", str(config.batching_window)]
        if fanout_workers:
            args += ["--fanout-workers", str(fanout_workers)]
        stderr: Any = asyncio.subprocess.DEVNULL
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            stderr = open(log_file, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
            limit=16 * 1024 * 1024,
        )
        server = cls(process, "", 0)
        ready = await server._read(START_TIMEOUT)
        if not ready.get("ready"):
            raise RuntimeError(f"bench server for {system} did not start: {ready}")
        server.ws_url, server.pid = str(ready["ws_url"]), int(ready.get("pid", 0))
        return server

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=timeout)
        if not line:
            raise RuntimeError("bench server exited (see its log with --log-dir)")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def call(self, op: str, timeout: float = 600.0, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
        await self.process.stdin.drain()
        reply = await self._read(timeout)
        if not reply.get("ok"):
            raise RuntimeError(f"bench server refused {op}: {reply}")
        return reply

    async def settled_usage(self) -> dict[str, Any]:
        """The meter once the pipeline is quiet (trailing deletes, marks and pollers done)."""
        previous: Any = None
        deadline = time.monotonic() + 10
        while True:
            usage: dict[str, Any] = (await self.call("usage"))["usage"]
            marker = (usage.get("calls"), usage.get("lambda_invocations"))
            if usage == {} or marker == previous or time.monotonic() > deadline:
                return usage
            previous = marker
            await asyncio.sleep(SETTLE_SECONDS)

    async def stop(self) -> None:
        # No orderly shutdown: closing every member would run N $disconnects nobody measures.
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def per_message(usage: dict[str, Any], messages: int, frame_bytes: int) -> tuple[dict[str, float], float]:
    """aws_requests_per_message and USD per million messages from a metered window."""
    invocations = sum(usage.get("lambda_invocations", {}).values())
    posts = usage.get("post_to_connection", 0)
    requests = {
        "dynamodb_rru": usage.get("dynamodb_rru", 0.0) / messages,
        "dynamodb_wru": usage.get("dynamodb_wru", 0.0) / messages,
        "sqs_requests": usage.get("sqs_requests", 0) / messages,
        "post_to_connection": posts / messages,
        "lambda_invocations": invocations / messages,
    }
    unit = websocket_messages(frame_bytes)
    cost = UsagePerMessage(
        apigw_messages=unit * (1 + requests["post_to_connection"]),
        lambda_invocations=requests["lambda_invocations"],
        lambda_gb_seconds=usage.get("lambda_gb_seconds", 0.0) / messages,
        sqs_requests=requests["sqs_requests"],
        dynamodb_rru=requests["dynamodb_rru"],
        dynamodb_wru=requests["dynamodb_wru"],
    )
    return {k: round(v, 3) for k, v in requests.items()}, cost.usd() * 1e6


async def _profile(pid: int, out: Path) -> asyncio.subprocess.Process | None:
    """py-spy (if on PATH) sampling the server process, every thread, until stopped."""
    import shutil

    binary = shutil.which("py-spy")
    if binary is None:
        print("bench: --profile needs py-spy on PATH; skipped", file=sys.stderr)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--gil", "--subprocesses", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def run_system(system: str, config: BenchConfig, secret: str, fanout_workers: int = 0) -> SystemResult:
    from functions.chat.auth import mint_token

    token = mint_token(secret, BENCH_USER, ttl_seconds=6 * 3600)

    def token_for(index: int) -> str:
        # A join storm's joiners are distinct users (as at a live event); the room's members share one.
        if index < config.members:
            return token
        return mint_token(secret, f"joiner{index}", ttl_seconds=6 * 3600)

    label = f"{system}-w{fanout_workers}" if fanout_workers else system
    log_file = config.log_dir / f"{label}.log" if config.log_dir else None
    started = time.perf_counter()
    server = await ServerProcess.start(system, config, secret, log_file, fanout_workers)
    room = Room(server.ws_url, token_for, ROOM, batch=config.coalesce)
    profiler: asyncio.subprocess.Process | None = None
    storm_seconds = 0.0
    try:
        pipeline = system in PIPELINE_SYSTEMS
        seeded = (await server.call("seed", idle=config.idle))["seeded"] if pipeline else 0
        await room.connect(config.members)
        await room.join()
        joiners = await room.connect(config.join_storm) if config.join_storm else []
        text = "x" * config.text_size
        timeout = 60.0 + 0.1 * (config.members + config.join_storm) + config.idle / 1000
        for index in range(config.warmup):
            await room.deliver(f"warmup-{index}", text, timeout)
        if pipeline:
            await server.settled_usage()
            await server.call("reset")
        setup = time.perf_counter() - started
        if config.profile is not None and pipeline:
            profiler = await _profile(
                server.pid, config.profile / f"{label}-m{config.members}-i{config.idle}.txt"
            )
        deliveries: list[Delivery] = []
        if config.rate is not None or joiners:
            stream = room.stream(
                rate=config.rate or 1.0,
                senders=min(config.senders, config.members),
                duration=config.duration,
                text=text,
                prefix=f"r{secrets.token_hex(3)}-",
                timeout=timeout + 2 * config.duration,
                expected=config.members,
            )
            if joiners:
                deliveries, storm_seconds = await asyncio.gather(
                    stream, room.join_storm(joiners, config.duration)
                )
            else:
                deliveries = await stream
        else:
            for index in range(config.messages):
                deliveries.append(await room.deliver(f"m{index}-{secrets.token_hex(4)}", text, timeout))
        usage = await server.settled_usage() if pipeline else {}
    finally:
        if profiler is not None and profiler.returncode is None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its output and exits
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(profiler.wait(), timeout=30)
        await server.stop()
        await room.close()
    messages = len(deliveries)
    latencies = [ms for d in deliveries for ms in d.latencies_ms()]
    busy = sum(d.duration_s() for d in deliveries)
    count = sum(len(d.arrivals) for d in deliveries)
    result = SystemResult(
        system=system,
        members=config.members,
        idle=seeded if pipeline else config.idle,
        messages=messages,
        deliveries=count,
        deliveries_per_s=count / busy if busy > 0 else 0.0,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        message_ms_p50=statistics.median(d.duration_s() * 1000 for d in deliveries) if deliveries else 0.0,
        setup_s=setup,
    )
    streamed = config.rate is not None or bool(config.join_storm)
    if streamed:
        first = min(d.sent_at for d in deliveries)
        last = max(max(d.arrivals.values(), default=d.sent_at) for d in deliveries)
        result.deliveries_per_s = count / (last - first) if last > first else 0.0
        result.extra["rate"] = config.rate or 1.0
        result.extra["senders"] = min(config.senders, config.members)
        result.extra["duration"] = config.duration
        result.extra["coalesce"] = config.coalesce
        result.extra["resends"] = room.resends  # sends refused with `internal` and sent again
        # Achieved: messages that reached every member, over first send -> last arrival.
        result.extra["messages_per_s"] = round(messages / (last - first), 2) if last > first else 0.0
    # Handshakes refused with a 5xx and tried again (dynamowave/bench/clients.py).
    result.extra["handshake_retries"] = room.handshake_retries
    if pipeline:
        result.extra["fanout_workers"] = fanout_workers
        frame_bytes = 200 + config.text_size  # a message frame: envelope plus text
        requests, usd = per_message(usage, messages, frame_bytes)
        result.aws_requests_per_message = requests
        result.usd_per_million_messages = round(usd, 2)
        result.apigw_floor_usd_per_million = round(apigw_floor_usd(config.members) * 1e6, 2)
        from dynamowave.bench.experiments import enabled

        extra: dict[str, Any] = {
            **({"experiments": sorted(enabled())} if enabled() else {}),
            "lambda_gb_seconds_per_message": round(usage.get("lambda_gb_seconds", 0.0) / messages, 6),
        }
        if streamed:
            extra.update(
                hot_keys(usage, messages=messages, joins=config.join_storm, storm_seconds=storm_seconds)
            )
            extra["posts_per_delivery"] = (
                round(usage.get("post_to_connection", 0) / count, 4) if count else 0.0
            )
        extra["calls"] = usage.get("calls", {})
        extra["lambda_ms"] = usage.get("lambda_ms", {})
        result.extra.update(extra)
    return result


def hot_keys(usage: dict[str, Any], *, messages: int, joins: int, storm_seconds: float) -> dict[str, Any]:
    """The most-written item per message (or per join, in a join storm) and the cancelled
    transactions, from the meter's per-item write counts (dynamowave/bench/meter.py)."""
    busiest: dict[str, int] = usage.get("busiest_items", {})
    key, writes = max(busiest.items(), key=lambda kv: kv[1], default=("", 0))
    cancelled: dict[str, int] = usage.get("transactions_cancelled", {})
    fields: dict[str, Any] = {
        "busiest_item_key": key,
        "busiest_items": busiest,
        "transaction_conflicts": sum(cancelled.values()),
        "transactions_cancelled": cancelled,
    }
    fields["busiest_item_writes_per_message"] = round(writes / messages, 4) if messages else 0.0
    if joins:
        fields["joins"] = joins
        fields["joins_per_s"] = round(joins / storm_seconds, 2) if storm_seconds > 0 else 0.0
        fields["busiest_item_writes_per_join"] = round(writes / joins, 4)
    return fields


async def run(config: BenchConfig) -> list[SystemResult]:
    secret = secrets.token_urlsafe(48)
    return [
        await run_system(system, config, secret, workers)
        for system in config.systems
        for workers in (config.fanout_workers if system in PIPELINE_SYSTEMS else (0,))
    ]
