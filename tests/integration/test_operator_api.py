"""The operator API's Lambda against moto: every route's effect, stored state and fan-out, and
every refusal's status and {code, message} with nothing changed (docs/operator-api.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynamowave.testing.aws import LambdaContext
from functions.operator.handler import handler
from tests.integration.conftest import Chat
from tests.integration.events import http_api_event


def call(method: str, path: str, body: Any = None, query: str = "") -> tuple[int, Any]:
    response = handler(http_api_event(method, path, body, query), LambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


@pytest.fixture
def env(chat: Chat) -> Chat:
    return chat


def test_publish_stores_fans_out_and_is_idempotent(env: Chat) -> None:
    connection, identity = env.connect("ann")
    env.frame(connection, identity, action="join", room="lobby")
    env.drain_jobs()
    body = {"user": "bot", "name": "Bot", "text": "Welcome!", "clientMsgId": "w1"}
    status, first = call("POST", "/rooms/lobby/messages", body)
    assert status == 200 and first["seq"] == 1 and first["id"]
    jobs = env.drain_jobs()
    assert [(job.frame["type"], job.frame["user"], job.frame["name"], job.frame["text"]) for job in jobs] == [
        ("message", "bot", "Bot", "Welcome!")
    ]
    assert jobs[0].exclude is None  # every subscriber gets it
    assert call("POST", "/rooms/lobby/messages", body) == (200, first)
    assert env.drain_jobs() == []  # fanned out once
    assert len(env.table_items("messages")) == 1


def test_history_and_presence(env: Chat) -> None:
    connection, identity = env.connect("ann")
    env.frame(connection, identity, action="join", room="lobby")
    for n in range(3):
        call("POST", "/rooms/lobby/messages", {"user": "bot", "text": f"m{n}", "clientMsgId": f"c{n}"})
    status, page = call("GET", "/rooms/lobby/messages", query="limit=2")
    assert status == 200
    assert (page["type"], [m["seq"] for m in page["messages"]], page["more"]) == ("history", [2, 3], True)
    status, older = call("GET", "/rooms/lobby/messages", query="before=2&limit=5")
    assert [m["text"] for m in older["messages"]] == ["m0"] and older["more"] is False
    assert call("GET", "/rooms/lobby/presence") == (200, {"users": ["ann"], "connections": 1})
    assert call("GET", "/rooms/empty/presence") == (200, {"users": [], "connections": 0})


def test_room_event_fans_out_an_ephemeral_frame(env: Chat) -> None:
    connection, identity = env.connect("ann")
    env.frame(connection, identity, action="join", room="lobby")
    env.drain_jobs()
    status, _ = call("POST", "/rooms/lobby/events", {"name": "poll.open", "data": {"q": "tea?"}})
    assert status == 200
    [job] = env.drain_jobs()
    assert job.frame == {"type": "event", "room": "lobby", "name": "poll.open", "data": {"q": "tea?"}}
    assert env.table_items("messages") == []


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "status", "code"),
    [
        (
            "POST",
            "/rooms/bad room/messages",
            {"user": "bot", "text": "x", "clientMsgId": "c"},
            "",
            400,
            "bad_request",
        ),
        ("POST", "/rooms/lobby/messages", "not json", "", 400, "bad_request"),
        ("POST", "/rooms/lobby/messages", "[1]", "", 400, "bad_request"),
        (
            "POST",
            "/rooms/lobby/messages",
            '{"user": "bot", "text": NaN, "clientMsgId": "c"}',
            "",
            400,
            "bad_request",
        ),
        ("POST", "/rooms/lobby/messages", None, "", 400, "bad_request"),
        ("POST", "/rooms/lobby/messages", {"text": "x", "clientMsgId": "c"}, "", 400, "bad_request"),
        (
            "POST",
            "/rooms/lobby/messages",
            {"user": "b o t", "text": "x", "clientMsgId": "c"},
            "",
            400,
            "bad_request",
        ),
        (
            "POST",
            "/rooms/lobby/messages",
            {"user": "bot", "text": "", "clientMsgId": "c"},
            "",
            400,
            "bad_request",
        ),
        ("POST", "/rooms/lobby/messages", {"user": "bot", "text": "x"}, "", 400, "bad_request"),
        (
            "POST",
            "/rooms/lobby/messages",
            {"user": "bot", "text": "x" * 4001, "clientMsgId": "c"},
            "",
            413,
            "too_large",
        ),
        (
            "POST",
            "/rooms/lobby/messages",
            {"user": "bot", "name": "", "text": "x", "clientMsgId": "c"},
            "",
            400,
            "bad_request",
        ),
        ("GET", "/rooms/lobby/messages", None, "limit=0", 400, "bad_request"),
        ("GET", "/rooms/lobby/messages", None, "limit=101", 400, "bad_request"),
        ("GET", "/rooms/lobby/messages", None, "before=x", 400, "bad_request"),
        ("POST", "/rooms/lobby/events", {"name": "bad name", "data": 1}, "", 400, "bad_request"),
        ("POST", "/rooms/lobby/events", {"name": "ok"}, "", 400, "bad_request"),
        ("POST", "/rooms/lobby/events", {"name": "ok", "data": "x" * 70_000}, "", 413, "too_large"),
        ("GET", "/nowhere", None, "", 404, "not_found"),
        ("PATCH", "/rooms/lobby/messages", None, "", 404, "not_found"),
    ],
)
def test_refusals_answer_status_and_code_and_change_nothing(
    env: Chat, method: str, path: str, body: Any, query: str, status: int, code: str
) -> None:
    connection, identity = env.connect("ann")
    env.frame(connection, identity, action="join", room="lobby")
    env.drain_jobs()
    before = env.table_items("messages"), env.table_items("rooms")
    answer_status, answer = call(method, path, body, query)
    assert (answer_status, answer["code"]) == (status, code)
    assert isinstance(answer["message"], str) and answer["message"]
    assert (env.table_items("messages"), env.table_items("rooms")) == before
    assert env.drain_jobs() == []


def test_publish_into_a_room_nobody_joined_starts_its_seq_at_one(env: Chat) -> None:
    assert (
        call("POST", "/rooms/fresh/messages", {"user": "bot", "text": "first", "clientMsgId": "f1"})[1]["seq"]
        == 1
    )
    assert (
        call("POST", "/rooms/fresh/messages", {"user": "bot", "text": "second", "clientMsgId": "f2"})[1][
            "seq"
        ]
        == 2
    )


def jobs_for(jobs: list[Any], type_: str) -> list[Any]:
    return [job for job in jobs if job.frame["type"] == type_]


def test_add_member_invites_and_remove_member_kicks_every_connection(env: Chat) -> None:
    phone, identity = env.connect("bob")
    laptop, _ = env.connect("bob")
    env.drain_jobs()
    assert call("POST", "/rooms/club/members/bob") == (200, {"added": True})
    [invite] = jobs_for(env.drain_jobs(), "invited")
    assert invite.frame == {"type": "invited", "room": "club", "kind": "room", "from": "operator"}
    assert set(invite.connections) == {phone, laptop}
    assert call("POST", "/rooms/club/members/bob") == (200, {"added": False})
    assert [entry["room"] for entry in call("GET", "/users/bob/rooms")[1]["rooms"]] == ["club"]

    env.frame(phone, identity, action="join", room="club")
    watcher, watcher_identity = env.connect("carl")
    env.frame(watcher, watcher_identity, action="join", room="club")
    env.drain_jobs()
    status, _ = call("DELETE", "/rooms/club/members/bob", {"reason": "off topic"})
    assert status == 200
    jobs = env.drain_jobs()
    [kicked] = jobs_for(jobs, "kicked")
    assert kicked.frame == {"type": "kicked", "room": "club", "by": "operator", "reason": "off topic"}
    assert set(kicked.connections) == {phone, laptop}
    assert [job.frame["event"] for job in jobs_for(jobs, "presence")] == ["leave"]
    assert call("GET", "/users/bob/rooms")[1]["rooms"] == []
    reply = env.frame(phone, identity, action="sendmessage", room="club", text="hi", clientMsgId="c1")
    assert reply is not None and reply["code"] == "not_member"


def test_removing_a_non_member_tells_nobody(env: Chat) -> None:
    phone, identity = env.connect("bob")
    env.frame(phone, identity, action="join", room="lobby")
    env.drain_jobs()
    assert call("DELETE", "/rooms/club/members/bob", {"reason": "off topic"}) == (200, {"jobs": 0})
    assert env.drain_jobs() == []  # no `kicked` for a room bob never was in
    assert [entry["room"] for entry in call("GET", "/users/bob/rooms")[1]["rooms"]] == ["lobby"]


def test_ban_kicks_refuses_join_and_unban_lifts_it(env: Chat) -> None:
    connection, identity = env.connect("eve")
    env.frame(connection, identity, action="join", room="club")
    env.drain_jobs()
    status, answer = call("PUT", "/rooms/club/bans/eve", {"reason": "spam"})
    assert status == 200 and answer["banned"] is True
    [banned] = jobs_for(env.drain_jobs(), "banned")
    assert banned.frame == {"type": "banned", "room": "club", "by": "operator", "reason": "spam"}
    refused = env.frame(connection, identity, action="join", room="club")
    assert refused is not None and (refused["type"], refused["code"]) == ("error", "banned")
    assert call("POST", "/rooms/club/members/eve")[0] == 409
    assert call("DELETE", "/rooms/club/bans/eve") == (200, {"unbanned": True})
    assert call("DELETE", "/rooms/club/bans/eve") == (200, {"unbanned": False})
    joined = env.frame(connection, identity, action="join", room="club")
    assert joined is not None and joined["type"] == "joined"


def test_timed_ban_expires_by_itself_with_an_injected_clock(env: Chat) -> None:
    from functions.chat import deps
    from functions.chat.domain.service import ChatService

    now = [1_000_000]
    service = ChatService(deps.store(), deps.job_queue(), env.settings, env.recorder, clock=lambda: now[0])
    env.service = service
    connection, identity = env.connect("eve")
    service.ban("club", "eve", "mod", 60, "cool off")
    refused = env.frame(connection, identity, action="join", room="club")
    assert refused is not None and refused["code"] == "banned"
    now[0] += 59_999
    assert env.ask(connection, identity, action="join", room="club")["code"] == "banned"
    now[0] += 1
    assert env.ask(connection, identity, action="join", room="club")["type"] == "joined"


def test_user_event_reaches_every_connection_of_the_user(env: Chat) -> None:
    first, _ = env.connect("ann")
    second, _ = env.connect("ann")
    env.connect("bob")
    env.drain_jobs()
    assert call("POST", "/users/ann/events", {"name": "billing", "data": [1, 2]})[0] == 200
    [job] = env.drain_jobs()
    assert job.frame == {"type": "event", "name": "billing", "data": [1, 2]}
    assert set(job.connections or ()) == {first, second}


def test_disconnect_closes_every_connection_of_the_user(env: Chat) -> None:
    env.connect("ann")
    env.connect("ann")
    assert call("DELETE", "/users/ann/connections") == (200, {"closed": 2})
    assert call("DELETE", "/users/nobody/connections") == (200, {"closed": 0})


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/rooms/club/bans/eve", {"seconds": 0}),
        ("PUT", "/rooms/club/bans/eve", {"seconds": "60"}),
        ("PUT", "/rooms/club/bans/eve", {"reason": 5}),
        ("PUT", "/rooms/club/bans/eve", {"reason": "x" * 501}),
        ("PUT", "/rooms/club/bans/e%20ve", {}),
        ("POST", "/users/b%20ad/events", {"name": "x", "data": 1}),
        ("DELETE", "/users/%00/connections", None),
        ("GET", "/users/a b/rooms", None),
    ],
)
def test_moderation_routes_validate_and_change_nothing(env: Chat, method: str, path: str, body: Any) -> None:
    connection, identity = env.connect("eve")
    env.frame(connection, identity, action="join", room="club")
    env.drain_jobs()
    before = env.table_items("rooms")
    status, answer = call(method, path, body)
    assert (status, answer["code"]) == (400, "bad_request")
    assert env.table_items("rooms") == before and env.drain_jobs() == []


def test_delete_erases_as_a_moderator_and_refuses_unknown_or_bad_seqs(env: Chat) -> None:
    connection, identity = env.connect("ann")
    env.frame(connection, identity, action="join", room="lobby")
    env.frame(connection, identity, action="sendmessage", room="lobby", text="secret", clientMsgId="s1")
    env.drain_jobs()
    status, answer = call("DELETE", "/rooms/lobby/messages/1")
    assert status == 200 and answer["seq"] == 1 and answer["changed"] is True
    [update] = [job for job in env.drain_jobs() if job.frame["type"] == "update"]
    assert (update.frame["deleted"], update.frame["text"]) == (True, "")
    assert "secret" not in json.dumps(env.table_items("messages"))
    assert call("DELETE", "/rooms/lobby/messages/1")[1]["changed"] is False  # idempotent
    assert call("DELETE", "/rooms/lobby/messages/9")[0] == 404
    assert call("DELETE", "/rooms/lobby/messages/0")[0] == 400
    assert call("DELETE", "/rooms/lobby/messages/x")[0] == 400
