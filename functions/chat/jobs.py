"""Fan-out jobs: what ingress (and fan-out itself, for retries) puts on the SQS queue.

A job names a room and the frame to post, and either one membership shard (the fan-out Lambda
reads its members with one paginated Query) or an explicit list of connection ids (a retry of
the recipients that still failed). ``attempt`` counts retries; past the limit the job goes to
the dead-letter queue with ``reason``. ``redrives`` counts how often the redriver put it back
from the DLQ, and ``dead_since`` (epoch ms) is when it first reached the DLQ (functions/chat/domain/redrive.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

JOB_VERSION = 1


class InvalidJob(ValueError):
    """A queue message that is not a fan-out job: a poison record (it goes to the DLQ)."""


@dataclass(frozen=True)
class FanoutJob:
    room: str
    frame: dict[str, Any]
    shard: str | None = None
    connections: tuple[str, ...] | None = None
    exclude: str | None = None
    attempt: int = 0
    correlation_id: str = ""
    reason: str | None = None
    redrives: int = 0
    dead_since: int | None = None

    def __post_init__(self) -> None:
        if (self.shard is None) == (self.connections is None):
            raise InvalidJob("a job names exactly one of 'shard' or 'connections'")

    def retry(self, connections: list[str], reason: str) -> FanoutJob:
        """The same frame, only for `connections`, one attempt further on."""
        return replace(
            self, shard=None, connections=tuple(connections), attempt=self.attempt + 1, reason=reason
        )

    def dead_lettered(self, reason: str) -> FanoutJob:
        return replace(self, reason=reason)

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "v": JOB_VERSION,
            "room": self.room,
            "frame": self.frame,
            "shard": self.shard,
            "connections": None if self.connections is None else list(self.connections),
            "exclude": self.exclude,
            "attempt": self.attempt,
            "correlationId": self.correlation_id,
        }
        if self.reason is not None:
            body["reason"] = self.reason
        if self.redrives:
            body["redrives"] = self.redrives
        if self.dead_since is not None:
            body["deadSince"] = self.dead_since
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> FanoutJob:
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise InvalidJob(f"job is not JSON: {exc}") from None
        if not isinstance(body, dict) or body.get("v") != JOB_VERSION:
            raise InvalidJob("job has no supported version 'v'")
        room, frame = body.get("room"), body.get("frame")
        if not isinstance(room, str) or not isinstance(frame, dict):
            raise InvalidJob("job needs a string 'room' and an object 'frame'")
        shard = body.get("shard")
        connections = body.get("connections")
        if shard is not None and not isinstance(shard, str):
            raise InvalidJob("'shard' must be a string")
        if connections is not None and (
            not isinstance(connections, list) or not all(isinstance(c, str) for c in connections)
        ):
            raise InvalidJob("'connections' must be a list of strings")
        attempt = body.get("attempt", 0)
        if not isinstance(attempt, int) or attempt < 0:
            raise InvalidJob("'attempt' must be a non-negative integer")
        exclude = body.get("exclude")
        redrives, dead_since = body.get("redrives", 0), body.get("deadSince")
        if not isinstance(redrives, int) or isinstance(redrives, bool) or redrives < 0:
            raise InvalidJob("'redrives' must be a non-negative integer")
        if dead_since is not None and (not isinstance(dead_since, int) or isinstance(dead_since, bool)):
            raise InvalidJob("'deadSince' must be an integer (epoch ms)")
        return cls(
            room=room,
            frame=frame,
            shard=shard,
            connections=None if connections is None else tuple(connections),
            exclude=exclude if isinstance(exclude, str) else None,
            attempt=attempt,
            correlation_id=str(body.get("correlationId") or ""),
            reason=body.get("reason") if isinstance(body.get("reason"), str) else None,
            redrives=redrives,
            dead_since=dead_since,
        )
