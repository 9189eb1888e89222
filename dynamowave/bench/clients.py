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
from websockets.exceptions import InvalidStatus

from dynamowave.client_core import RoomLog, reconnect_delay
from functions.chat.protocol import unbatch

CONNECT_CONCURRENCY: Final = 16
HANDSHAKE_ATTEMPTS: Final = 4
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
        # At-least-once: duplicates are not deliveries. Members from `expected` on (a join
        # storm's joiners) are not counted: they were not all members when it was sent.
        if member < self.expected and member not in self.arrivals:
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
    log: RoomLog = field(default_factory=lambda: RoomLog("bench"))  # de-duplicates by seq


class Room:
    """N connected members of one room (with `batch`, each opted in to coalesced delivery)."""

    def __init__(self, ws_url: str, token: Callable[[int], str], room: str, *, batch: bool = False) -> None:
        self._ws_url = ws_url.rstrip("/")
        self._token = token
        self._batch = batch
        self.room = room
        self.members: list[Member] = []
        self._pending: dict[str, Delivery] = {}
        self._sent: dict[str, tuple[Member, str]] = {}  # clientMsgId -> (sender, frame) of a stream
        self.errors: list[dict[str, Any]] = []
        self.resends = 0
        self.handshake_retries = 0

    async def connect(self, count: int) -> list[Member]:
        """Connect `count` more members (they join with `join`); returns them."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        first = len(self.members)

        async def one(index: int) -> Member:
            async with gate:
                query = {"token": self._token(index), **({"batch": "1"} if self._batch else {})}
                ws = await self._handshake(f"{self._ws_url}/?{urlencode(query)}")
            member = Member(index, ws)
            member.reader = asyncio.create_task(self._read(member))
            return member

        added = list(await asyncio.gather(*(one(i) for i in range(first, first + count))))
        self.members += added
        return added

    async def _handshake(self, url: str) -> ClientConnection:
        """Connect as the clients do: a handshake refused with a 5xx (an authorizer or `$connect`
        that failed, e.g. timed out on a loaded machine) is tried again after the clients'
        reconnect backoff, a few times; a 4xx is final. Retries are counted in the report."""
        for attempt in range(1, HANDSHAKE_ATTEMPTS + 1):
            try:
                return await connect(
                    url, open_timeout=60, max_size=None, compression=None, ping_interval=None
                )
            except InvalidStatus as refused:
                if refused.response.status_code < 500 or attempt == HANDSHAKE_ATTEMPTS:
                    raise
                self.handshake_retries += 1
                await asyncio.sleep(reconnect_delay(attempt))
        raise AssertionError("unreachable")

    async def join(self, members: list[Member] | None = None) -> None:
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)

        async def one(member: Member) -> None:
            async with gate:
                await self._join_one(member)

        await asyncio.gather(*(one(member) for member in (self.members if members is None else members)))

    async def _join_one(self, member: Member, timeout: float = 60) -> None:
        await member.ws.send(json.dumps({"action": "join", "room": self.room}))
        await asyncio.wait_for(member.joined.wait(), timeout=timeout)

    async def join_storm(self, members: list[Member], duration: float) -> float:
        """Each of `members` joins at its slot, evenly over `duration` seconds (open loop: a
        slow join does not hold the next one back); returns the seconds until the last joined."""
        started = time.perf_counter()

        async def one(index: int, member: Member) -> None:
            await asyncio.sleep(max(0.0, started + index * duration / len(members) - time.perf_counter()))
            await self._join_one(member, timeout=120 + duration)

        await asyncio.gather(*(one(i, m) for i, m in enumerate(members)))
        return time.perf_counter() - started

    async def stream(
        self,
        *,
        rate: float,
        senders: int,
        duration: float,
        text: str,
        prefix: str,
        timeout: float,
        expected: int,
    ) -> list[Delivery]:
        """`senders` members (the first ones) share `rate` messages per second for `duration`
        seconds, each sent at its slot whatever the acks do (open loop); returns once every one
        reached the first `expected` members (or raises)."""
        count = max(1, round(rate * duration))
        started = time.perf_counter()
        deliveries: list[Delivery] = []
        for index in range(count):
            await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
            client_msg_id = f"{prefix}{index}"
            delivery = Delivery(time.perf_counter(), expected=expected)
            self._pending[client_msg_id] = delivery
            frame = json.dumps(
                {"action": "sendmessage", "room": self.room, "text": text, "clientMsgId": client_msg_id}
            )
            sender = self.members[index % senders]
            self._sent[client_msg_id] = (sender, frame)
            await sender.ws.send(frame)
            deliveries.append(delivery)
        try:
            await asyncio.wait_for(asyncio.gather(*(d.done.wait() for d in deliveries)), timeout=timeout)
        except TimeoutError:
            short = [d for d in deliveries if not d.done.is_set()]
            raise BenchError(
                f"{len(short)} of {count} messages did not reach all {expected} members within "
                f"{timeout:.0f} s; errors: {self.errors[-3:]}"
            ) from None
        return deliveries

    async def _read(self, member: Member) -> None:
        with contextlib.suppress(Exception):  # the socket closes when the benchmark ends
            async for raw in member.ws:
                now = time.perf_counter()
                for frame in unbatch(json.loads(raw)):  # a `batch` carries several (coalesced)
                    kind = frame.get("type")
                    if kind == "message":
                        seq = frame.get("seq")
                        if isinstance(seq, int) and not member.log.record(seq):
                            continue  # at-least-once: a repeated delivery is not another arrival
                        delivery = self._pending.get(str(frame.get("clientMsgId")))
                        if delivery is not None:
                            delivery.arrived(member.index, now)
                    elif kind == "joined" and frame.get("room") == self.room:
                        member.joined.set()
                    elif kind == "error" or (kind is None and "message" in frame):
                        self.errors.append(frame)
                        self._resend(frame)

    def _resend(self, error: dict[str, Any]) -> None:
        """A stream's send refused with `internal` (e.g. "the room is busy") is sent again, as a
        client would (docs/protocol.md: idempotent on clientMsgId); `resends` counts them."""
        sent = self._sent.get(str(error.get("clientMsgId")))
        if sent is None or error.get("code") != "internal":
            return
        self.resends += 1
        sender, frame = sent
        asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(sender.ws.send(frame)))

    async def deliver(self, client_msg_id: str, text: str, timeout: float) -> Delivery:
        """Member 0 sends one message; returns once every member has it (or raises)."""
        joined = sum(1 for member in self.members if member.joined.is_set())  # a storm's joiners come later
        delivery = Delivery(time.perf_counter(), expected=joined)
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
