"""The ingress function against moto with the real boto3 clients: every action and error code.

Frames go through the real handler as API Gateway events; assertions read what is stored in
DynamoDB, what is enqueued on SQS and what was posted through the Management API (moto's).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core.models import DEFAULT_ACCOUNT_ID

from dynamowave.testing.aws import LambdaContext
from dynamowave.testing.frames import replied
from functions.chat.auth import Identity
from functions.chat.jobs import FanoutJob
from functions.chat.schema import ACTION_ROUTES
from functions.ingress.handler import handler
from tests.integration.conftest import Chat
from tests.integration.events import route_event


class Client:
    """One WebSocket connection, driven through the ingress handler as API Gateway would."""

    counter = 0

    def __init__(self, user: str, rooms: list[str] | None = None, name: str | None = None) -> None:
        Client.counter += 1
        self.connection_id = f"conn{Client.counter:04d}="
        self.identity = Identity(user, name or user.title(), None if rooms is None else tuple(rooms))
        response = handler(route_event("$connect", self.connection_id, self.identity), LambdaContext())
        assert response == {"statusCode": 200}

    def send_raw(self, body: str, route: str = "$default") -> dict[str, Any] | None:
        response = handler(route_event(route, self.connection_id, self.identity, body), LambdaContext())
        assert response["statusCode"] == 200, response
        return json.loads(response["body"]) if "body" in response else None

    def send(self, **frame: Any) -> dict[str, Any] | None:
        action = frame.get("action")
        return self.send_raw(json.dumps(frame), route=action if action in ACTION_ROUTES else "$default")

    def ask(self, **frame: Any) -> dict[str, Any]:
        """`send` for an action that replies."""
        return replied(self.send(**frame))

    def ask_raw(self, body: str) -> dict[str, Any]:
        return replied(self.send_raw(body))

    def posted(self) -> list[dict[str, Any]]:
        """Frames posted to this connection through the Management API (moto concatenates them)."""
        backend = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        key = quote(self.connection_id, safe="")  # moto keys connections by the URL-encoded id
        data = backend.connections[key].data.decode() if key in backend.connections else ""
        frames, decoder, index = [], json.JSONDecoder(), 0
        while index < len(data):
            frame, index = decoder.raw_decode(data, index)
            frames.append(frame)
        return frames

    def disconnect(self) -> None:
        response = handler(route_event("$disconnect", self.connection_id, None), LambdaContext())
        assert response == {"statusCode": 200}


@pytest.fixture
def env(chat: Chat) -> Chat:
    return chat


def stored_messages(chat: Chat, room: str) -> list[dict[str, Any]]:
    from functions.chat.adapters.dynamodb.keys import deserialize

    items = [deserialize(item) for item in chat.table_items("messages") if item["room"]["S"] == room]
    return sorted(items, key=lambda item: int(item["seq"]))


def snapshot(chat: Chat) -> dict[str, Any]:
    """Every table, without the connections' limiter state: every frame spends a token."""
    state = {table: chat.table_items(table) for table in ("connections", "rooms", "messages")}
    state["connections"] = [
        {key: value for key, value in item.items() if key not in ("tat", "lastSeen")}
        for item in state["connections"]
    ]
    return state


def test_connect_records_the_connection(env: Chat) -> None:
    client = Client("alice", rooms=["general"], name="Alice")
    record = env.service._store.get_connection(client.connection_id)
    assert record is not None
    assert (record.user_id, record.name, record.joined) == ("alice", "Alice", {})
    item = env.table_items("connections")[0]
    assert item["allowedRooms"] == {"L": [{"S": "general"}]}
    assert int(item["ttl"]["N"]) > int(item["connectedAt"]["N"]) // 1000
    assert item["lastSeen"] == item["connectedAt"]


