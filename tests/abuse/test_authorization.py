"""Authorization abuse through the real ingress handler (moto): what a valid token may not do.

- rooms outside the token's `rooms` claim -> forbidden, nothing written;
- send/history/typing in a room not joined on *this* connection -> not_member, nothing written;
- naming a user (or any identity field) in a frame -> refused; the stored author is the token's;
- reusing another user's clientMsgId does not return (or overwrite) their message;
- the per-connection rate limit refuses the excess with rate_limited and writes nothing for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dynamowave.testing.frames import replied
from functions.chat.auth import Identity
from tests.fuzz.support import IngressHarness, ingress_harness


@pytest.fixture
def harness() -> Iterator[IngressHarness]:
    with ingress_harness(RATE_LIMIT_PER_SECOND="1000", RATE_LIMIT_BURST="1000") as harness:
        yield harness


def send(harness: IngressHarness, connection: str, identity: Identity, **frame: Any) -> dict[str, Any] | None:
    reply = harness.send(connection, identity, json.dumps(frame))
    assert reply.status == 200, reply
    return reply.frame


def ask(harness: IngressHarness, connection: str, identity: Identity, **frame: Any) -> dict[str, Any]:
    """`send` for an action that replies."""
    return replied(send(harness, connection, identity, **frame))


def refused(
    harness: IngressHarness, connection: str, identity: Identity, code: str, **frame: Any
) -> dict[str, Any]:
    """Send a frame that must be refused with `code` and must leave every table as it was."""
    before = harness.snapshot()
    reply = send(harness, connection, identity, **frame)
    assert reply is not None and reply["type"] == "error", reply
    assert reply["code"] == code, reply
    assert harness.snapshot() == before, f"{frame} was refused but changed stored data"
    return reply


def stored_messages(harness: IngressHarness, room: str) -> list[dict[str, Any]]:
    items = [json.loads(item) for item in harness.table_items("messages")]
    return [item for item in items if item["room"]["S"] == room]


def test_rooms_outside_the_claim_are_forbidden(harness: IngressHarness) -> None:
    alice = Identity("alice", "Alice", ("public", "team.a"))
    connection = harness.connect(alice)
    for room in ("private", "Public", "team.a.b", "team", "publi", "public-"):
        reply = refused(harness, connection, alice, "forbidden", action="join", room=room)
        assert reply.get("room") == room
    assert ask(harness, connection, alice, action="join", room="public")["type"] == "joined"
    # Having joined an allowed room grants nothing elsewhere.
    refused(
        harness,
        connection,
        alice,
        "not_member",
        action="sendmessage",
        room="private",
        text="x",
        clientMsgId="m1",
    )
    refused(harness, connection, alice, "not_member", action="history", room="private")


def test_actions_in_rooms_not_joined_on_this_connection_are_refused(harness: IngressHarness) -> None:
    bob = Identity("bob", "Bob", None)
    first, second = harness.connect(bob), harness.connect(bob)
    assert ask(harness, first, bob, action="join", room="ops")["type"] == "joined"
    harness.purge_queue()
    # Membership is per connection: the same user's other connection is not a member.
    for frame in (
        {"action": "sendmessage", "room": "ops", "text": "hi", "clientMsgId": "c1"},
        {"action": "history", "room": "ops"},
        {"action": "typing", "room": "ops"},
    ):
        refused(harness, second, bob, "not_member", **frame)
    # After leaving, the first connection is refused too.
    assert send(harness, first, bob, action="leave", room="ops") == {"type": "left", "room": "ops"}
    harness.purge_queue()
    refused(harness, first, bob, "not_member", action="sendmessage", room="ops", text="hi", clientMsgId="c2")
    assert stored_messages(harness, "ops") == []


@pytest.mark.parametrize("field", ["user", "userId", "sub", "name", "connectionId", "principalId"])
def test_identity_in_a_frame_is_refused(harness: IngressHarness, field: str) -> None:
    mallory = Identity("mallory", "Mallory", None)
    connection = harness.connect(mallory)
    send(harness, connection, mallory, action="join", room="lobby")
    harness.purge_queue()
    frame = {
        "action": "sendmessage",
        "room": "lobby",
        "text": "I am alice",
        "clientMsgId": "spoof",
        field: "alice",
    }
    refused(harness, connection, mallory, "forbidden", **frame)
    assert stored_messages(harness, "lobby") == []


def test_the_author_is_always_the_tokens_user(harness: IngressHarness) -> None:
    mallory = Identity("mallory", "Mallory", None)
    connection = harness.connect(mallory)
    send(harness, connection, mallory, action="join", room="lobby")
    ack = send(
        harness, connection, mallory, action="sendmessage", room="lobby", text="hello", clientMsgId="m1"
    )
    assert ack is not None and ack["type"] == "ack"
    (message,) = stored_messages(harness, "lobby")
    assert message["user"] == {"S": "mallory"} and message["name"] == {"S": "Mallory"}


def test_another_users_client_msg_id_gets_its_own_message(harness: IngressHarness) -> None:
    alice, eve = Identity("alice", "Alice", None), Identity("eve", "Eve", None)
    a, e = harness.connect(alice), harness.connect(eve)
    for identity, connection in ((alice, a), (eve, e)):
        send(harness, connection, identity, action="join", room="lobby")
    send(harness, a, alice, action="sendmessage", room="lobby", text="alice's secret", clientMsgId="same-id")
    send(harness, e, eve, action="sendmessage", room="lobby", text="eve's text", clientMsgId="same-id")
    messages = sorted(stored_messages(harness, "lobby"), key=lambda item: int(item["seq"]["N"]))
    assert [(m["user"]["S"], m["text"]["S"], m["seq"]["N"]) for m in messages] == [
        ("alice", "alice's secret", "1"),
        ("eve", "eve's text", "2"),
    ]


def test_rate_limit_refuses_the_excess_and_writes_nothing_for_it() -> None:
    rate, burst = 1.0, 3
    with ingress_harness(RATE_LIMIT_PER_SECOND=str(rate), RATE_LIMIT_BURST=str(burst)) as harness:
        flooder = Identity("flooder", "F", None)
        connection = harness.connect(flooder)
        started = time.monotonic()
        codes = []
        for _ in range(12):
            before = harness.snapshot(limiter=True)
            reply = send(harness, connection, flooder, action="ping")
            assert reply is not None
            codes.append(reply.get("code", reply["type"]))
            if reply["type"] == "error":
                assert harness.snapshot(limiter=True) == before  # not even lastSeen is refreshed
        elapsed = time.monotonic() - started
        accepted = codes.count("pong")
        assert set(codes) <= {"pong", "rate_limited"}, codes
        assert codes.count("rate_limited") >= 1, codes
        # GCRA: at most the burst plus what refilled while the frames were sent.
        assert accepted <= burst + int(elapsed * rate) + 1, (codes, elapsed)
