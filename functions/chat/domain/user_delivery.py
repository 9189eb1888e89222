"""User-addressed delivery: a frame for a *user*, posted to every live connection they have.

Room frames reach a room's subscribed connections through its membership shards. Some frames
are for a person instead, wherever they are connected, subscribed to the room or not: `invited`,
`read` from another device, `receipt`, `left` after a leave on another device, and (issue 13)
`kicked`, `banned` and the operator API's `event`. `UserDelivery.deliver` finds the user's
connections with one Query of their partition in the rooms table (no Scan; the entries are
written on `$connect` and removed on `$disconnect`, 410 and the janitor's prune, see
docs/data-model.md) and queues one fan-out job listing them, so these frames get exactly the
room fan-out's guarantees: backoff on 429/5xx, a retry job for recipients still failing, the
dead-letter queue past the attempt limit, and a 410 prunes the connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from functions.chat.domain.ports import JobSink, UserIndex
from functions.chat.jobs import FanoutJob

# Connection ids per job: a user has a handful, but an SQS message is kept well under 256 KB.
CONNECTIONS_PER_JOB: Final = 100


class UserDelivery:
    """Deliver frames to users: ``deliver(user_id, frame)``; the fan-out Lambda does the posting."""

    def __init__(self, store: UserIndex, queue: JobSink, clock: Callable[[], int]) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock

    def connections(self, user_id: str) -> list[str]:
        """The user's live connections (a consistent Query: one that connected is listed)."""
        return self._store.user_connections(user_id, self._clock())

    def deliver(
        self,
        user_id: str,
        frame: dict[str, Any],
        *,
        correlation_id: str = "",
        exclude: Iterable[str] = (),
    ) -> int:
        """Queue `frame` for every live connection of `user_id` but those in `exclude` (say,
        the connection that gets it as its route response). Returns the number of jobs queued:
        0 when the user has no live connection (then nothing is kept for later: a client that
        connects asks for `rooms`). Raises if the queue refuses the job."""
        skip = set(exclude)
        targets = [c for c in self.connections(user_id) if c not in skip]
        return self.deliver_to_connections(targets, frame, correlation_id=correlation_id)

    def deliver_to_connections(
        self, connections: list[str], frame: dict[str, Any], *, correlation_id: str = ""
    ) -> int:
        """Queue `frame` for connections already looked up (several users' at once, say)."""
        room = str(frame.get("room") or "")
        jobs = [
            FanoutJob(
                room=room,
                frame=frame,
                connections=tuple(connections[start : start + CONNECTIONS_PER_JOB]),
                correlation_id=correlation_id,
            )
            for start in range(0, len(connections), CONNECTIONS_PER_JOB)
        ]
        if jobs:
            self._queue.enqueue(jobs)
        return len(jobs)