def test_join_replies_joined_and_announces_first_connection(env: Chat) -> None:
    alice = Client("alice")
    reply = alice.send(action="join", room="general")
    assert reply is not None and isinstance(reply.pop("epoch"), str)  # tests/integration/test_epoch.py
    assert reply == {
        "type": "joined",
        "room": "general",
        "seq": 0,
        "rev": 0,
        "read": 0,
        "kind": "room",
        "members": ["alice"],
        "messages": [],
        "more": False,
    }
    jobs = env.drain_jobs()
    assert [(job.frame, job.shard) for job in jobs] == [
        ({"type": "presence", "room": "general", "user": "alice", "event": "join"}, "0.0")
    ]
    # A second connection of the same user joins silently; a re-join of the same connection is a no-op.
    second = Client("alice")
    assert second.ask(action="join", room="general")["members"] == ["alice"]
    assert alice.ask(action="join", room="general")["type"] == "joined"
    assert env.drain_jobs() == []
    from functions.chat.adapters.dynamodb.keys import deserialize

    rooms = [deserialize(i) for i in env.table_items("rooms")]
    meta = [i for i in rooms if i["sk"] == "META"]
    # A join never writes META (docs/data-model.md, "Per-key budget"): its epoch is set once,
    # and the member count lives on the counter shards, one per connection's hash.
    assert meta == [{"pk": "ROOM#general", "sk": "META", "epoch": meta[0]["epoch"]}]
    counters = [i["members"] for i in rooms if i["pk"] == "ROOM#general" and i["sk"].startswith("MEMBERS#")]
    assert sum(counters) == 2


def test_join_outside_the_tokens_rooms_is_forbidden_and_stores_nothing(env: Chat) -> None:
    client = Client("bob", rooms=["allowed"])
    before = snapshot(env)
    reply = client.send(action="join", room="secret")
    assert reply is not None
    assert (reply["type"], reply["code"], reply["room"], reply["action"]) == (
        "error",
        "forbidden",
        "secret",
        "join",
    )
    assert snapshot(env) == before
    assert client.ask(action="join", room="allowed")["type"] == "joined"


def test_sendmessage_stores_acks_then_enqueues_one_job_per_shard(env: Chat) -> None:
    alice, bob = Client("alice"), Client("bob")
    alice.send(action="join", room="general")
    bob.send(action="join", room="general")
    env.drain_jobs()
    ack = alice.send(action="sendmessage", room="general", text="hello <b>", clientMsgId="m1")
    # The ack is the route response; nothing goes through the Management API from the ingress.
    assert ack is not None and ack["type"] == "ack"
    assert (ack["room"], ack["clientMsgId"], ack["seq"]) == ("general", "m1", 1)
    assert alice.posted() == []
    [stored] = stored_messages(env, "general")
    assert stored == {
        "room": "general",
        "seq": 1,
        "id": ack["id"],
        "user": "alice",
        "name": "Alice",
        "text": "hello <b>",
        "ts": stored["ts"],
        "clientMsgId": "m1",
    }
    [job] = env.drain_jobs()
    assert job.frame == {
        "type": "message",
        **{k: stored[k] for k in ("room", "id", "seq", "user", "name", "text", "ts")},
        "clientMsgId": "m1",
    }
    # Every member, the sending connection included, gets its copy through the fan-out.
    assert job.shard == "0.0" and job.exclude is None and job.correlation_id == ack["id"]


def test_resend_with_same_client_msg_id_is_idempotent(env: Chat) -> None:
    alice = Client("alice")
    alice.send(action="join", room="r")
    env.drain_jobs()
    acks = [alice.send(action="sendmessage", room="r", text="once", clientMsgId="same-id") for _ in range(3)]
    assert all(a is not None and a["type"] == "ack" for a in acks)
    assert len(acks) == 3 and len({(replied(a)["id"], replied(a)["seq"]) for a in acks}) == 1
    assert len(stored_messages(env, "r")) == 1
    assert len(env.drain_jobs()) == 1  # fanned out once per successful store
    # Another user may use the same clientMsgId: idempotency is per (user, room, clientMsgId).
    bob = Client("bob")
    bob.send(action="join", room="r")
    bob.send(action="sendmessage", room="r", text="mine", clientMsgId="same-id")
    assert [m["seq"] for m in stored_messages(env, "r")] == [1, 2]


