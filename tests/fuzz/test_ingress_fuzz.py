"""Property: any frame at any route yields a success or a protocol error, and a refused frame
changes nothing.

Frames go through the real ingress handler (API Gateway events, moto behind boto3). For every
frame: the handler returns (no exception escapes), with status 200; a reply is a JSON object
with a `type`; an error frame carries one of the protocol's codes and never `internal`; the
route response is valid UTF-8 (API Gateway must be able to send it); and when the frame was
refused, the three tables and the fan-out queue are exactly as they were before it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import assume, event, given, note
from hypothesis import strategies as st

from dynamowave.testing.frames import replied
from functions.chat.auth import Identity, ModeratorScope
from functions.chat.protocol import TARGET_FIELDS, ErrorCode
from functions.chat.schema import ACTION_ROUTES
from tests.fuzz.strategies import bodies, frames
from tests.fuzz.support import IngressHarness, Reply, api_gateway_route, fuzz_settings, ingress_harness

CLIENT_ERRORS = {code.value for code in ErrorCode} - {ErrorCode.INTERNAL.value}
ROUTES = (*ACTION_ROUTES, "$default")
# Server frames a reply may be; `ack`/`message`/`typing` go out through the Management API.
REPLY_TYPES = {"joined", "left", "history", "pong", "ack", "error", "rooms", "read", "changed", "moderated"}

identities = st.one_of(
    st.just(Identity("fuzzer", "Fuzzer", None)),
    st.just(Identity("fuzzer", "Fuzzer", None)),
    st.just(Identity("fuzzer.2@x", "Fuzzer Two", ("lobby", "r.1"))),
    # A moderator of every room: deletes of others' messages take the moderator path.
    st.just(Identity("fuzz.mod", "Moderator", None, mod=ModeratorScope(every_room=True))),
    st.just(Identity("fuzzer.nodm", "No DMs", None, dm=False)),
    st.builds(
        Identity,
        st.from_regex(r"\A[A-Za-z0-9_.@-]{1,64}\Z"),
        st.text(min_size=1, max_size=64).filter(str.strip),
        st.none() | st.lists(st.sampled_from(["lobby", "other", "r.1"]), max_size=3).map(tuple),
    ),
)


@pytest.fixture(scope="module")
def harness() -> Iterator[IngressHarness]:
    # A generous rate limit: the properties are about validation, not the limiter.
    with ingress_harness(RATE_LIMIT_PER_SECOND="100000", RATE_LIMIT_BURST="100000") as harness:
        yield harness


def check_reply(reply: Reply, body_action: str) -> None:
    assert reply.status == 200, reply
    if reply.raw_body is not None:
        reply.raw_body.encode("utf-8")  # strict: a lone surrogate here could never be sent
    if reply.frame is None:
        # Only typing has no route response (the handler acts on the body's action, whatever the
        # route key says); sendmessage's ack is its route response.
        assert body_action == "typing", reply
        return
    assert isinstance(reply.frame, dict), reply
    assert reply.frame.get("type") in REPLY_TYPES, reply.frame
    if reply.frame["type"] == "error":
        assert reply.frame["code"] in CLIENT_ERRORS, reply.frame
        assert isinstance(reply.frame.get("message"), str) and reply.frame["message"], reply.frame


def run_frame(
    harness: IngressHarness, connection_id: str, identity: Identity, body: str | None, route: str | None
) -> None:
    before = harness.snapshot()
    reply = harness.send(connection_id, identity, body, route)
    note(f"route={route} body={body!r:.300} -> {reply.frame}")
    check_reply(reply, api_gateway_route(body))
    outcome = "no reply" if reply.frame is None else reply.frame.get("code", reply.frame.get("type"))
    event(f"outcome: {outcome}")
    refused = reply.frame is not None and reply.frame.get("type") == "error"
    if refused and reply.frame is not None:
        after = harness.snapshot()
        if reply.frame.get("action") in LIFECYCLE_ACTIONS and reply.frame.get("code") in MESSAGE_REFUSALS:
            # Refused for the message's state, after the frame was admitted: it counted against
            # the frame rate (lastSeen, tat), and nothing else moved (docs/protocol.md).
            before, after = without_liveness(before), without_liveness(after)
        assert after == before, f"refused frame changed stored data: {reply.frame}"


LIFECYCLE_ACTIONS = ("edit", "delete", "react")
MESSAGE_REFUSALS = ("not_found", "forbidden", "bad_request", "rejected")


def without_liveness(snapshot: dict[str, Any]) -> dict[str, Any]:
    def strip(raw: str) -> str:
        item = json.loads(raw)
        item.pop("lastSeen", None)
        item.pop("tat", None)
        return json.dumps(item, sort_keys=True)

    return {**snapshot, "connections": sorted(strip(raw) for raw in snapshot["connections"])}


@fuzz_settings()
@given(
    identity=identities,
    joined=st.sampled_from([["lobby"], ["lobby", "r.1"], ["lobby", "other"], []]),
    sequence=st.lists(st.tuples(bodies(), st.none() | st.sampled_from(ROUTES)), min_size=1, max_size=3),
)
def test_any_frame_is_answered_by_the_protocol(
    harness: IngressHarness,
    identity: Identity,
    joined: list[str],
    sequence: list[tuple[str | None, str | None]],
) -> None:
    """A few frames on one connection (some joined rooms first, so member-only paths run too).

    The route is the one API Gateway would select from the body, or (second element set) a
    route key that disagrees with the body: the handler must not trust the route key either.
    """
    connection_id = harness.connect(identity)
    for room in joined:
        harness.send(connection_id, identity, json.dumps({"action": "join", "room": room}))
    harness.purge_queue()
    try:
        for body, route in sequence:
            run_frame(harness, connection_id, identity, body, route)
    finally:
        harness.disconnect(connection_id)
        harness.purge_queue()


@fuzz_settings(scale=0.3)
@given(
    frame=frames(), field=st.sampled_from(["user", "userId", "sub", "name", "connectionId", "principalId"])
)
def test_identity_fields_are_always_refused(
    harness: IngressHarness, frame: dict[str, Any], field: str
) -> None:
    """Naming any identity in a frame is refused (forbidden, or an earlier validation error)."""
    identity = Identity("victim-check", "V", None)
    connection_id = harness.connect(identity)
    try:
        harness.send(connection_id, identity, json.dumps({"action": "join", "room": "lobby"}))
        harness.purge_queue()
        before = harness.snapshot()
        frame = {**frame, field: "mallory"}
        # `dm {user}` names the other participant, not the caller (docs/protocol.md, v2).
        assume(field not in TARGET_FIELDS.get(str(frame.get("action")), ()))
        reply = harness.send(connection_id, identity, json.dumps(frame))
        assert reply.frame is not None and reply.frame["type"] == "error", reply
        assert reply.frame["code"] in CLIENT_ERRORS, reply.frame
        assert harness.snapshot() == before
    finally:
        harness.disconnect(connection_id)
        harness.purge_queue()


@fuzz_settings(scale=0.3)
@given(
    room=st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z"),
    client_msg_id=st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
    text=st.text(st.characters(codec="utf-8"), min_size=1, max_size=4000),
)
def test_valid_sends_at_the_limits_are_stored_verbatim(
    harness: IngressHarness, room: str, client_msg_id: str, text: str
) -> None:
    """The accepting side of the boundary: anything valid is stored exactly as sent, once."""
    # A fresh user each time: (user, room, clientMsgId) is the idempotency key across examples.
    identity = Identity(f"sender-{uuid.uuid4().hex[:8]}", "Sender", None)
    connection_id = harness.connect(identity)
    try:
        assert (
            replied(
                harness.send(connection_id, identity, json.dumps({"action": "join", "room": room})).frame
            )["type"]
            == "joined"
        )
        body = json.dumps({"action": "sendmessage", "room": room, "text": text, "clientMsgId": client_msg_id})
        for _ in range(2):  # the resend is idempotent
            reply = harness.send(connection_id, identity, body)
            assert reply.frame is not None and reply.frame["type"] == "ack", reply
        history = harness.send(connection_id, identity, json.dumps({"action": "history", "room": room}))
        assert history.frame is not None
        # Earlier examples may have used the same room and clientMsgId under another user.
        mine = [
            m
            for m in history.frame["messages"]
            if m["clientMsgId"] == client_msg_id and m["user"] == identity.user_id
        ]
        assert len(mine) == 1 and mine[0]["text"] == text
    finally:
        harness.disconnect(connection_id)
        harness.purge_queue()
