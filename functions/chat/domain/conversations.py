"""Users and conversations, the pure part (docs/protocol.md, "v2: users and conversations"):
DM room names and the entries of the `rooms` reply. No I/O; `ChatService` does the calls.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from functions.chat import protocol
from functions.chat.domain.ports import Membership, RoomState

# DM rooms are named by the server: this prefix and a hash of the pair. Names with the prefix
# are reserved: `join` of one is refused unless it is an open DM of the caller.
DM_PREFIX: Final = "dm."


def dm_room(first: str, second: str) -> str:
    """The pair's one DM room: stable whoever opens it, a valid room name (user ids may hold
    `@`, which room names may not, and two ids of 64 characters would not fit: hence a hash)."""
    low, high = sorted((first, second))
    digest = hashlib.blake2b(f"{low}\n{high}".encode(), digest_size=16).hexdigest()
    return f"{DM_PREFIX}{digest}"


def is_dm_room(room: str) -> bool:
    return room.startswith(DM_PREFIX)


def unread(latest: int, read: int) -> int:
    """Messages after the read marker: every message counts, the user's own too (the clients
    move the marker when the user posts or looks at the room; the server does not, so a send
    costs no extra write)."""
    return max(0, latest - read)


def room_entry(membership: Membership, state: RoomState) -> dict[str, Any]:
    entry: dict[str, Any] = {"room": membership.room, "kind": membership.kind}
    if membership.peer is not None:
        entry["with"] = membership.peer
    read = min(membership.read, state.seq)
    entry.update(
        seq=state.seq,
        read=read,
        unread=unread(state.seq, read),
        last=None if state.last is None else protocol.preview(state.last),
    )
    return entry


def rooms_frame(memberships: list[Membership], states: dict[str, RoomState]) -> dict[str, Any]:
    """The `rooms` reply: newest activity first (the latest message's time, else when the user
    joined), ties by room name; as many rooms as fit under the message limit, `more` if not all."""

    def activity(membership: Membership) -> tuple[int, str]:
        last = states[membership.room].last
        return (-(int(last["ts"]) if last else membership.joined_at), membership.room)

    ordered = sorted(memberships, key=activity)
    entries, more = protocol.fit_rooms([room_entry(m, states[m.room]) for m in ordered])
    return {"type": "rooms", "rooms": entries, "more": more}