def test_not_member_for_room_scoped_actions_writes_nothing(env: Chat) -> None:
    alice = Client("alice")
    alice.send(action="join", room="mine")
    before = snapshot(env)
    for frame in (
        {"action": "sendmessage", "room": "other", "text": "x", "clientMsgId": "c1"},
        {"action": "history", "room": "other"},
        {"action": "typing", "room": "other"},
    ):
        reply = alice.send(**frame)
        assert reply is not None and reply["code"] == "not_member" and reply["room"] == "other"
    assert snapshot(env) == before
    # Membership is per connection: the same user on another connection is not a member.
    other = Client("alice")
    assert other.ask(action="history", room="mine")["code"] == "not_member"


def test_history_pages_backwards_with_more(env: Chat) -> None:
    alice = Client("alice")
    alice.send(action="join", room="h")
    for i in range(1, 8):
        alice.send(action="sendmessage", room="h", text=f"t{i}", clientMsgId=f"c{i}")
    page = alice.ask(action="history", room="h", limit=3)
    assert page is not None and [m["seq"] for m in page["messages"]] == [5, 6, 7] and page["more"] is True
    page = alice.ask(action="history", room="h", before=5, limit=3)
    assert [m["seq"] for m in page["messages"]] == [2, 3, 4] and page["more"] is True
    page = alice.ask(action="history", room="h", before=2, limit=3)
    assert [m["seq"] for m in page["messages"]] == [1] and page["more"] is False
    assert page["messages"][0]["text"] == "t1" and set(page["messages"][0]) == {
        "room",
        "seq",
        "id",
        "user",
        "name",
        "text",
        "ts",
        "clientMsgId",
    }


def test_join_with_since_recovers_missed_messages(env: Chat) -> None:
    alice, bob = Client("alice"), Client("bob")
    alice.send(action="join", room="r")
    for i in range(1, 6):
        alice.send(action="sendmessage", room="r", text=f"m{i}", clientMsgId=f"c{i}")
    reply = bob.send(action="join", room="r", since=2)
    assert reply is not None
    assert reply["seq"] == 5 and [m["seq"] for m in reply["messages"]] == [3, 4, 5] and reply["more"] is False
    assert sorted(reply["members"]) == ["alice", "bob"]
    late = Client("carol").send(action="join", room="r")
    assert late is not None and [m["seq"] for m in late["messages"]] == [1, 2, 3, 4, 5]


def test_join_since_caps_at_100_with_more(chat_factory: Any) -> None:
    env = chat_factory(RATE_LIMIT_PER_SECOND="10000", RATE_LIMIT_BURST="1000")
    alice = Client("alice")
    alice.send(action="join", room="big")
    for i in range(1, 106):
        env.service._store.store_message("big", "alice", "Alice", f"m{i}", f"c{i}", 1)
    reply = Client("bob").send(action="join", room="big", since=0)
    assert (
        reply is not None and [m["seq"] for m in reply["messages"]] == list(range(1, 101)) and reply["more"]
    )
    last = Client("carol").send(action="join", room="big")
    assert last is not None and [m["seq"] for m in last["messages"]] == list(range(56, 106))


def test_typing_fans_out_to_others_and_stores_nothing(env: Chat) -> None:
    alice, bob = Client("alice"), Client("bob")
    alice.send(action="join", room="t")
    bob.send(action="join", room="t")
    env.drain_jobs()
    before = [t for t in snapshot(env)["messages"]]
    assert alice.send(action="typing", room="t") is None
    [job] = env.drain_jobs()
    assert (
        job.frame == {"type": "typing", "room": "t", "user": "alice"} and job.exclude == alice.connection_id
    )
    assert snapshot(env)["messages"] == before


