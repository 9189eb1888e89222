"""The one clock of the functions: wall time in epoch milliseconds (what every stored time uses)."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def now_ms() -> int:
    return int(time.time() * 1000)
