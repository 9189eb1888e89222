"""Coalesced delivery end to end (docs/protocol.md, "Coalesced delivery").

`dynamowave serve` with a batching window, a client connected with `?batch=1` and a v1 client in
one room spanning several shards, two senders sending at once: both clients receive every message
(the coalescing one at least partly in `batch` frames, the v1 one never), each once after
de-duplication and in seq order after sorting, with no gap.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
import websockets

from functions.chat import protocol
from tests.e2e.conftest import Server, start_server

MESSAGES_PER_SENDER = 8
SENDERS = 2


@pytest.fixture(scope="module")
def coalescing_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(
        tmp_path_factory.mktemp("coalescing"),
        "--janitor-interval",
        "0",
        "--batch-size",
        "100",
        "--batching-window",
        "0.5",
        "--env",
        "SHARD_SIZE=2",  # the room spans several shards: several jobs per message
    )
    yield server
    server.stop()


async def read_until(ws: Any, seqs_wanted: int, room: str, timeout: float) -> tuple[list[int], list[str]]:
    """(seq of every message received, type of every raw frame) until `seqs_wanted` distinct seqs."""
    seqs: list[int] = []
    kinds: list[str] = []
    deadline = time.monotonic() + timeout
    while len(set(seqs)) < seqs_wanted:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {sorted(set(seqs))} of {seqs_wanted} messages arrived"
        raw = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        kinds.append(str(raw.get("type")))
        seqs.extend(
            f["seq"] for f in protocol.unbatch(raw) if f.get("type") == "message" and f["room"] == room
        )
    return seqs, kinds


def test_a_coalescing_client_and_a_v1_client_both_receive_everything(coalescing_server: Server) -> None:
    room = f"co{uuid.uuid4().hex[:8]}"
    token = coalescing_server.token

    async def scenario() -> tuple[tuple[list[int], list[str]], tuple[list[int], list[str]]]:
        batched = await websockets.connect(coalescing_server.url(token("batched"), batch="1"), max_size=None)
        plain = await websockets.connect(coalescing_server.url(token("plain")), max_size=None)
        senders = [
            await websockets.connect(coalescing_server.url(token(f"sender{i}")), max_size=None)
            for i in range(SENDERS)
        ]
        try:
            for ws in (batched, plain, *senders):
                await ws.send(json.dumps({"action": "join", "room": room}))
                while json.loads(await ws.recv()).get("type") != "joined":
                    pass

            async def send_all(ws: Any, index: int) -> None:
                for n in range(MESSAGES_PER_SENDER):
                    frame = {
                        "action": "sendmessage",
                        "room": room,
                        "text": f"{index}-{n}",
                        "clientMsgId": f"c{index}x{n}",
                    }
                    await ws.send(json.dumps(frame))

            total = SENDERS * MESSAGES_PER_SENDER
            readers = asyncio.gather(read_until(batched, total, room, 60), read_until(plain, total, room, 60))
            await asyncio.gather(*(send_all(ws, i) for i, ws in enumerate(senders)))
            return await readers
        finally:
            for ws in (batched, plain, *senders):
                await ws.close()

    (batched_seqs, batched_kinds), (plain_seqs, plain_kinds) = asyncio.run(asyncio.wait_for(scenario(), 85))
    everything = list(range(1, SENDERS * MESSAGES_PER_SENDER + 1))
    assert sorted(set(batched_seqs)) == everything
    assert sorted(set(plain_seqs)) == everything
    assert "batch" in batched_kinds  # the window gathered several messages for this shard
    assert "batch" not in plain_kinds  # v1: one frame per message, always
