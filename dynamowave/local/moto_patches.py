"""Make moto's DynamoDB as serializable as the real one.

Real DynamoDB applies each request, and each TransactWriteItems, atomically. moto checks
conditions and then writes without a lock, so two threads (the threaded moto server, or
threaded tests) can both pass ``seq = :current`` and both write: a lost message that real
DynamoDB can never produce. One lock around each DynamoDB request restores the guarantee the
chat's seq assignment relies on. Applied once per process, before any request.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.RLock()
_applied = False


def serialize_dynamodb() -> None:
    global _applied  # noqa: PLW0603 - a process-wide, idempotent patch
    if _applied:
        return
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _LOCK:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    _applied = True
