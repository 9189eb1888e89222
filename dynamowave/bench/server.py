"""One benchmarked system in its own process: ``python -m dynamowave.bench.server SYSTEM``.

* ``dynamowave``: the local runtime (embedded moto, gateway, Lambda runner, SQS event source)
  running this project's functions, every boto3 call metered (dynamowave.bench.meter).
* ``tutorial``: the same runtime with the ingress handler swapped for the AWS tutorial's design
  (dynamowave.bench.tutorial).
* ``broadcast``: a bare websockets server that answers ``join`` and ``broadcast()``s each
  ``sendmessage`` as a ``message`` frame to the room: the ceiling for one process.

The benchmark drives it over stdin/stdout, one JSON object per line. The first line out is
``{"ready": true, "ws_url": ...}``; then each command line in gets one line out:
``{"op": "seed", "idle": M}`` (idle connections as DynamoDB rows in other rooms),
``{"op": "reset"}``, ``{"op": "usage"}`` (the meter since the last reset), ``{"op": "quit"}``.
Everything else the process prints (the functions' logs) goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import IO, Any, Final

from dynamowave.bench import experiments
from dynamowave.bench.meter import AwsMeter, item_size, meter_every_client
from dynamowave.local.config import MAX_DURATION_SECONDS
from functions.chat.clock import now_ms
from functions.chat.schema import TABLES

SYSTEMS: Final = ("dynamowave", "tutorial", "broadcast")
TUTORIAL_HANDLER: Final = "dynamowave.bench.tutorial.handler"
SEED_BATCH: Final = 25  # BatchWriteItem's limit
IDLE_ROOM_SIZE: Final = 100  # idle connections sit in rooms of this many members
# Per-connection limits far above what one sender does in a benchmark.
GENEROUS_LIMITS: Final = {"RATE_LIMIT_PER_SECOND": "100000", "RATE_LIMIT_BURST": "100000"}


def _protocol_stream() -> IO[str]:
    """The real stdout for protocol lines; fd 1 (and print) now go to stderr."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol


