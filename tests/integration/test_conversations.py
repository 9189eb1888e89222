"""v2 users and conversations against moto (docs/protocol.md): durable membership, `rooms`,
`read`, DMs and user-addressed delivery. Frames go through the real ingress handler; the
assertions read what is stored, what is enqueued and for which connections."""

from __future__ import annotations

from typing import Any

from functions.chat.adapters.dynamodb.keys import deserialize
from functions.chat.domain import conversations
from functions.chat.jobs import FanoutJob
from tests.integration.conftest import Chat
from tests.integration.test_ingress import Client, snapshot


def user_jobs(jobs: list[FanoutJob]) -> list[tuple[frozenset[str], dict[str, Any]]]:
    """Jobs addressed to connections (user-addressed), as (connections, frame)."""
    return [(frozenset(job.connections), job.frame) for job in jobs if job.connections is not None]


def send(client: Client, room: str, text: str) -> None:
    client.send(action="sendmessage", room=room, text=text, clientMsgId=f"m{abs(hash(text)) % 10**9}")


def test_membership_outlives_the_connection_and_rooms_lists_it_on_a_new_one(chat: Chat) -> None:
    first = Client("alice")
    first.send(action="join", room="kitchen")
    first.disconnect()
    second = Client("alice")
    reply = second.send(action="rooms")
    assert reply == {
        "type": "rooms",
        "rooms": [{"room": "kitchen", "kind": "room", "seq": 0, "read": 0, "unread": 0, "last": None}],
        "more": False,
    }
    # Not subscribed: a room action on the new connection still needs a join (v1 semantics).
    assert second.ask(action="history", room="kitchen")["code"] == "not_member"


def test_user_connection_entries_follow_connect_disconnect_and_prune(chat: Chat) -> None:
    store = chat.service._store
    one, two, three = Client("uma"), Client("uma"), Client("uma")
    assert sorted(chat.service.users.connections("uma")) == sorted(
        [one.connection_id, two.connection_id, three.connection_id]
    )
    one.disconnect()
    chat.service.remove_connection(two.connection_id)  # what a 410 or the janitor's prune calls
    assert chat.service.users.connections("uma") == [three.connection_id]
    entries = [deserialize(i) for i in chat.table_items("rooms") if i["pk"]["S"] == "USER#uma"]
    assert [e["sk"] for e in entries] == [f"CONN#{three.connection_id}"]
    assert store.get_connection(one.connection_id) is None


def test_leave_ends_membership_on_every_connection_and_each_gets_left(chat: Chat) -> None:
    phone, laptop, bob = Client("alice"), Client("alice"), Client("bob")
    idle = Client("alice")  # never joined the room: still told, so its room list drops it
    for client in (phone, laptop, bob):
        client.send(action="join", room="yard")
    chat.drain_jobs()
    assert phone.send(action="leave", room="yard") == {"type": "left", "room": "yard"}
    jobs = chat.drain_jobs()
    assert [j.frame for j in jobs if j.shard is not None] == [
        {"type": "presence", "room": "yard", "user": "alice", "event": "leave"}
    ]
    assert user_jobs(jobs) == [
        (frozenset({laptop.connection_id, idle.connection_id}), {"type": "left", "room": "yard"})
    ]
    for client in (phone, laptop):
        record = chat.service._store.get_connection(client.connection_id)
        assert record is not None and "yard" not in record.joined
        assert (
            client.ask(action="sendmessage", room="yard", text="x", clientMsgId="c")["code"] == "not_member"
        )
    assert chat.service._store.membership("alice", "yard") is None
    assert [r["room"] for r in bob.ask(action="rooms")["rooms"]] == ["yard"]
    assert laptop.ask(action="rooms")["rooms"] == []
    assert phone.send(action="leave", room="yard") == {"type": "left", "room": "yard"}  # idempotent
    assert [j for j in chat.drain_jobs() if j.shard is not None] == []


