"""Fault injection: the failures a deployed stack meets, on demand, for tests and demos.

The faults file (``--faults FILE``) and the ``/dev/faults`` endpoint take the same JSON::

    {"post_to_connection": {"throttle_rate": 0.2, "error_rate": 0.05, "gone_rate": 0.0,
                            "latency_ms": 20},
     "fanout_crash_rate": 0.1, "sqs_duplicate_rate": 0.1, "seed": 7}

* ``post_to_connection``: every Management API call waits ``latency_ms``, then fails with 429
  LimitExceededException (``throttle_rate``) or 500 (``error_rate``). PostToConnection also fails
  with 410 GoneException (``gone_rate``): the connection is then dropped behind the runtime's back
  (no ``$disconnect``), as if API Gateway had lost it, so the caller's 410 handling is the only
  cleanup.
* ``fanout_crash_rate``: a fan-out invocation processes a random prefix of its batch, then
  crashes; the event source deletes nothing, so every record of the batch reappears after the
  visibility timeout (duplicate deliveries, as after a real crash).
* ``sqs_duplicate_rate``: a record the handler processed is delivered once more (left on the
  queue and made visible at once), as SQS standard queues occasionally do.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ManagementFault = Literal["throttle", "error", "gone"]


class FaultConfigError(ValueError):
    """The faults JSON is malformed: the message names the offending key."""


@dataclass(frozen=True)
class PostFaults:
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    gone_rate: float = 0.0
    latency_ms: float = 0.0


@dataclass(frozen=True)
class FaultConfig:
    post_to_connection: PostFaults = field(default_factory=PostFaults)
    fanout_crash_rate: float = 0.0
    sqs_duplicate_rate: float = 0.0
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> FaultConfig:
        if not isinstance(data, dict):
            raise FaultConfigError("faults must be a JSON object")
        _reject_unknown(data, {"post_to_connection", "fanout_crash_rate", "sqs_duplicate_rate", "seed"}, "")
        post_raw = data.get("post_to_connection", {})
        if not isinstance(post_raw, dict):
            raise FaultConfigError("post_to_connection must be an object")
        _reject_unknown(
            post_raw, {"throttle_rate", "error_rate", "gone_rate", "latency_ms"}, "post_to_connection."
        )
        post = PostFaults(
            throttle_rate=_rate(post_raw, "throttle_rate", "post_to_connection."),
            error_rate=_rate(post_raw, "error_rate", "post_to_connection."),
            gone_rate=_rate(post_raw, "gone_rate", "post_to_connection."),
            latency_ms=_non_negative(post_raw, "latency_ms", "post_to_connection."),
        )
        if post.throttle_rate + post.error_rate + post.gone_rate > 1.0:
            raise FaultConfigError("post_to_connection: throttle_rate + error_rate + gone_rate must be <= 1")
        seed = data.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise FaultConfigError("seed must be an integer")
        return cls(
            post_to_connection=post,
            fanout_crash_rate=_rate(data, "fanout_crash_rate", ""),
            sqs_duplicate_rate=_rate(data, "sqs_duplicate_rate", ""),
            seed=seed,
        )


def _reject_unknown(data: dict[Any, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise FaultConfigError(f"unknown key(s) {', '.join(where + k for k in unknown)}")


def _number(data: dict[Any, Any], key: str, where: str) -> float:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultConfigError(f"{where}{key} must be a number, got {value!r}")
    return float(value)


def _rate(data: dict[Any, Any], key: str, where: str) -> float:
    value = _number(data, key, where)
    if not 0.0 <= value <= 1.0:
        raise FaultConfigError(f"{where}{key} must be between 0 and 1, got {value}")
    return value


def _non_negative(data: dict[Any, Any], key: str, where: str) -> float:
    value = _number(data, key, where)
    if value < 0:
        raise FaultConfigError(f"{where}{key} must be >= 0, got {value}")
    return value


class FaultInjector:
    """Draws faults from the current config; the config can be swapped at run time (thread-safe)."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._random = random.Random()
        # How many faults were injected, by kind (reported by /dev/info).
        self.injected: dict[str, int] = {
            "throttle": 0,
            "error": 0,
            "gone": 0,
            "fanout_crash": 0,
            "sqs_duplicate": 0,
        }
        self.configure(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = config
            self._random = random.Random(config.seed)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def _draw(self) -> float:
        with self._lock:
            return self._random.random()

    def management_faultless(self) -> bool:
        """No Management API fault or latency configured: every post's answer is known at once."""
        post = self._config.post_to_connection
        return post.throttle_rate == post.error_rate == post.gone_rate == post.latency_ms == 0.0

    def management_latency_seconds(self) -> float:
        return self._config.post_to_connection.latency_ms / 1000.0

    def management_fault(self, *, allow_gone: bool) -> ManagementFault | None:
        post = self._config.post_to_connection
        if post.throttle_rate == post.error_rate == post.gone_rate == 0.0:
            return None
        draw = self._draw()
        fault: ManagementFault | None = None
        if draw < post.throttle_rate:
            fault = "throttle"
        elif draw < post.throttle_rate + post.error_rate:
            fault = "error"
        elif allow_gone and draw < post.throttle_rate + post.error_rate + post.gone_rate:
            fault = "gone"
        if fault is not None:
            self._count(fault)
        return fault

    def fanout_crash_after(self, batch_size: int) -> int | None:
        """How many records a crashing invocation processes before it dies, or None (no crash)."""
        if self._config.fanout_crash_rate == 0.0 or self._draw() >= self._config.fanout_crash_rate:
            return None
        self._count("fanout_crash")
        with self._lock:
            return self._random.randrange(batch_size)

    def duplicate_record(self) -> bool:
        if self._config.sqs_duplicate_rate == 0.0 or self._draw() >= self._config.sqs_duplicate_rate:
            return False
        self._count("sqs_duplicate")
        return True
