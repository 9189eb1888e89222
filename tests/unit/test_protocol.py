"""The wire contract's validation, with no AWS: every field rule and error code of docs/protocol.md."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.chat import protocol
from functions.chat.protocol import ErrorCode, ProtocolError, parse_frame


def parse(frame: Any, max_text_length: int = 4000) -> protocol.Request:
    body = frame if isinstance(frame, str) else json.dumps(frame)
    return parse_frame(body, max_text_length=max_text_length)


def moderate(frame: Any) -> protocol.Moderate:
    """`parse` for a moderation frame, which must parse as one."""
    request = parse(frame)
    assert isinstance(request, protocol.Moderate), request
    return request


def refused(frame: Any, max_text_length: int = 4000) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse(frame, max_text_length)
    return caught.value


def test_each_action_parses_into_its_request() -> None:
    assert parse({"action": "join", "room": "general"}) == protocol.Join("general", None)
    assert parse({"action": "join", "room": "general", "since": 7}) == protocol.Join("general", 7)
    assert parse({"action": "leave", "room": "a.b-c_d"}) == protocol.Leave("a.b-c_d")
    assert parse({"action": "sendmessage", "room": "r", "text": "héllo 👋", "clientMsgId": "m-1_x"}) == (
        protocol.SendMessage("r", "héllo 👋", "m-1_x")
    )
    assert parse({"action": "history", "room": "r"}) == protocol.History("r", None, 50)
    assert parse({"action": "history", "room": "r", "before": 10, "limit": 100}) == protocol.History(
        "r", 10, 100
    )
    assert parse({"action": "typing", "room": "r"}) == protocol.Typing("r")
    assert parse({"action": "ping"}) == protocol.Ping()


def test_moderation_frames_parse_with_their_target_and_bounds() -> None:
    op = protocol.ModerationOp
    assert parse({"action": "kick", "room": "r", "user": "eve", "reason": "spam"}) == protocol.Moderate(
        op.KICK, "r", "eve", None, "spam"
    )
    # `seconds` only for ban and mute (3600.0 as JavaScript may send it), `reason` only for kick
    # and ban; null is absent; other fields are ignored as unknown ones are.
    assert parse({"action": "ban", "room": "r", "user": "e@x", "seconds": 3600.0, "reason": None}) == (
        protocol.Moderate(op.BAN, "r", "e@x", 3600, "")
    )
    assert parse({"action": "mute", "room": "r", "user": "eve", "reason": "x"}) == protocol.Moderate(
        op.MUTE, "r", "eve"
    )
    assert parse({"action": "unban", "room": "r", "user": "eve", "seconds": 5}) == protocol.Moderate(
        op.UNBAN, "r", "eve"
    )
    assert moderate({"action": "unmute", "room": "r", "user": "eve"}).op is op.UNMUTE
    longest = protocol.MAX_MODERATION_SECONDS
    assert moderate({"action": "mute", "room": "r", "user": "eve", "seconds": longest}).seconds == longest
    for bad in (
        {"action": "mute", "room": "r", "user": "eve", "seconds": longest + 1},
        {"action": "ban", "room": "r", "user": "eve", "seconds": True},
        {"action": "kick", "room": "r", "user": "eve", "reason": "r" * 501},
        {"action": "kick", "room": "r", "user": "eve", "reason": "\ud800"},
        {"action": "kick", "room": "r", "user": "eve\n"},
        {"action": "kick", "room": "r"},
    ):
        error = refused(bad)
        assert (error.code, error.action) == (ErrorCode.BAD_REQUEST, bad["action"]), bad
    assert moderate({"action": "kick", "room": "r", "user": "eve", "reason": "r" * 500}).reason == "r" * 500
    # `user` is the target here; the caller's identity fields are still refused.
    assert (
        refused({"action": "ban", "room": "r", "user": "eve", "sub": "mallory"}).code is ErrorCode.FORBIDDEN
    )


@pytest.mark.parametrize("body", ["", "not json", "[1,2]", '"text"', "12", "null", '{"action": 5}', "{}"])
def test_non_objects_and_missing_action_are_bad_requests(body: str) -> None:
    assert refused(body).code is ErrorCode.BAD_REQUEST


def test_unknown_action() -> None:
    error = refused({"action": "explode"})
    assert error.code is ErrorCode.UNKNOWN_ACTION
    assert "explode" in error.message


def test_nan_and_infinity_are_not_json() -> None:
    assert refused('{"action":"join","room":"r","since":NaN}').code is ErrorCode.BAD_REQUEST
    assert refused('{"action":"join","room":"r","since":Infinity}').code is ErrorCode.BAD_REQUEST


def test_deep_nesting_is_refused_not_crashing() -> None:
    shallow = '{"action":"ping","x":' + "[" * 50 + "]" * 50 + "}"
    assert parse(shallow) == protocol.Ping()
    deep = '{"action":"ping","x":' + "[" * 20_000 + "]" * 20_000 + "}"
    assert refused(deep).code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("room", ["", "a" * 65, "has space", "sl/ash", "hash#", "émoji", None, 5, ["r"]])
def test_room_names_outside_the_pattern(room: Any) -> None:
    error = refused({"action": "join", "room": room})
    assert error.code is ErrorCode.BAD_REQUEST
    assert error.room is None  # an invalid room is never echoed back


def test_room_name_at_its_limit() -> None:
    assert parse({"action": "join", "room": "r" * 64}) == protocol.Join("r" * 64, None)


@pytest.mark.parametrize("client_msg_id", ["", "x" * 65, "a b", "ä", None, 7])
def test_client_msg_ids_outside_the_pattern(client_msg_id: Any) -> None:
    error = refused({"action": "sendmessage", "room": "r", "text": "t", "clientMsgId": client_msg_id})
    assert error.code is ErrorCode.BAD_REQUEST


def test_client_msg_id_at_its_limit_and_echoed_in_errors() -> None:
    assert parse({"action": "sendmessage", "room": "r", "text": "t", "clientMsgId": "x" * 64})
    error = refused({"action": "sendmessage", "room": "r", "text": "", "clientMsgId": "abc"})
    assert (error.code, error.client_msg_id, error.room, error.action) == (
        ErrorCode.BAD_REQUEST,
        "abc",
        "r",
        "sendmessage",
    )


def test_text_limits() -> None:
    assert parse(
        {"action": "sendmessage", "room": "r", "text": "x" * 10, "clientMsgId": "m"}, max_text_length=10
    )
    error = refused(
        {"action": "sendmessage", "room": "r", "text": "x" * 11, "clientMsgId": "m"}, max_text_length=10
    )
    assert error.code is ErrorCode.TOO_LARGE
    assert (
        refused({"action": "sendmessage", "room": "r", "text": 5, "clientMsgId": "m"}).code
        is ErrorCode.BAD_REQUEST
    )


def test_lone_surrogates_are_refused() -> None:
    body = '{"action":"sendmessage","room":"r","text":"bad \\ud800 text","clientMsgId":"m"}'
    assert refused(body).code is ErrorCode.BAD_REQUEST


def test_control_characters_and_any_unicode_are_text() -> None:
    text = "line\nbreak\ttab \u0007 bell 中文 \U0001f600"
    assert parse({"action": "sendmessage", "room": "r", "text": text, "clientMsgId": "m"}) == (
        protocol.SendMessage("r", text, "m")
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("since", -1), ("since", "3"), ("since", True), ("since", 1.5), ("since", 2**53), ("since", 10**400)],
)
def test_since_must_be_a_non_negative_safe_integer(field: str, value: Any) -> None:
    assert refused({"action": "join", "room": "r", field: value}).code is ErrorCode.BAD_REQUEST


def test_integral_floats_are_accepted_as_javascript_sends_them() -> None:
    assert parse({"action": "join", "room": "r", "since": 3.0}) == protocol.Join("r", 3)


@pytest.mark.parametrize(("before", "limit"), [(0, None), (None, 0), (None, 101), (None, -5), ("x", None)])
def test_history_bounds(before: Any, limit: Any) -> None:
    frame: dict[str, Any] = {"action": "history", "room": "r"}
    if before is not None:
        frame["before"] = before
    if limit is not None:
        frame["limit"] = limit
    assert refused(frame).code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("field", sorted(protocol.IDENTITY_FIELDS))
def test_frames_may_not_name_an_identity(field: str) -> None:
    error = refused({"action": "sendmessage", "room": "r", "text": "t", "clientMsgId": "m", field: "mallory"})
    assert error.code is ErrorCode.FORBIDDEN


def test_oversize_frame_is_too_large() -> None:
    body = json.dumps({"action": "sendmessage", "room": "r", "text": "x" * 140_000, "clientMsgId": "m"})
    assert refused(body, max_text_length=1_000_000).code is ErrorCode.TOO_LARGE


def test_unknown_extra_fields_are_ignored() -> None:
    assert parse({"action": "join", "room": "r", "future": {"x": 1}}) == protocol.Join("r", None)


def test_error_frame_shape() -> None:
    frame = ProtocolError(ErrorCode.NOT_MEMBER, "no", action="typing", room="r", client_msg_id="c").frame()
    assert frame == {
        "type": "error",
        "code": "not_member",
        "message": "no",
        "action": "typing",
        "clientMsgId": "c",
        "room": "r",
    }


def test_fit_messages_keeps_replies_under_the_message_limit() -> None:
    messages = [{"seq": i, "text": "x" * 4000} for i in range(1, 101)]
    envelope = {"type": "history", "room": "r"}
    newest, more = protocol.fit_messages(envelope, messages, keep="newest", more=False)
    assert more is True
    assert newest[-1]["seq"] == 100 and newest == sorted(newest, key=lambda m: m["seq"])
    assert protocol.frame_size({**envelope, "messages": newest, "more": more}) <= protocol.MAX_MESSAGE_BYTES
    oldest, more = protocol.fit_messages(envelope, messages, keep="oldest", more=False)
    assert oldest[0]["seq"] == 1 and more is True
    small = messages[:3]
    assert protocol.fit_messages(envelope, small, keep="oldest", more=False) == (small, False)