def test_read_moves_forward_only_capped_and_syncs_the_users_other_connections(chat: Chat) -> None:
    phone, laptop, bob = Client("alice"), Client("alice"), Client("bob")
    for client in (phone, laptop, bob):
        client.send(action="join", room="news")
    for n in range(3):
        send(bob, "news", f"n{n}")
    chat.drain_jobs()
    assert phone.send(action="read", room="news", seq=2) == {
        "type": "read",
        "room": "news",
        "seq": 2,
        "unread": 1,
    }
    assert user_jobs(chat.drain_jobs()) == [
        (frozenset({laptop.connection_id}), {"type": "read", "room": "news", "seq": 2, "unread": 1})
    ]
    # Backwards is a no-op that reports the marker; past the latest seq is capped at it.
    assert laptop.send(action="read", room="news", seq=1) == {
        "type": "read",
        "room": "news",
        "seq": 2,
        "unread": 1,
    }
    assert chat.drain_jobs() == []
    assert laptop.send(action="read", room="news", seq=99) == {
        "type": "read",
        "room": "news",
        "seq": 3,
        "unread": 0,
    }
    assert user_jobs(chat.drain_jobs()) == [
        (frozenset({phone.connection_id}), {"type": "read", "room": "news", "seq": 3, "unread": 0})
    ]
    stored = chat.service._store.membership("alice", "news")
    assert stored is not None and stored.read == 3
    # Not a DM: no receipt to anyone.
    [entry] = bob.ask(action="rooms")["rooms"]
    assert (entry["seq"], entry["read"], entry["unread"]) == (3, 0, 3)
    assert entry["last"]["text"] == "n2" and entry["last"]["seq"] == 3


def test_refused_reads_write_nothing(chat: Chat) -> None:
    alice = Client("alice")
    alice.send(action="join", room="mine")
    before = snapshot(chat)
    for frame, code in (
        ({"room": "elsewhere", "seq": 1}, "not_member"),
        ({"room": "mine"}, "bad_request"),
        ({"room": "mine", "seq": -1}, "bad_request"),
        ({"room": "mine", "seq": True}, "bad_request"),
    ):
        reply = alice.send(action="read", **frame)
        assert reply is not None and (reply["type"], reply["code"], reply["action"]) == (
            "error",
            code,
            "read",
        )
    assert snapshot(chat) == before


def test_new_member_starts_read_at_the_latest_seq(chat: Chat) -> None:
    bob = Client("bob")
    bob.send(action="join", room="old")
    for n in range(4):
        send(bob, "old", f"o{n}")
    carol = Client("carol")
    joined = carol.send(action="join", room="old")
    assert joined is not None and (joined["seq"], joined["read"]) == (4, 4)
    send(bob, "old", "new one")
    [entry] = carol.ask(action="rooms")["rooms"]
    assert (entry["seq"], entry["read"], entry["unread"]) == (5, 4, 1)


def test_rooms_lists_newest_activity_first_in_one_query_and_batched_reads(chat: Chat) -> None:
    alice = Client("alice")
    for room in ("r1", "r2", "r3"):
        alice.send(action="join", room=room)
    send(alice, "r2", "first")
    send(alice, "r1", "x" * 300)
    reply = alice.send(action="rooms")
    assert reply is not None
    # r1's message is the latest (ties break by name), r3 has none: it sorts by when it was joined.
    assert [r["room"] for r in reply["rooms"]] == ["r1", "r2", "r3"]
    last = reply["rooms"][0]["last"]
    assert last["text"] == "x" * 200 and last["truncated"] is True  # a preview; history has it whole


def test_dm_opens_the_pairs_room_invites_the_other_user_and_refuses_a_third(chat: Chat) -> None:
    alice, bob, carol = Client("alice"), Client("bob@example.com"), Client("carol")
    reply = alice.send(action="dm", user="bob@example.com")
    room = conversations.dm_room("alice", "bob@example.com")
    assert room == conversations.dm_room("bob@example.com", "alice") and room.startswith("dm.")
    assert reply is not None and reply["type"] == "joined"
    assert (reply["room"], reply["kind"], reply["with"], reply["seq"]) == (room, "dm", "bob@example.com", 0)
    jobs = chat.drain_jobs()
    assert (
        frozenset({bob.connection_id}),
        {"type": "invited", "room": room, "kind": "dm", "from": "alice"},
    ) in (user_jobs(jobs))
    # Bob never joined anything, yet the DM is in his rooms and he may join it.
    [entry] = bob.ask(action="rooms")["rooms"]
    assert (entry["room"], entry["kind"], entry["with"]) == (room, "dm", "alice")
    joined = bob.send(action="join", room=room)
    assert joined is not None and (joined["type"], joined["kind"], joined["with"]) == (
        "joined",
        "dm",
        "alice",
    )
    # A third user may not join it; nothing is written.
    before = snapshot(chat)
    refused = carol.send(action="join", room=room)
    assert refused is not None and (refused["code"], refused["room"]) == ("forbidden", room)
    assert carol.ask(action="join", room="dm.made-up")["code"] == "forbidden"
    assert snapshot(chat) == before
    # Reopening sends no second invite; the other side opening it gets the same room.
    chat.drain_jobs()
    assert alice.ask(action="dm", user="bob@example.com")["room"] == room
    assert bob.ask(action="dm", user="alice")["room"] == room
    assert not [f for _, f in user_jobs(chat.drain_jobs()) if f["type"] == "invited"]


