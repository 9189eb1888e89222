"""A room event as fan-out jobs: one per membership shard the room has listed."""

from __future__ import annotations

from typing import Any

from functions.chat.domain.ports import ShardDirectory
from functions.chat.jobs import FanoutJob


def room_jobs(
    shards: ShardDirectory, room: str, frame: dict[str, Any], correlation_id: str, exclude: str | None = None
) -> list[FanoutJob]:
    return [
        FanoutJob(room=room, frame=frame, shard=shard, exclude=exclude, correlation_id=correlation_id)
        for shard in shards.list_shards(room)
    ]
