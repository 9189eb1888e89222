"""The benchmark's client sockets: N members of one room, one of them sending, all timing arrivals.

The same code, socket count and process drive every system, so the figures differ only by the
server side. Arrival times are taken on this process's monotonic clock, against the instant the
sender's frame left, so no clock is compared across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect

CONNECT_CONCURRENCY: Final = 16
JOIN_CONCURRENCY: Final = 8


class BenchError(RuntimeError):
    """A system did not deliver what the benchmark asked of it."""


@dataclass
class Delivery:
    """One benchmark message: when it was sent and when each member got it."""

    sent_at: float
    expected: int
    arrivals: dict[int, float] = field(default_factory=dict)  # member index -> arrival time
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def arrived(self, member: int, at: float) -> None:
        if member not in self.arrivals:  # at-least-once: duplicates are not deliveries
            self.arrivals[member] = at
            if len(self.arrivals) >= self.expected:
                self.done.set()

    def latencies_ms(self) -> list[float]:
        return [(at - self.sent_at) * 1000 for at in self.arrivals.values()]

    def duration_s(self) -> float:
        return max(self.arrivals.values(), default=self.sent_at) - self.sent_at


@dataclass
class Member:
    index: int
    ws: ClientConnection
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None


class Room:
    """N connected members of one room."""

    def __init__(self, ws_url: str, token: Callable[[int], str], room: str) -> None:
        self._ws_url = ws_url.rstrip("/")
        self._token = token
        self.room = room
        self.members: list[Member] = []
        self._pending: dict[str, Delivery] = {}
        self.errors: list[dict[str, Any]] = []

    async def connect(self, count: int) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(index: int) -> Member:
            async with gate:
                url = f"{self._ws_url}/?{urlencode({'token': self._token(index)})}"
                ws = await connect(url, open_timeout=60, max_size=None, compression=None, ping_interval=None)
            member = Member(index, ws)
            member.reader = asyncio.create_task(self._read(member))
            return member

        self.members = list(await asyncio.gather(*(one(i) for i in range(count))))

    async def join(self) -> None:
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)

        async def one(member: Member) -> None:
            async with gate:
                await member.ws.send(json.dumps({"action": "join", "room": self.room}))
                await asyncio.wait_for(member.joined.wait(), timeout=60)

        await asyncio.gather(*(one(member) for member in self.members))

    async def _read(self, member: Member) -> None:
        with contextlib.suppress(Exception):  # the socket closes when the benchmark ends
            async for raw in member.ws:
                now = time.perf_counter()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "message":
                    delivery = self._pending.get(str(frame.get("clientMsgId")))
                    if delivery is not None:
                        delivery.arrived(member.index, now)
                elif kind == "joined" and frame.get("room") == self.room:
                    member.joined.set()
                elif kind == "error" or (kind is None and "message" in frame):
                    self.errors.append(frame)

    async def deliver(self, client_msg_id: str, text: str, timeout: float) -> Delivery:
        """Member 0 sends one message; returns once every member has it (or raises)."""
        delivery = Delivery(time.perf_counter(), expected=len(self.members))
        self._pending[client_msg_id] = delivery
        frame = {"action": "sendmessage", "room": self.room, "text": text, "clientMsgId": client_msg_id}
        delivery.sent_at = time.perf_counter()
        await self.members[0].ws.send(json.dumps(frame))
        try:
            await asyncio.wait_for(delivery.done.wait(), timeout=timeout)
        except TimeoutError:
            raise BenchError(
                f"{client_msg_id}: {len(delivery.arrivals)} of {delivery.expected} members got it "
                f"within {timeout:.0f} s; errors: {self.errors[-3:]}"
            ) from None
        return delivery

    async def close(self) -> None:
        for member in self.members:
            if member.reader is not None:
                member.reader.cancel()
        await asyncio.gather(*(m.ws.close() for m in self.members), return_exceptions=True)
        self.members = []
