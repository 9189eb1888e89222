"""The one retry policy: exponential backoff with full jitter (AWS's recommended backoff).

Every retry in the functions waits ``uniform(0, min(cap, base * 2**retry))``: posts to the
Management API (base and cap from settings), seq and transaction conflicts in DynamoDB, and
SQS batch entries the queue did not accept. Full jitter spreads the callers that lost the same
race, so they do not collide again on the next attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

Draw = Callable[[float, float], float]
_MAX_EXPONENT: Final = 30  # past any cap; keeps base * 2**retry a small float


@dataclass(frozen=True)
class Backoff:
    base_ms: float
    cap_ms: float

    def delay_seconds(self, retry: int, draw: Draw = random.uniform) -> float:
        """The pause before retry number `retry` (0 for the first retry)."""
        return draw(0.0, min(self.cap_ms, self.base_ms * 2 ** min(retry, _MAX_EXPONENT))) / 1000.0

    def sleep(self, retry: int) -> None:
        time.sleep(self.delay_seconds(retry))


# Transaction conflicts clear in milliseconds: 5 ms doubling, at most 200 ms.
CONFLICT_BACKOFF: Final = Backoff(base_ms=5, cap_ms=200)
# SQS entries a batch did not accept (throttled or internal): 50 ms doubling, at most 1 s.
QUEUE_BACKOFF: Final = Backoff(base_ms=50, cap_ms=1000)
