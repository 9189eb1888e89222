"""Moderator frames against moto (docs/protocol.md, "Moderation"): `kick`, `ban`, `unban`,
`mute`, `unmute` from the token's `mod` claim; stored state, the fan-out jobs, what each
connection gets; expiry with an injected clock; mutes enforced by the frame's own write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynamowave.testing.aws import LambdaContext
from functions.chat import deps
from functions.chat.auth import Identity, ModeratorScope
from functions.chat.domain.ports import Restriction
from functions.chat.domain.service import ChatService
from functions.chat.jobs import FanoutJob
from functions.operator.handler import handler
from tests.integration.conftest import Chat
from tests.integration.events import http_api_event

MOD = Identity("mia", "Mia", None, mod=ModeratorScope.of(["club"]))


def moderator(chat: Chat, identity: Identity = MOD) -> str:
    connection_id = "mod-" + identity.user_id
    chat.service.connect(connection_id, identity)
    return connection_id


def joined(chat: Chat, user: str, room: str = "club") -> tuple[str, Identity]:
    connection, identity = chat.connect(user)
    reply = chat.frame(connection, identity, action="join", room=room)
    assert reply is not None and reply["type"] == "joined", reply
    return connection, identity


def of_type(jobs: list[FanoutJob], kind: str) -> list[FanoutJob]:
    return [job for job in jobs if job.frame["type"] == kind]


def items(chat: Chat, prefix: str) -> list[dict[str, Any]]:
    return [item for item in chat.table_items("rooms") if item["sk"]["S"].startswith(prefix)]


def send(chat: Chat, connection: str, identity: Identity, text: str, cid: str) -> dict[str, Any]:
    reply = chat.frame(connection, identity, action="sendmessage", room="club", text=text, clientMsgId=cid)
    assert reply is not None
    return reply


def clocked(chat: Chat, now: list[int]) -> None:
    chat.service = ChatService(
        deps.store(), deps.job_queue(), chat.settings, chat.recorder, clock=lambda: now[0]
    )


def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = handler(http_api_event(method, path, body, ""), LambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def test_kick_ends_the_membership_and_reaches_every_connection_of_the_user(chat: Chat) -> None:
    mod = moderator(chat)
    phone, bob = joined(chat, "bob")
    laptop, _ = joined(chat, "bob")
    joined(chat, "carol")
    chat.drain_jobs()
    reply = chat.frame(mod, MOD, action="kick", room="club", user="bob", reason="off topic")
    assert reply == {"type": "moderated", "room": "club", "user": "bob", "op": "kick"}
    jobs = chat.drain_jobs()
    [kicked] = of_type(jobs, "kicked")
    assert kicked.frame == {"type": "kicked", "room": "club", "by": "mia", "reason": "off topic"}
    assert set(kicked.connections or ()) == {phone, laptop}
    assert [job.frame for job in of_type(jobs, "presence")] == [
        {"type": "presence", "room": "club", "user": "bob", "event": "leave"}
    ]
    assert chat.service.rooms_of("bob")["rooms"] == []
    assert [item["sk"]["S"] for item in items(chat, "USER#")] == ["USER#carol"]  # presence
    assert send(chat, phone, bob, "still here?", "c1")["code"] == "not_member"
    assert chat.ask(phone, bob, action="join", room="club")["type"] == "joined"


@pytest.mark.parametrize(
    ("identity", "frame", "code"),
    [
        (Identity("bob", "Bob", None), {"action": "kick", "room": "club", "user": "eve"}, "forbidden"),
        (MOD, {"action": "ban", "room": "other", "user": "eve"}, "forbidden"),
        (
            Identity("max", "Max", None, mod=ModeratorScope.from_claim("*")),
            {"action": "mute", "room": "dm.00", "user": "eve"},
            "forbidden",
        ),
        (MOD, {"action": "kick", "room": "club", "user": "mia"}, "bad_request"),
        (MOD, {"action": "kick", "room": "club"}, "bad_request"),
        (MOD, {"action": "ban", "room": "club", "user": "e ve"}, "bad_request"),
        (MOD, {"action": "ban", "room": "club", "user": "eve", "seconds": 0}, "bad_request"),
        (MOD, {"action": "mute", "room": "club", "user": "eve", "seconds": "60"}, "bad_request"),
        (MOD, {"action": "mute", "room": "club", "user": "eve", "seconds": 316224001}, "bad_request"),
        (MOD, {"action": "kick", "room": "club", "user": "eve", "reason": "x" * 501}, "bad_request"),
        (MOD, {"action": "ban", "room": "club", "user": "eve", "reason": 5}, "bad_request"),
        (MOD, {"action": "unban", "room": "bad room", "user": "eve"}, "bad_request"),
        (MOD, {"action": "unmute", "room": "club", "user": "eve", "userId": "mia"}, "forbidden"),
    ],
)
def test_refused_moderation_changes_nothing(
    chat: Chat, identity: Identity, frame: dict[str, Any], code: str
) -> None:
    mod = moderator(chat, identity)
    joined(chat, "eve")
    chat.drain_jobs()
    before = chat.table_items("rooms")
    reply = chat.frame(mod, identity, **frame)
    assert reply is not None and (reply["type"], reply["code"], reply["action"]) == (
        "error",
        code,
        frame["action"],
    )
    assert chat.table_items("rooms") == before
    assert chat.drain_jobs() == []


def test_ban_kicks_refuses_join_on_every_connection_and_unban_lifts_it(chat: Chat) -> None:
    mod = moderator(chat)
    phone, eve = joined(chat, "eve")
    laptop, _ = chat.connect("eve")  # connected, not subscribed: gets `banned` all the same
    joined(chat, "carol")  # sees `presence leave`
    chat.drain_jobs()
    reply = chat.frame(mod, MOD, action="ban", room="club", user="eve", reason="spam")
    assert reply == {"type": "moderated", "room": "club", "user": "eve", "op": "ban"}
    jobs = chat.drain_jobs()
    [banned] = of_type(jobs, "banned")
    assert banned.frame == {"type": "banned", "room": "club", "by": "mia", "reason": "spam"}
    assert set(banned.connections or ()) == {phone, laptop}
    assert [job.frame["event"] for job in of_type(jobs, "presence")] == ["leave"]
    [ban] = items(chat, "BAN#")
    assert (ban["until"]["N"], ban["by"]["S"], ban["reason"]["S"]) == ("0", "mia", "spam")
    for connection in (phone, laptop):
        refused = chat.frame(connection, eve, action="join", room="club")
        assert refused is not None and refused["code"] == "banned" and "until unbanned" in refused["message"]
    later, _ = chat.connect("eve")  # a reconnect after the ban: refused by the stored item
    assert chat.ask(later, eve, action="join", room="club")["code"] == "banned"
    assert chat.ask(mod, MOD, action="unban", room="club", user="eve")["op"] == "unban"
    assert items(chat, "BAN#") == []
    for connection in (phone, laptop, later):
        assert chat.ask(connection, eve, action="join", room="club")["type"] == "joined"


def test_a_join_that_read_before_the_ban_is_refused_by_its_own_write(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The join's read of the ban item happened before the ban; its write comes after the
    kick looked for subscriptions. The stamp on the connection refuses that write."""
    mod = moderator(chat)
    eve_conn, eve = chat.connect("eve")
    chat.frame(mod, MOD, action="ban", room="club", user="eve")
    store = chat.service._store
    monkeypatch.setattr(store, "active_restrictions", lambda *_args: {})  # the stale read
    refused = chat.frame(eve_conn, eve, action="join", room="club")
    assert refused is not None and refused["code"] == "banned"
    assert chat.service.rooms_of("eve")["rooms"] == []
    assert items(chat, "ROOM#club#S#") == []  # no subscription was written


