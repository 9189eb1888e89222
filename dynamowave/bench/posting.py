"""Client CPU per PostToConnection: boto3's client against the functions' `SignedPoster`.

``python -m dynamowave.bench.posting [--posts N] [--json]`` posts N frames with each, one after
another, to a bare ``@connections`` endpoint on 127.0.0.1 (port 0, answering 200 to every POST
and counting them), and prints the CPU time of the posting thread per post (``time.thread_time``,
so the server's share is not counted) and the wall time, side by side. The fan-out makes one
such call per recipient, so this is the part of its CPU that grows with the room.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

from aiohttp import web

STAGE: Final = "bench"
FRAME: Final = json.dumps({"type": "message", "room": "lobby", "seq": 1, "text": "x" * 120}).encode()


@dataclass(frozen=True)
class PostingFigures:
    poster: str
    posts: int
    cpu_ms_per_post: float
    wall_ms_per_post: float


class CountingEndpoint:
    """The ``@connections`` POST route on its own event loop thread; `received` counts posts."""

    def __init__(self) -> None:
        self.received = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="endpoint", daemon=True)

    async def _post(self, request: web.Request) -> web.Response:
        await request.read()
        self.received += 1
        return web.Response(status=200)

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post(f"/{STAGE}/@connections/{{connection_id}}", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/{STAGE}"

    def __enter__(self) -> CountingEndpoint:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def _measure(name: str, post: Callable[[str, bytes], None], posts: int) -> PostingFigures:
    for warm_up in range(20):
        post(f"warm{warm_up}=", FRAME)
    cpu, wall = time.thread_time(), time.perf_counter()
    for index in range(posts):
        post(f"conn{index}AAAA=", FRAME)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    return PostingFigures(name, posts, cpu / posts * 1000, wall / posts * 1000)


def run(posts: int) -> list[PostingFigures]:
    import boto3
    from botocore.config import Config

    from functions.chat.adapters.management_client import SignedPoster

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")
    session = boto3.session.Session(region_name="us-east-1")
    with CountingEndpoint() as endpoint:
        config = Config(retries={"total_max_attempts": 1}, max_pool_connections=4)
        client = session.client("apigatewaymanagementapi", endpoint_url=endpoint.url, config=config)
        credentials = session.get_credentials()
        assert credentials is not None
        poster = SignedPoster(client, credentials, pool_size=4, connect_timeout=2, read_timeout=5)

        def boto3_post(connection_id: str, data: bytes) -> None:
            client.post_to_connection(ConnectionId=connection_id, Data=data)

        figures = [
            _measure("boto3 post_to_connection (baseline)", boto3_post, posts),
            _measure("SignedPoster.post (the functions)", poster.post, posts),
        ]
        expected = 2 * (posts + 20)
        if endpoint.received != expected:
            raise RuntimeError(f"the endpoint received {endpoint.received} posts, expected {expected}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dynamowave.bench.posting", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--posts", type=int, default=3000, help="posts per poster (default 3000)")
    parser.add_argument("--json", action="store_true", help="one JSON object per poster and line")
    args = parser.parse_args(argv)
    if args.posts < 1:
        parser.error("--posts must be at least 1")
    figures = run(args.posts)
    if args.json:
        for figure in figures:
            print(json.dumps(asdict(figure)))
        return 0
    print(f"{'poster':40} {'posts':>6} {'CPU ms/post':>12} {'wall ms/post':>13}")
    for figure in figures:
        print(
            f"{figure.poster:40} {figure.posts:>6} {figure.cpu_ms_per_post:>12.3f} {figure.wall_ms_per_post:>13.3f}"
        )
    baseline, signed = figures
    print(
        f"SignedPoster uses {baseline.cpu_ms_per_post / signed.cpu_ms_per_post:.2f}x less CPU per post than boto3"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
