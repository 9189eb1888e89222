"""Waiting with a deadline: a polled condition, or the next matching frame on a WebSocket."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy (and return that), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout} s")


class ReceivesText(Protocol):
    def recv(self, timeout: float | None = None) -> str | bytes: ...


def wait_for_frame(
    ws: ReceivesText, match: Callable[[dict[str, Any]], bool], timeout: float = 15.0
) -> dict[str, Any]:
    """The next frame `match` accepts on a websockets sync connection, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no matching frame")
        frame: dict[str, Any] = json.loads(ws.recv(timeout=remaining))
        if match(frame):
            return frame