def test_timed_ban_and_mute_expire_by_themselves_with_an_injected_clock(chat: Chat) -> None:
    now = [1_700_000_000_000]
    clocked(chat, now)
    mod = moderator(chat)
    bob_conn, bob = joined(chat, "bob")
    eve_conn, eve = joined(chat, "eve")
    assert chat.ask(mod, MOD, action="mute", room="club", user="bob", seconds=30)["op"] == "mute"
    assert chat.ask(mod, MOD, action="ban", room="club", user="eve", seconds=60)["op"] == "ban"
    [mute] = items(chat, "MUTE#")
    assert (
        int(mute["until"]["N"]) == now[0] + 30_000
        and int(mute["ttl"]["N"]) == (now[0] + 30_000) // 1000 + 3600
    )
    refused = send(chat, bob_conn, bob, "hi", "c1")
    assert refused["code"] == "muted" and str(now[0] + 30_000) in refused["message"]
    now[0] += 30_000
    assert send(chat, bob_conn, bob, "hi", "c1")["type"] == "ack"  # expired: the stamp is ignored
    assert chat.ask(eve_conn, eve, action="join", room="club")["code"] == "banned"
    now[0] += 30_000
    assert chat.ask(eve_conn, eve, action="join", room="club")["type"] == "joined"


