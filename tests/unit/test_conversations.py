"""The pure part of v2 conversations: DM names, unread counts, the `rooms` reply's order and size."""

from __future__ import annotations

from functions.chat import protocol
from functions.chat.domain import conversations
from functions.chat.domain.ports import Membership, RoomState


def test_dm_room_is_stable_for_the_pair_and_a_valid_room_name() -> None:
    long_a, long_b = "a@" + "x" * 62, "b@" + "y" * 62
    room = conversations.dm_room(long_a, long_b)
    assert room == conversations.dm_room(long_b, long_a)
    assert protocol.ROOM_PATTERN.fullmatch(room) and conversations.is_dm_room(room)
    assert conversations.dm_room("alice", "bob") != conversations.dm_room("alice", "bob2")
    assert not conversations.is_dm_room("dmz")


def test_unread_is_never_negative() -> None:
    assert conversations.unread(10, 7) == 3
    assert conversations.unread(3, 5) == 0


def message(room: str, seq: int, ts: int, text: str = "hi") -> dict[str, object]:
    return {
        "room": room,
        "seq": seq,
        "id": "i",
        "user": "u",
        "name": "U",
        "text": text,
        "ts": ts,
        "clientMsgId": "c",
    }


def test_rooms_are_newest_activity_first_and_fit_under_the_message_limit() -> None:
    memberships = [Membership(f"r{n}", "room", None, 0, joined_at=n) for n in range(600)]
    states = {
        m.room: RoomState(5, message(m.room, 5, 1000 + int(m.room[1:]), "z" * 400)) for m in memberships
    }
    frame = conversations.rooms_frame(memberships, states)
    rooms = frame["rooms"]
    assert frame["more"] is True and 0 < len(rooms) < 600
    assert [r["room"] for r in rooms[:2]] == ["r599", "r598"]
    assert protocol.frame_size(frame) <= protocol.MAX_MESSAGE_BYTES
    assert (
        rooms[0]["last"]["truncated"] is True
        and len(rooms[0]["last"]["text"]) == protocol.ROOMS_PREVIEW_CHARS
    )
    assert rooms[0]["unread"] == 5


def test_a_dm_entry_names_the_other_user_and_caps_the_marker() -> None:
    entry = conversations.room_entry(Membership("dm.x", "dm", "bob", 9, 0), RoomState(4, None))
    assert entry == {
        "room": "dm.x",
        "kind": "dm",
        "with": "bob",
        "seq": 4,
        "read": 4,
        "unread": 0,
        "last": None,
    }
