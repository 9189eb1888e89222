"""A WebSocket connection for conformance rows: every frame it receives is kept, and a row
asks for the next frame matching a predicate (or asserts that none arrives)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

Frame = dict[str, Any]
Match = Callable[[Frame], bool]
OPEN_TIMEOUT_SECONDS = 15.0


class CheckFailed(AssertionError):
    """A row's expectation was not met: the message says what was expected and what came."""


def with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(params)
    return urllib.parse.urlunsplit((*parts[:3], urllib.parse.urlencode(query), ""))


def frame(kind: str, /, **fields: Any) -> Match:
    """A predicate: a frame of ``type`` kind whose fields equal ``fields``."""
    return lambda f: f.get("type") == kind and all(f.get(k) == v for k, v in fields.items())


class Probe:
    """One connection. ``frames`` is everything received; ``expect`` consumes in arrival order."""

    def __init__(self, name: str, connection: ClientConnection, timeout: float) -> None:
        self.name = name
        self.connection = connection
        self.timeout = timeout
        self.frames: list[Frame] = []
        self._consumed: set[int] = set()
        self._arrived = asyncio.Condition()
        self.close_code: int | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, name: str, url: str, token: str, *, timeout: float, proxy: bool) -> Probe:
        connection = await connect(
            with_query(url, token=token),
            open_timeout=OPEN_TIMEOUT_SECONDS,
            proxy=True if proxy else None,
            user_agent_header="dynamowave-check",
            max_size=None,
        )
        return cls(name, connection, timeout)

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = {"type": "<not json>", "raw": str(raw)[:200]}
                async with self._arrived:
                    self.frames.append(value if isinstance(value, dict) else {"type": "<not an object>"})
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.connection.close_code or 1006
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, value: Frame | str) -> None:
        await self.connection.send(value if isinstance(value, str) else json.dumps(value))

    def _first(self, match: Match) -> int | None:
        for index, value in enumerate(self.frames):
            if index not in self._consumed and match(value):
                return index
        return None

    async def expect(self, match: Match, what: str, timeout: float | None = None) -> Frame:
        """The first not yet consumed frame that matches, waiting up to ``timeout`` for it."""
        async with self._arrived:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: self._first(match) is not None or self._reader.done()),
                    timeout or self.timeout,
                )
            index = self._first(match)
        if index is None:
            recent = [f for i, f in enumerate(self.frames) if i not in self._consumed][-3:]
            state = f"closed {self.close_code}" if self._reader.done() else "open"
            raise CheckFailed(f"{self.name}: no {what} ({state}; last unread: {_short(recent)})")
        self._consumed.add(index)
        return self.frames[index]

    def drain(self) -> None:
        """Forget every frame received so far (later expectations see only new ones)."""
        self._consumed.update(range(len(self.frames)))

    async def request(self, value: Frame, match: Match, what: str) -> Frame:
        await self.send(value)
        return await self.expect(match, what)

    async def expect_none(self, match: Match, what: str, wait: float) -> None:
        """Fail if a matching frame arrives within ``wait`` seconds."""
        await asyncio.sleep(wait)
        index = self._first(match)
        if index is not None:
            raise CheckFailed(f"{self.name}: unexpected {what}: {_short([self.frames[index]])}")

    async def closed(self, timeout: float | None = None) -> int | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), timeout or self.timeout)
        return self.close_code if self._reader.done() else None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(self._reader, 5)


async def handshake_status(url: str, token: str | None, *, proxy: bool) -> int:
    """The HTTP status of a handshake (101 when it is accepted, then closed at once)."""
    target = url if token is None else with_query(url, token=token)
    try:
        connection = await connect(
            target,
            open_timeout=OPEN_TIMEOUT_SECONDS,
            proxy=True if proxy else None,
            user_agent_header="dynamowave-check",
        )
    except InvalidStatus as exc:
        return int(exc.response.status_code)
    await connection.close()
    return 101


def _short(frames: list[Frame]) -> str:
    text = json.dumps(frames, ensure_ascii=False)
    return text if len(text) <= 300 else text[:297] + "..."