def test_mute_refuses_sends_edits_reactions_and_typing_and_survives_a_reconnect(chat: Chat) -> None:
    mod = moderator(chat)
    bob_conn, bob = joined(chat, "bob")
    assert send(chat, bob_conn, bob, "before", "c0")["type"] == "ack"
    carol_conn, carol = joined(chat, "carol")
    chat.drain_jobs()
    assert chat.frame(mod, MOD, action="mute", room="club", user="bob") == {
        "type": "moderated",
        "room": "club",
        "user": "bob",
        "op": "mute",
    }
    assert chat.drain_jobs() == []  # nothing is sent to anyone: the muted user learns on sending
    messages = chat.table_items("messages")
    for frame in (
        {"action": "sendmessage", "room": "club", "text": "spam", "clientMsgId": "c1"},
        {"action": "edit", "room": "club", "seq": 1, "text": "spam"},
        {"action": "react", "room": "club", "seq": 1, "emoji": "👍", "on": True},
        {"action": "typing", "room": "club"},
    ):
        reply = chat.frame(bob_conn, bob, **frame)
        assert reply is not None and (reply["code"], reply["action"], reply["room"]) == (
            "muted",
            frame["action"],
            "club",
        )
        assert "until unmuted" in reply["message"]
    assert chat.table_items("messages") == messages  # nothing stored, nothing changed
    assert chat.drain_jobs() == []
    # Reading is allowed; so is deleting one's own message; other rooms are not affected.
    assert chat.ask(bob_conn, bob, action="history", room="club")["type"] == "history"
    chat.frame(bob_conn, bob, action="join", room="elsewhere")
    reply = chat.frame(bob_conn, bob, action="sendmessage", room="elsewhere", text="ok", clientMsgId="e1")
    assert reply is not None and reply["type"] == "ack"
    assert chat.ask(bob_conn, bob, action="delete", room="club", seq=1)["type"] == "changed"
    # Others in the room are not muted.
    assert send(chat, carol_conn, carol, "hello", "k1")["type"] == "ack"
    # A new connection (a reconnect, another device) is muted when it joins.
    again, _ = joined(chat, "bob")
    assert send(chat, again, bob, "spam", "c2")["code"] == "muted"
    assert chat.ask(mod, MOD, action="unmute", room="club", user="bob")["op"] == "unmute"
    assert items(chat, "MUTE#") == []
    assert send(chat, bob_conn, bob, "sorry", "c3")["type"] == "ack"
    assert send(chat, again, bob, "sorry again", "c4")["type"] == "ack"


