"""A room's history epoch (docs/protocol.md): in `joined` and `history`, stable while the room's
history lasts, new once it is gone (recreated tables, a restarted local runtime)."""

from __future__ import annotations

from typing import Any

from dynamowave.terminal_client import RoomState
from tests.integration.conftest import Chat


def wipe_room(env: Chat, room: str) -> None:
    """What recreating the tables does to one room: its counter and its messages are gone."""
    db = env.dynamodb
    db.delete_item(
        TableName=env.resources.tables["rooms"], Key={"pk": {"S": f"ROOM#{room}"}, "sk": {"S": "META"}}
    )
    for item in env.table_items("messages"):
        if item["room"]["S"] == room:
            db.delete_item(
                TableName=env.resources.tables["messages"], Key={"room": item["room"], "seq": item["seq"]}
            )


def send(env: Chat, connection_id: str, identity: Any, room: str, text: str) -> None:
    env.frame(connection_id, identity, action="sendmessage", room=room, text=text, clientMsgId=text)


def test_joined_and_history_carry_one_epoch_until_the_history_is_reset(chat: Chat) -> None:
    env = chat
    connection_id, alice = env.connect("alice")
    joined = env.frame(connection_id, alice, action="join", room="general")
    assert joined is not None and isinstance(joined["epoch"], str) and joined["epoch"]
    send(env, connection_id, alice, "general", "m1")
    history = env.frame(connection_id, alice, action="history", room="general")
    assert history is not None and history["epoch"] == joined["epoch"]
    other_id, bob = env.connect("bob")
    assert env.ask(other_id, bob, action="join", room="general")["epoch"] == joined["epoch"]
    # Another room has its own epoch.
    assert env.ask(other_id, bob, action="join", room="random")["epoch"] != joined["epoch"]

    wipe_room(env, "general")
    third_id, carol = env.connect("carol")
    fresh = env.frame(third_id, carol, action="join", room="general")
    assert fresh is not None and fresh["seq"] == 0 and fresh["epoch"] != joined["epoch"]
    send(env, third_id, carol, "general", "new1")
    again = env.frame(connection_id, alice, action="history", room="general")
    assert again is not None and again["epoch"] == fresh["epoch"]
    assert [m["seq"] for m in again["messages"]] == [1]


def test_the_terminal_client_drops_its_cache_on_a_new_epoch() -> None:
    room = RoomState("general")
    assert room.new_epoch("e1") is False  # the first epoch seen is no reset
    room.seen.update({1, 2, 3})
    room.latest = 3
    assert room.new_epoch("e1") is False and room.seen == {1, 2, 3}
    assert room.new_epoch("e2") is True
    assert room.seen == set() and room.latest == 0 and room.recovery_mark() == 0
    assert room.new_epoch(None) is False and room.epoch == "e2"  # older servers send none
