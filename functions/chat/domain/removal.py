"""Removing a connection: its memberships, counters, presence and records, and the presence
`leave` of each user whose last connection in a room it was (docs/fanout.md, "Pruning").

One piece, shared by everything that ends a connection: `$disconnect` (the ingress), a 410 from
PostToConnection (the fan-out) and the janitor. Safe to repeat and to race: each membership is
removed by exactly one caller, so each `leave` is announced once.
"""

from __future__ import annotations

from typing import Protocol

from functions.chat import protocol
from functions.chat.domain.ports import ConnectionRemover, JobSink, ShardDirectory
from functions.chat.domain.room_jobs import room_jobs
from functions.chat.jobs import FanoutJob


class RemovalStore(ConnectionRemover, ShardDirectory, Protocol):
    """What a removal needs of the store: the removal itself, and the rooms' shards to announce
    the leaves to."""


class ConnectionRemoval:
    def __init__(self, store: RemovalStore, queue: JobSink) -> None:
        self._store = store
        self._queue = queue

    def remove(self, connection_id: str, correlation_id: str = "") -> int:
        """Remove the connection; the number of presence jobs enqueued (a `Pruner`)."""
        jobs: list[FanoutJob] = []
        for left in self._store.remove_connection(connection_id):
            if left.last_connection_of_user:
                frame = protocol.presence_frame(left.room, left.user_id, "leave")
                jobs.extend(room_jobs(self._store, left.room, frame, correlation_id))
        if jobs:
            self._queue.enqueue(jobs)
        return len(jobs)