def test_a_user_who_is_not_muted_pays_no_read_for_mutes(chat: Chat) -> None:
    bob_conn, bob = joined(chat, "bob")
    with chat.recorded_calls() as calls:
        assert send(chat, bob_conn, bob, "hi", "c1")["type"] == "ack"
        chat.frame(bob_conn, bob, action="typing", room="club")
        chat.frame(bob_conn, bob, action="react", room="club", seq=1, emoji="👍", on=True)
    assert not [call for call in calls if "MUTE#" in json.dumps(call[1])]  # no read of a mute item
    touches = [
        p
        for name, p in calls
        if name == "UpdateItem" and p["TableName"] == chat.resources.tables["connections"]
    ]
    # Each frame's one touch (two when the limiter's first guess is wrong) carries the mute clause.
    assert len(touches) >= 3 and all("mute#club" in p["ExpressionAttributeNames"].values() for p in touches)


def test_a_join_racing_an_unmute_does_not_keep_a_stale_mute(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The join read the mute; the unmute deleted it and cleared the stamps before the join
    wrote its stamp. The join re-reads the mute after stamping and removes its own stamp."""
    bob_conn, bob = chat.connect("bob")
    store = chat.service._store
    real = store.active_restrictions
    reads = iter([{Restriction.MUTE: 0}])
    monkeypatch.setattr(store, "active_restrictions", lambda *args: next(reads, None) or real(*args))
    assert chat.ask(bob_conn, bob, action="join", room="club")["type"] == "joined"
    assert send(chat, bob_conn, bob, "not muted", "c1")["type"] == "ack"


def test_operator_mute_and_unmute_routes(chat: Chat) -> None:
    bob_conn, bob = joined(chat, "bob")
    chat.drain_jobs()
    assert call("PUT", "/rooms/club/mutes/bob", {"seconds": 600}) == (200, {"muted": True, "seconds": 600})
    [mute] = items(chat, "MUTE#")
    assert (mute["by"]["S"], mute["userId"]["S"]) == ("operator", "bob")
    assert send(chat, bob_conn, bob, "hi", "c1")["code"] == "muted"
    assert call("PUT", "/rooms/club/mutes/bob") == (200, {"muted": True, "seconds": None})
    assert call("DELETE", "/rooms/club/mutes/bob") == (200, {"unmuted": True})
    assert call("DELETE", "/rooms/club/mutes/bob") == (200, {"unmuted": False})
    assert send(chat, bob_conn, bob, "hi", "c1")["type"] == "ack"
    assert chat.drain_jobs() != []  # only the message's fan-out


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/rooms/club/mutes/bob", {"seconds": 0}),
        ("PUT", "/rooms/club/mutes/bob", {"seconds": "60"}),
        ("PUT", "/rooms/club/mutes/bob", {"seconds": 316224001}),
        ("PUT", "/rooms/club/mutes/bob", "[1]"),
        ("PUT", "/rooms/club/mutes/b%20ob", {}),
        ("PUT", "/rooms/bad%20room/mutes/bob", {}),
        ("DELETE", "/rooms/club/mutes/b%23ob", None),
    ],
)
def test_refused_mute_routes_change_nothing(chat: Chat, method: str, path: str, body: Any) -> None:
    joined(chat, "bob")
    before = {name: chat.table_items(name) for name in ("rooms", "connections")}
    status, answer = call(method, path, body)
    assert (status, answer["code"]) == (400, "bad_request")
    assert {name: chat.table_items(name) for name in ("rooms", "connections")} == before


def test_kicking_or_banning_a_non_member_tells_nobody_and_the_ban_still_holds(chat: Chat) -> None:
    mod = moderator(chat)
    eve_conn, eve = chat.connect("eve")  # connected, never joined the room
    joined(chat, "carol")
    chat.drain_jobs()
    assert chat.ask(mod, MOD, action="kick", room="club", user="eve")["op"] == "kick"
    assert chat.ask(mod, MOD, action="ban", room="club", user="eve")["op"] == "ban"
    assert chat.drain_jobs() == []  # no `kicked` / `banned` for a room she was not in, no presence
    assert chat.ask(eve_conn, eve, action="join", room="club")["code"] == "banned"
