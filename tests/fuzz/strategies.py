"""Hypothesis strategies for client frames: valid, almost valid, and hostile.

Values are drawn so that every validation boundary of docs/protocol.md is hit often: room names and
clientMsgIds at 64 and 65 characters, text at the length limit and past it, integers at 0,
2**53 - 1 and 2**53, and everything of the wrong type. Frames are serialized in several ways
(ASCII-escaped, raw Unicode with lone surrogates, truncated, deeply nested, oversize).
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import strategies as st

from functions.chat.protocol import ACTIONS, IDENTITY_FIELDS, MAX_MODERATION_SECONDS, MAX_SEQ, MODERATION_OPS

ROOM_ALPHABET = string.ascii_letters + string.digits + "_.-"
CLIENT_ID_ALPHABET = string.ascii_letters + string.digits + "_-"
CONTROL = "".join(chr(code) for code in [*range(0, 32), 127, 0x85, 0x2028, 0x2029, 0xFEFF, 0x200B])

# Any code point, lone surrogates (category Cs) included.
any_char = st.characters(codec=None, categories=None)
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
hostile_text = st.text(any_char | st.sampled_from(CONTROL) | surrogate, max_size=80)

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 50, 100, 101, MAX_SEQ, MAX_SEQ + 1, -MAX_SEQ, 2**63, 2**64 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1.5, 1e308, -1e308, 5e-324, 100.0, 101.0]),
)

json_scalars = st.one_of(st.none(), st.booleans(), numbers, hostile_text)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)


def _at_length(alphabet: str, *lengths: int) -> st.SearchStrategy[str]:
    return st.one_of(*(st.text(st.sampled_from(alphabet), min_size=n, max_size=n) for n in lengths))


valid_rooms = st.sampled_from(["lobby", "other", "r.1", "a-b_c"]) | _at_length(ROOM_ALPHABET, 1, 64)
rooms = st.one_of(
    valid_rooms,
    valid_rooms,  # weighted: most frames name a room that exists
    _at_length(ROOM_ALPHABET, 0, 65, 200),
    st.sampled_from(["lobby ", " lobby", "lob#by", "ROOM#x", "a/b", "../x", "lobby\x00", "lóbby", "lobby\n"]),
    hostile_text,
    json_values,
)
client_msg_ids = st.one_of(
    _at_length(CLIENT_ID_ALPHABET, 1, 64),
    _at_length(CLIENT_ID_ALPHABET, 0, 65),
    st.sampled_from(["a.b", "a b", "ü", "id\x00", "#"]),
    hostile_text,
    json_values,
)
texts = st.one_of(
    st.text(any_char.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), min_size=1, max_size=200),
    hostile_text,
    st.sampled_from(["", " ", "\x00", "<img src=x onerror=alert(1)>", "\u202e\u200b", "\U0001f600" * 10]),
    st.integers(min_value=3990, max_value=4010).map(lambda n: "x" * n),
    st.integers(min_value=3998, max_value=4001).map(lambda n: "\U0001f600" * n),
    json_values,
)
actions = st.one_of(
    st.sampled_from(ACTIONS),
    st.sampled_from(ACTIONS),
    st.sampled_from(["JOIN", "Join ", "$connect", "$disconnect", "$default", "", "sendMessage", "x" * 300]),
    hostile_text,
    json_values,
)
identity_fields = st.sampled_from(sorted(IDENTITY_FIELDS))
# `dm {user}` names the other participant: valid ids, the caller's own, and broken ones.
users = st.one_of(
    st.sampled_from(["bob", "fuzzer", "x@y.z", "a" * 64]),
    _at_length(ROOM_ALPHABET + "@", 0, 1, 65),
    hostile_text,
    json_values,
)

# `react`'s emoji: real ones (ZWJ sequences too), the 32-character bound, whitespace, controls.
emojis = st.one_of(
    st.sampled_from(["👍", "👨‍👩‍👧", "🏳️‍🌈", "x", " ", "a b", "\x00", "\u200d", "\ud83d"]),
    st.integers(min_value=31, max_value=33).map(lambda n: "y" * n),
    hostile_text,
    json_values,
)
# A kick's or ban's reason: up to 500 characters, valid Unicode (and just past the bound).
reasons = st.one_of(
    st.sampled_from(["", "spam", "\U0001f600", "\ud800", None]),
    st.integers(min_value=499, max_value=501).map(lambda n: "r" * n),
    hostile_text,
    json_values,
)
bools = st.one_of(st.booleans(), st.sampled_from([0, 1, "true", None]), json_values)

_MISSING: Any = object()


@st.composite
def frames(draw: st.DrawFn) -> dict[str, Any]:
    """A frame object: each known field present (valid or not) or absent, plus extra fields."""
    frame: dict[str, Any] = {}
    candidates: list[tuple[str, st.SearchStrategy[Any]]] = [
        ("action", actions),
        ("room", rooms),
        ("text", texts),
        ("clientMsgId", client_msg_ids),
        ("since", numbers | json_values),
        ("before", numbers | json_values),
        ("limit", numbers | json_values),
        ("seq", numbers | json_values),
        ("user", users),
        ("rev", numbers | json_values),
        ("emoji", emojis),
        ("on", bools),
        ("seconds", numbers | json_values),
        ("reason", reasons),
    ]
    for key, strategy in candidates:
        # "action" and "room" are present most of the time so the deeper checks are reached.
        present = draw(st.integers(0, 9)) < (9 if key in ("action", "room") else 5)
        if present:
            frame[key] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        frame[draw(identity_fields)] = draw(st.sampled_from(["mallory", "alice", "", None, 1]))
    extras = draw(st.dictionaries(hostile_text, json_values, max_size=3))
    for key, value in extras.items():
        frame.setdefault(key, value)
    return frame


_HOSTILE_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "room": rooms,
    "text": texts,
    "clientMsgId": client_msg_ids,
    "since": numbers | json_values,
    "before": numbers | json_values,
    "limit": numbers | json_values,
    "seq": numbers | json_values,
    "user": users,
    "rev": numbers | json_values,
    "emoji": emojis,
    "on": bools,
    "seconds": numbers | json_values,
    "reason": reasons,
}


@st.composite
def near_valid_frames(draw: st.DrawFn) -> dict[str, Any]:
    """A valid frame for a random action, then zero to two mutations (so success paths run too)."""
    action = draw(st.sampled_from(ACTIONS))
    room = draw(st.sampled_from(["lobby", "other", "r.1"]))
    frame: dict[str, Any] = {"action": action}
    if action not in ("ping", "rooms", "dm"):
        frame["room"] = room
    if action == "read":
        frame["seq"] = draw(st.integers(0, 5) | st.just(MAX_SEQ))
    if action == "dm":
        frame["user"] = draw(st.sampled_from(["bob", "fuzzer", "x@y.z"]))
    if action == "sendmessage":
        frame["text"] = draw(
            st.text(any_char.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), min_size=1) | st.just("hi")
        )
        frame["clientMsgId"] = draw(_at_length(CLIENT_ID_ALPHABET, 1, 8, 64))
    if action == "join" and draw(st.booleans()):
        frame["since"] = draw(st.integers(0, 5))
        if draw(st.booleans()):
            frame["rev"] = draw(st.integers(0, 5))
    if action in ("edit", "delete", "react"):
        frame["seq"] = draw(st.integers(1, 5) | st.just(MAX_SEQ))
    if action == "edit":
        frame["text"] = draw(st.sampled_from(["fixed", "hi", "\U0001f600"]))
    if action == "react":
        frame["emoji"] = draw(st.sampled_from(["👍", "🎉", "👨‍👩‍👧"]))
        frame["on"] = draw(st.booleans())
    if action in MODERATION_OPS:
        frame["user"] = draw(st.sampled_from(["bob", "fuzzer", "fuzz.mod", "x@y.z"]))
        if action in ("ban", "mute") and draw(st.booleans()):
            frame["seconds"] = draw(st.integers(1, 3600) | st.just(MAX_MODERATION_SECONDS))
        if action in ("kick", "ban") and draw(st.booleans()):
            frame["reason"] = draw(st.sampled_from(["spam", "", "\U0001f600 off topic"]))
    if action == "history":
        if draw(st.booleans()):
            frame["before"] = draw(st.integers(1, 10))
        if draw(st.booleans()):
            frame["limit"] = draw(st.integers(1, 100))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        kind = draw(st.integers(0, 2))
        key = draw(st.sampled_from(sorted(_HOSTILE_FIELD_VALUES)))
        if kind == 0:
            frame[key] = draw(_HOSTILE_FIELD_VALUES[key])
        elif kind == 1 and frame:  # an earlier mutation may have emptied it
            frame.pop(draw(st.sampled_from(sorted(frame))), None)
        else:
            frame[draw(hostile_text)] = draw(json_values)
    return frame


def _deep(depth: int, frame: dict[str, Any]) -> str:
    inner = "[" * depth + "]" * depth
    return json.dumps(frame)[:-1] + (", " if frame else "") + f'"nest": {inner}' + "}"


@st.composite
def bodies(draw: st.DrawFn) -> str | None:
    """The frame's text as it reaches the function: many ways to be right and wrong."""
    frame = draw(frames() | near_valid_frames())
    how = draw(st.integers(0, 14))
    if how <= 5:
        return json.dumps(frame, ensure_ascii=True)
    if how <= 8:
        # Raw characters, lone surrogates included (frames arrive at the function as str).
        return json.dumps(frame, ensure_ascii=False)
    if how == 9:
        text = json.dumps(frame)
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]  # truncated
    if how == 10:
        return _deep(draw(st.sampled_from([10, 100, 900, 5000, 40000])), frame)
    if how == 11:
        return draw(
            st.sampled_from(
                [
                    "null",
                    "[]",
                    '"join"',
                    "42",
                    "true",
                    "{}",
                    "NaN",
                    '{"action": NaN}',
                    '{"action": "history", "room": "lobby", "limit": Infinity}',
                    '{"action": "history", "room": "lobby", "limit": ' + "9" * 5000 + "}",
                    '{"action": "join", "room": "lobby", "since": -' + "9" * 400 + "}",
                    '{"action": "join", "room": "lobby", "since": 1e999}',
                    '{"action": "ping"',
                    '{"action": "ping"}{"action": "ping"}',
                    '{"action": "join", "action": "ping", "room": "lobby"}',
                    '{"action": "join", "room": "lo\\ud800bby"}',
                    '{"action": "sendmessage", "room": "lobby", "clientMsgId": "c1", "text": "\\udfff"}',
                    "\ufeff{}",
                    "",
                ]
            )
        )
    if how == 12:
        return None  # no body at all
    if how == 13:
        return draw(hostile_text)
    # Oversize: past the 128 KB message limit, or a large frame just under it.
    size = draw(st.sampled_from([128 * 1024 - 200, 128 * 1024 + 1, 200_000]))
    return json.dumps({**frame, "pad": "p" * size})