def test_dm_false_claim_and_self_dm_are_refused_without_writes(chat: Chat) -> None:
    alice = Client("alice")
    alice.send(action="dm", user="dave")
    room = conversations.dm_room("alice", "dave")
    from functions.chat.auth import Identity

    dave = Client("dave")
    dave.identity = Identity("dave", "Dave", None, dm=False)
    before = snapshot(chat)
    for frame in ({"action": "dm", "user": "alice"}, {"action": "join", "room": room}):
        reply = dave.send(**frame)
        assert reply is not None and reply["code"] == "forbidden", reply
    assert alice.ask(action="dm", user="alice")["code"] == "bad_request"
    assert alice.ask(action="dm", user="not valid")["code"] == "bad_request"
    assert alice.ask(action="dm")["code"] == "bad_request"
    assert snapshot(chat) == before


def test_reading_a_dm_sends_a_receipt_to_the_other_participant(chat: Chat) -> None:
    alice, bob = Client("alice"), Client("bob")
    room = alice.ask(action="dm", user="bob")["room"]
    bob.send(action="join", room=room)
    send(alice, room, "hello bob")
    chat.drain_jobs()
    assert bob.send(action="read", room=room, seq=1) == {"type": "read", "room": room, "seq": 1, "unread": 0}
    assert user_jobs(chat.drain_jobs()) == [
        (frozenset({alice.connection_id}), {"type": "receipt", "room": room, "user": "bob", "seq": 1})
    ]


def test_reopening_a_dm_the_other_user_left_invites_again_from_the_latest_seq(chat: Chat) -> None:
    alice, bob = Client("alice"), Client("bob")
    room = alice.ask(action="dm", user="bob")["room"]
    send(alice, room, "one")
    send(alice, room, "two")
    assert bob.send(action="leave", room=room) == {"type": "left", "room": room}
    chat.drain_jobs()
    alice.send(action="dm", user="bob")
    invites = [f for _, f in user_jobs(chat.drain_jobs()) if f["type"] == "invited"]
    assert invites == [{"type": "invited", "room": room, "kind": "dm", "from": "alice"}]
    [entry] = bob.ask(action="rooms")["rooms"]
    assert (entry["seq"], entry["read"], entry["unread"]) == (2, 2, 0)


def test_user_delivery_addresses_every_live_connection_once(chat: Chat) -> None:
    a1, a2 = Client("alice"), Client("alice")
    frame = {"type": "event", "name": "hello", "data": {"n": 1}}
    assert chat.service.users.deliver("alice", frame, correlation_id="op-1") == 1
    [job] = chat.drain_jobs()
    assert (set(job.connections or ()), job.frame, job.correlation_id) == (
        {a1.connection_id, a2.connection_id},
        frame,
        "op-1",
    )
    assert chat.service.users.deliver("nobody", frame) == 0
    assert chat.drain_jobs() == []


def test_end_membership_is_the_kick_path_and_add_member_invites(chat: Chat) -> None:
    alice, bob = Client("alice"), Client("bob")
    alice.send(action="join", room="club")
    bob.send(action="join", room="club")
    chat.drain_jobs()
    kicked = {"type": "kicked", "room": "club", "by": "mod", "reason": "spam"}
    chat.service.end_membership("bob", "club", kicked, "req-9")
    jobs = chat.drain_jobs()
    assert (frozenset({bob.connection_id}), kicked) in user_jobs(jobs)
    assert chat.service._store.membership("bob", "club") is None
    assert chat.service.add_member("carol", "club", "ops") is True
    carol = Client("carol")
    assert chat.service.add_member("carol", "club", "ops") is False  # already a member: no invite
    assert chat.drain_jobs() == []
    assert [r["room"] for r in carol.ask(action="rooms")["rooms"]] == ["club"]


def test_rejoin_on_a_subscribed_connection_restores_a_lost_membership(chat: Chat) -> None:
    alice = Client("alice")
    alice.send(action="join", room="keep")
    chat.service._store.delete_membership("alice", "keep")
    alice.send(action="join", room="keep")
    assert chat.service._store.membership("alice", "keep") is not None
