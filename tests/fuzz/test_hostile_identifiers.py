"""Fuzz: identifiers with a trailing newline (or any line break) and frames nested too deep.

`$` in a Python pattern also matches before a final newline, so ``alice\\n`` would have been a
second alice and ``general\\n`` a second room. Every pattern must match the whole string: the
frame's room and clientMsgId (ingress), the token's sub and rooms (authorizer and every minting
path), the terminal client's room names. And a frame nested past the parser's recursion limit
is routed ($default) and answered `bad_request`, never an exception in the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamowave.local.dev_tokens import TokenRequestError, mint
from dynamowave.local.gateway import select_route
from dynamowave.terminal_client import ROOM_PATTERN as TERMINAL_ROOM_PATTERN
from functions.chat.auth import Identity, TokenRefused, identity_from_claims, verify_token
from functions.chat.protocol import ErrorCode
from functions.chat.schema import ACTION_ROUTES
from tests.fuzz.strategies import bodies
from tests.fuzz.support import IngressHarness, api_gateway_route, fuzz_settings, ingress_harness

valid_rooms = st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z")
valid_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
valid_users = st.from_regex(r"\A[A-Za-z0-9_.@-]{1,64}\Z")
# "\n" is the one `$` lets through; the others must be refused as well.
line_breaks = st.sampled_from(["\n", "\n", "\r\n", "\r", "\n\n", "\x0b", "\x0c", "\x85", "\u2028"])
SECRET = "fuzz-identifiers-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def harness() -> Iterator[IngressHarness]:
    with ingress_harness(RATE_LIMIT_PER_SECOND="100000", RATE_LIMIT_BURST="100000") as harness:
        yield harness


@fuzz_settings(scale=0.3)
@given(room=valid_rooms, client_msg_id=valid_ids, tail=line_breaks, where=st.sampled_from(["room", "id"]))
def test_frames_with_a_line_break_after_an_identifier_are_refused(
    harness: IngressHarness, room: str, client_msg_id: str, tail: str, where: str
) -> None:
    identity = Identity("newline-check", "N", None)
    connection_id = harness.connect(identity)
    try:
        joined = harness.send(connection_id, identity, json.dumps({"action": "join", "room": room}))
        assert joined.frame is not None and joined.frame["type"] == "joined"
        harness.purge_queue()
        before = harness.snapshot()
        frame = {"action": "sendmessage", "room": room, "text": "hi", "clientMsgId": client_msg_id}
        frame["room" if where == "room" else "clientMsgId"] += tail
        for body in (json.dumps(frame), json.dumps({"action": "join", "room": room + tail})):
            reply = harness.send(connection_id, identity, body)
            assert reply.frame is not None and reply.frame["code"] == ErrorCode.BAD_REQUEST, reply
            if where == "room" or "join" in body:
                assert "room" not in reply.frame  # an invalid room is never echoed as if valid
        assert harness.snapshot() == before
    finally:
        harness.disconnect(connection_id)
        harness.purge_queue()


@fuzz_settings()
@given(user=valid_users, room=valid_rooms, tail=line_breaks)
def test_tokens_with_a_line_break_after_an_identifier_are_never_minted_nor_accepted(
    user: str, room: str, tail: str
) -> None:
    import jwt

    for claims in ({"sub": user + tail, "exp": 2**40}, {"sub": user, "exp": 2**40, "rooms": [room + tail]}):
        with pytest.raises(TokenRefused):
            identity_from_claims(claims)
        with pytest.raises(TokenRefused):
            verify_token(jwt.encode(claims, SECRET, algorithm="HS256"), SECRET)
    with pytest.raises(TokenRequestError):
        mint(SECRET, user + tail)  # dynamowave token, /dev/token
    with pytest.raises(TokenRefused):
        Identity.from_context({"userId": user + tail})
    assert not TERMINAL_ROOM_PATTERN.fullmatch(room + tail)
    assert not TERMINAL_ROOM_PATTERN.match(room + tail)


@fuzz_settings(scale=0.5)
@given(body=bodies(), depth=st.sampled_from([1000, 5000, 20000, 100000]), where=st.integers(0, 2))
def test_deeply_nested_frames_are_routed_not_raised(body: str | None, depth: int, where: int) -> None:
    """The gateway's route selection answers for any body, nested or not, as API Gateway does."""
    assert select_route(body, frozenset(ACTION_ROUTES)) == api_gateway_route(body)
    nested = [
        "[" * depth + "]" * depth,
        '{"action": "ping", "x": ' + "[" * depth + "]" * depth + "}",
        '{"a":' * depth + "1" + "}" * depth,
    ][where]
    route = select_route(nested, frozenset(ACTION_ROUTES))
    assert route == api_gateway_route(nested)
    if depth >= 5000:
        assert route == "$default"  # past the parser's recursion limit


@pytest.mark.parametrize("depth", [1000, 5000])
def test_a_deeply_nested_frame_is_answered_bad_request(harness: IngressHarness, depth: int) -> None:
    identity = Identity("nesting-check", "N", None)
    connection_id = harness.connect(identity)
    try:
        body = '{"action": "ping", "x": ' + "[" * depth + "]" * depth + "}"
        reply = harness.send(connection_id, identity, body, "$default")
        assert reply.frame is not None and reply.frame["code"] == ErrorCode.BAD_REQUEST, reply
    finally:
        harness.disconnect(connection_id)
