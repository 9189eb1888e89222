"""The operator API's Lambda against moto: every route's effect, stored state and fan-out, and
every refusal's status and {code, message} with nothing changed (docs/operator-api.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.operator.handler import handler
from tests.integration.conftest import Chat
from tests.integration.events import FakeContext, http_api_event


def call(method: str, path: str, body: Any = None, query: str = "") -> tuple[int, Any]:
    response = handler(http_api_event(method, path, body, query), FakeContext())
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