def test_ping_pongs_and_marks_the_connection_alive(env: Chat) -> None:
    alice = Client("alice")
    before = env.service._store.get_connection(alice.connection_id)
    reply = alice.send(action="ping")
    assert reply is not None and reply["type"] == "pong" and isinstance(reply["ts"], int)
    after = env.service._store.get_connection(alice.connection_id)
    assert before is not None and after is not None and after.last_seen >= before.last_seen
    assert after.last_seen >= reply["ts"] - 1000


def test_leave_removes_membership_counters_and_announces_last_leave(env: Chat) -> None:
    alice, bob = Client("alice"), Client("bob")
    alice.send(action="join", room="l")
    bob.send(action="join", room="l")
    env.drain_jobs()
    assert bob.send(action="leave", room="l") == {"type": "left", "room": "l"}
    [job] = env.drain_jobs()
    assert job.frame == {"type": "presence", "room": "l", "user": "bob", "event": "leave"}
    assert bob.send(action="leave", room="l") == {"type": "left", "room": "l"}  # idempotent
    assert env.drain_jobs() == []
    assert bob.ask(action="sendmessage", room="l", text="x", clientMsgId="c")["code"] == "not_member"
    from functions.chat.adapters.dynamodb.keys import deserialize

    rooms = [deserialize(i) for i in env.table_items("rooms")]
    assert sum(i["members"] for i in rooms if i["pk"] == "ROOM#l" and i["sk"].startswith("MEMBERS#")) == 1
    assert [i["sk"] for i in rooms if i["pk"].startswith("ROOM#l#S#")] == [alice.connection_id]
    assert [i["userId"] for i in rooms if i["sk"].startswith("USER#")] == ["alice"]


def test_disconnect_removes_connection_memberships_and_announces(env: Chat) -> None:
    alice, bob = Client("alice"), Client("bob")
    for room in ("a", "b"):
        alice.send(action="join", room=room)
        bob.send(action="join", room=room)
    env.drain_jobs()
    bob.disconnect()
    jobs = env.drain_jobs()
    assert sorted((j.room, j.frame["event"], j.frame["user"]) for j in jobs) == [
        ("a", "leave", "bob"),
        ("b", "leave", "bob"),
    ]
    assert env.service._store.get_connection(bob.connection_id) is None
    items = json.dumps(env.table_items("rooms"))
    # The subscriptions, presence and the user's connection entry go; the memberships stay.
    assert bob.connection_id not in items
    assert env.service._store.user_connections("bob", 0) == []
    assert [m.room for m in env.service._store.memberships("bob")] == ["a", "b"]
    bob.disconnect()  # a repeated $disconnect is harmless
    assert env.drain_jobs() == []


def test_unknown_action_and_bad_json_on_default_route(env: Chat) -> None:
    alice = Client("alice")
    assert alice.ask_raw("hello there")["code"] == "bad_request"
    assert alice.ask_raw('{"action": "dance"}')["code"] == "unknown_action"
    assert alice.ask_raw('{"room": "x"}')["code"] == "bad_request"


def test_too_large_text_and_identity_fields(env: Chat) -> None:
    alice = Client("alice")
    alice.send(action="join", room="r")
    before = snapshot(env)
    reply = alice.send(action="sendmessage", room="r", text="x" * 4001, clientMsgId="big")
    assert reply is not None and (reply["code"], reply["clientMsgId"]) == ("too_large", "big")
    reply = alice.send(action="sendmessage", room="r", text="hi", clientMsgId="c", user="bob")
    assert reply is not None and reply["code"] == "forbidden"
    assert snapshot(env) == before