def idle_rows(index: int, at_ms: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One idle connection in its room, shaped exactly as ChatStore writes them (wire format)."""
    connection_id = f"idle{index:07d}AAAAAA="
    room = f"idle-{index // IDLE_ROOM_SIZE}"
    connection = {
        "connectionId": {"S": connection_id},
        "userId": {"S": f"idle-user-{index}"},
        "name": {"S": f"idle-user-{index}"},
        "allowedRooms": {"S": "*"},
        "joined": {"M": {room: {"S": "0.0"}}},
        "connectedAt": {"N": str(at_ms)},
        "lastSeen": {"N": str(at_ms)},
        "ttl": {"N": str(at_ms // 1000 + 10800)},
        "tat": {"N": str(at_ms)},
    }
    membership = {
        "pk": {"S": f"ROOM#{room}#S#0.0"},
        "sk": {"S": connection_id},
        "userId": {"S": f"idle-user-{index}"},
        "joinedAt": {"N": str(at_ms)},
    }
    return connection, membership


def _write_all(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    """BatchWriteItem, again for whatever comes back unprocessed."""
    requests = [{"PutRequest": {"Item": item}} for item in items]
    while requests:
        response = dynamodb.batch_write_item(RequestItems={table: requests})
        requests = response.get("UnprocessedItems", {}).get(table, [])


class PipelineSystem:
    """The local runtime in this process, metered."""

    def __init__(
        self,
        system: str,
        post_latency_ms: float,
        shard_size: int | None,
        *,
        batch_size: int = 10,
        batching_window: float = 0.0,
        fanout_workers: int = 0,
    ) -> None:
        self.system = system
        self._fanout_workers = fanout_workers
        self._batch_size = batch_size
        self._batching_window = batching_window
        self.meter = AwsMeter()
        self._undo = meter_every_client(self.meter)
        self._post_latency_ms = post_latency_ms
        self._shard_size = shard_size
        self.runtime: Any = None
        self._posts_at_reset = 0

    async def start(self, secret: str) -> str:
        from dataclasses import replace

        from dynamowave.compat.moto_patches import serialize_dynamodb
        from dynamowave.local.config import RuntimeConfig, default_functions
        from dynamowave.local.faults import FaultConfig, PostFaults
        from dynamowave.local.runtime import LocalRuntime

        serialize_dynamodb()
        chosen = experiments.enabled()
        experiments.before_start(chosen)
        functions = default_functions()
        if self.system == "tutorial":
            functions["ingress"] = replace(functions["ingress"], handler=TUTORIAL_HANDLER)
        env = dict(GENEROUS_LIMITS)
        if self._shard_size:
            env["SHARD_SIZE"] = str(self._shard_size)
        config = RuntimeConfig(
            host="127.0.0.1",
            port=0,
            janitor_interval=0,
            # Members sit idle while the rest connect: at 10,000 on a loaded machine that takes
            # longer than API Gateway's 10-minute idle close, which would end the run mid-setup.
            idle_timeout=MAX_DURATION_SECONDS,
            functions=functions,
            function_env=env,
            jwt_secret=secret,
            faults=FaultConfig(post_to_connection=PostFaults(latency_ms=self._post_latency_ms)),
            batch_size=self._batch_size,
            batching_window=self._batching_window,
            fanout_workers=self._fanout_workers,
        )
        self.runtime = LocalRuntime(experiments.configure(chosen, config))
        # The fan-out's calls in worker processes are counted here too (dynamowave/local/workers.py).
        self.runtime.observe_worker_calls = self.meter.count_calls
        self._meter_invocations()
        await self.runtime.start()
        tables = self.runtime.resources.tables
        self.meter.use_partition_keys({tables[t.logical_name]: t.partition_key.name for t in TABLES})
        return str(self.runtime.ws_url)

    def _meter_invocations(self) -> None:
        runner = self.runtime.runner
        invoke = runner.invoke

        async def metered(name: str, event: Any, **kwargs: Any) -> Any:
            invocation = await invoke(name, event, **kwargs)
            self.meter.lambda_invocation(name, invocation.duration_ms, runner.config(name).memory_mb)
            return invocation

        runner.invoke = metered

    async def seed(self, idle: int) -> dict[str, Any]:
        """Idle connections as rows (a connection item plus its membership in a room of 100),
        written with BatchWriteItem before anyone connects: 100,000 sockets would not fit one
        machine, and the designs only differ in which rows they read."""
        started = time.perf_counter()
        await asyncio.to_thread(self._seed_rows, idle)
        return {"seeded": idle, "seconds": round(time.perf_counter() - started, 2)}

    def _seed_rows(self, idle: int) -> None:
        # Before any client connects, through the real API (moto runs in its own process).
        import boto3

        tables = self.runtime.resources.tables
        dynamodb = boto3.session.Session().client(
            "dynamodb", endpoint_url=self.runtime.aws_endpoint, region_name=self.runtime.config.region
        )
        seeded_at = now_ms()
        for start in range(0, idle, SEED_BATCH):
            rows = [idle_rows(index, seeded_at) for index in range(start, min(idle, start + SEED_BATCH))]
            _write_all(dynamodb, tables["connections"], [connection for connection, _ in rows])
            _write_all(dynamodb, tables["rooms"], [membership for _, membership in rows])
        if idle:
            connection, _ = idle_rows(0, seeded_at)
            self.meter.observe_item(tables["connections"], item_size(connection), idle)
            # Each idle room's shard weighs what its subscriptions weigh (idle_rows: one shape).
            for room_index in range(0, idle, IDLE_ROOM_SIZE):
                _, first = idle_rows(room_index, seeded_at)
                members = min(IDLE_ROOM_SIZE, idle - room_index)
                self.meter.observe_item(
                    tables["rooms"], item_size(first), members, partition=first["pk"]["S"]
                )

    def reset(self) -> None:
        self.meter.reset()
        self._posts_at_reset = self.runtime.management.posts

    def usage(self) -> dict[str, Any]:
        snapshot = self.meter.snapshot()
        # Counted where API Gateway counts (and bills) them: at the Management API, whichever
        # way they came (boto3's client, the functions' signed poster, in process or over HTTP).
        snapshot["post_to_connection"] = self.runtime.management.posts - self._posts_at_reset
        functions = self.runtime.config.functions
        snapshot["memory_mb"] = {name: f.memory_mb for name, f in functions.items()}
        return snapshot

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        self._undo()


class BroadcastSystem:
    """websockets' broadcast(): one process, no storage, no queue, no per-client coroutine."""

    def __init__(self) -> None:
        self._rooms: dict[str, set[Any]] = {}
        self._seq: dict[str, int] = {}
        self._server: Any = None

    async def start(self, secret: str) -> str:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None, max_queue=None)
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def _handle(self, ws: Any) -> None:
        from websockets.asyncio.server import broadcast

        from functions.chat import protocol

        joined: set[str] = set()
        try:
            async for raw in ws:
                frame = json.loads(raw)
                room = str(frame.get("room", ""))
                if frame.get("action") == "join":
                    self._rooms.setdefault(room, set()).add(ws)
                    joined.add(room)
                    reply = {"type": "joined", "room": room, "seq": self._seq.get(room, 0), "members": []}
                    await ws.send(json.dumps({**reply, "messages": [], "more": False}))
                elif frame.get("action") == "sendmessage":
                    seq = self._seq[room] = self._seq.get(room, 0) + 1
                    message = protocol.message_frame(
                        {
                            "room": room,
                            "id": f"b{seq}",
                            "seq": seq,
                            "user": "bench",
                            "name": "bench",
                            "text": frame.get("text", ""),
                            "ts": now_ms(),
                            "clientMsgId": frame.get("clientMsgId"),
                        }
                    )
                    broadcast(self._rooms.get(room, set()), protocol.encode(message))
        finally:
            for room in joined:
                self._rooms.get(room, set()).discard(ws)

    async def seed(self, idle: int) -> dict[str, Any]:
        return {"seeded": 0, "seconds": 0.0}

    def usage(self) -> dict[str, Any]:
        return {}

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def meter(self) -> None:
        return None


