"""An invocation's time budget, which the fan-out and the janitor stop short of."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """The invocation's time budget: Lambda's remaining time minus a safety margin."""

    remaining_ms: Callable[[], int]  # context.get_remaining_time_in_millis
    safety_ms: int

    def left_ms(self) -> int:
        return self.remaining_ms() - self.safety_ms

    def expired(self) -> bool:
        return self.left_ms() <= 0

    def allows_sleep(self, seconds: float) -> bool:
        return seconds * 1000 < self.left_ms()