def test_rate_limit_refuses_past_the_burst_without_writing(chat_factory: Any) -> None:
    # One token per 1,000 s: however slowly a loaded machine runs the pings, none refills.
    env = chat_factory(RATE_LIMIT_PER_SECOND="0.001", RATE_LIMIT_BURST="3")
    alice = Client("alice")
    replies = [alice.ask(action="ping") for _ in range(3)]
    assert [r["type"] for r in replies] == ["pong"] * 3
    before = snapshot(env)
    limited = alice.send(action="ping")
    assert limited is not None and (limited["type"], limited["code"]) == ("error", "rate_limited")
    assert snapshot(env) == before
    # The limit is per connection: another connection of the same user is unaffected.
    assert Client("alice").ask(action="ping")["type"] == "pong"


def test_seq_has_no_gaps_under_concurrent_senders(chat_factory: Any) -> None:
    env = chat_factory(RATE_LIMIT_PER_SECOND="10000", RATE_LIMIT_BURST="1000")
    senders = [Client(f"user{i}") for i in range(6)]
    for sender in senders:
        sender.send(action="join", room="race")
    per_sender = 8
    errors: list[BaseException] = []
    acks: list[dict[str, Any]] = []

    def run(sender: Client) -> None:
        try:
            for n in range(per_sender):
                ack = sender.send(
                    action="sendmessage",
                    room="race",
                    text=f"{sender.identity.user_id}-{n}",
                    clientMsgId=f"c{n}",
                )
                assert ack is not None and ack["type"] == "ack"
                acks.append(ack)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    messages = stored_messages(env, "race")
    total = len(senders) * per_sender
    assert sorted(m["seq"] for m in messages) == list(range(1, total + 1))
    assert Counter(m["text"] for m in messages) == Counter(
        {f"user{i}-{n}": 1 for i in range(6) for n in range(per_sender)}
    )
    assert env.service._store.room_counters("race", consistent=True)[0] == total
    assert sorted(a["seq"] for a in acks) == list(range(1, total + 1))


def test_jobs_are_one_per_non_empty_shard_in_batches(chat_factory: Any) -> None:
    env = chat_factory(SHARD_SIZE="2", RATE_LIMIT_PER_SECOND="10000", RATE_LIMIT_BURST="1000")
    members = [Client(f"u{i}") for i in range(12)]
    for member in members:
        member.send(action="join", room="s")
    env.drain_jobs()
    members[0].send(action="sendmessage", room="s", text="hi", clientMsgId="c")
    jobs: list[FanoutJob] = env.drain_jobs()
    shards = env.service._store.list_shards("s")
    assert len(shards) > 2 and sorted(str(j.shard) for j in jobs) == sorted(shards)
    recipients = [m.connection_id for shard in shards for m in env.service._store.shard_members("s", shard)]
    assert sorted(recipients) == sorted(m.connection_id for m in members)


def test_ack_is_the_route_response_so_a_throttled_management_api_cannot_lose_it(chat: Chat) -> None:
    from functions.chat.domain.ports import Throttled
    from functions.chat.domain.service import ChatService

    attempts: list[str] = []

    def always_throttled(connection_id: str, data: bytes) -> None:
        attempts.append(connection_id)
        raise Throttled(connection_id, "429")

    service = ChatService(
        chat.service._store, chat.service._queue, chat.settings, always_throttled, sleep=lambda _: None
    )
    cid, identity = chat.connect("alice")
    service.handle(cid, identity, json.dumps({"action": "join", "room": "r"}), "x")
    chat.drain_jobs()
    outcome = service.handle(
        cid,
        identity,
        json.dumps({"action": "sendmessage", "room": "r", "text": "t", "clientMsgId": "a1"}),
        "x",
    )
    assert outcome.error is None and outcome.stored
    assert outcome.reply is not None and outcome.reply["type"] == "ack" and outcome.reply["seq"] == 1
    assert attempts == []  # the ingress posts nothing: every copy is the fan-out's, with its retries
    [job] = chat.drain_jobs()
    assert job.exclude is None and job.frame["seq"] == 1