async def serve(args: argparse.Namespace) -> int:
    protocol = _protocol_stream()
    secret = os.environ["DYNAMOWAVE_JWT_SECRET"]
    target: PipelineSystem | BroadcastSystem = (
        BroadcastSystem()
        if args.system == "broadcast"
        else PipelineSystem(
            args.system,
            args.post_latency_ms,
            args.shard_size,
            batch_size=args.batch_size,
            batching_window=args.batching_window,
            fanout_workers=args.fanout_workers,
        )
    )

    def reply(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    try:
        ws_url = await target.start(secret)
        reply({"ready": True, "ws_url": ws_url, "pid": os.getpid()})
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return 0
            command = json.loads(line)
            op = command.get("op")
            if op == "seed":
                reply({"ok": True, **(await target.seed(int(command.get("idle", 0))))})
            elif op == "reset":
                if isinstance(target, PipelineSystem):
                    target.reset()
                reply({"ok": True})
            elif op == "usage":
                reply({"ok": True, "usage": target.usage()})
            elif op == "quit":
                reply({"ok": True})
                return 0
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
    finally:
        await target.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dynamowave.bench.server")
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("--post-latency-ms", type=float, default=0.0)
    parser.add_argument("--shard-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=10, help="the fan-out event source's batch size")
    parser.add_argument("--batching-window", type=float, default=0.0, help="its batching window, seconds")
    parser.add_argument("--fanout-workers", type=int, default=0, help="fan-out worker processes (0: threads)")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    raise SystemExit(main())
