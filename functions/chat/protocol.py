"""The client wire contract (docs/protocol.md): frame parsing, validation, replies and errors.

Pure functions, no I/O. Every client frame is validated here into a typed request or refused
with a `ProtocolError` that carries the protocol's error code; nothing downstream sees raw JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from functions.chat.schema import ACTION_ROUTES

# Whole-string patterns: `\Z`, not `$`, which also matches before a final newline ("alice\n"
# would be a second alice). Apply them with `fullmatch`.
USER_ID_PATTERN: Final = re.compile(r"\A[A-Za-z0-9_.@-]{1,64}\Z")
ROOM_PATTERN: Final = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")
CLIENT_MSG_ID_PATTERN: Final = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
# Lone surrogates are not Unicode scalar values: they cannot be stored as UTF-8.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")

MAX_MESSAGE_BYTES: Final = 128 * 1024  # API Gateway WebSocket message limit
# Server replies are kept under the message limit with room to spare for the envelope.
REPLY_BUDGET_BYTES: Final = 120 * 1024
HISTORY_DEFAULT_LIMIT: Final = 50
HISTORY_MAX_LIMIT: Final = 100
JOIN_SINCE_LIMIT: Final = 100
MAX_EMOJI_LENGTH: Final = 32  # characters (code points), docs/protocol.md's `emoji` bound
MAX_SEQ: Final = 2**53 - 1  # JSON-safe integer range for every client
# Frames may not name an identity: it comes from the authorizer's context only.
IDENTITY_FIELDS: Final = frozenset({"user", "userId", "sub", "name", "connectionId", "principalId"})


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_ACTION = "unknown_action"
    FORBIDDEN = "forbidden"
    NOT_MEMBER = "not_member"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    # v2: moderation and message review
    BANNED = "banned"
    MUTED = "muted"
    REJECTED = "rejected"
    NOT_FOUND = "not_found"  # v2: edit/delete/react of a message that does not exist (or was deleted)


class ProtocolError(Exception):
    """A refused frame: becomes an `error` frame for the caller; the connection stays open."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        action: str | None = None,
        room: str | None = None,
        client_msg_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.action = action
        self.room = room
        self.client_msg_id = client_msg_id

    def frame(self) -> dict[str, Any]:
        return error_frame(
            self.code, self.message, action=self.action, room=self.room, client_msg_id=self.client_msg_id
        )


# ---------------------------------------------------------------------------------------------
# Requests (client -> server)


@dataclass(frozen=True)
class Join:
    room: str
    since: int | None
    rev: int | None = None  # v2 recovery: the last rev seen; needs `since`


@dataclass(frozen=True)
class Leave:
    room: str


@dataclass(frozen=True)
class SendMessage:
    room: str
    text: str
    client_msg_id: str


@dataclass(frozen=True)
class History:
    room: str
    before: int | None
    limit: int


@dataclass(frozen=True)
class Typing:
    room: str


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Rooms:
    """The user's rooms with their unread counts (v2)."""


@dataclass(frozen=True)
class Read:
    room: str
    seq: int


@dataclass(frozen=True)
class Dm:
    user: str  # the other participant


# v2 message lifecycle (docs/protocol.md, "Message lifecycle")


@dataclass(frozen=True)
class Edit:
    room: str
    seq: int
    text: str


@dataclass(frozen=True)
class Delete:
    room: str
    seq: int


@dataclass(frozen=True)
class React:
    room: str
    seq: int
    emoji: str
    on: bool


# v2 moderation (docs/protocol.md, "Moderation"): by a moderator of the room (the `mod` claim)


class ModerationOp(StrEnum):
    KICK = "kick"
    BAN = "ban"
    UNBAN = "unban"
    MUTE = "mute"
    UNMUTE = "unmute"


@dataclass(frozen=True)
class Moderate:
    """`kick`, `ban`, `unban`, `mute` or `unmute` of `user` in `room`; `seconds` None: until
    lifted (ban and mute only); `reason` for kick and ban ("" if none)."""

    op: ModerationOp
    room: str
    user: str
    seconds: int | None = None
    reason: str = ""


Request = (
    Join
    | Leave
    | SendMessage
    | History
    | Typing
    | Ping
    | Rooms
    | Read
    | Dm
    | Edit
    | Delete
    | React
    | Moderate
)
# One list of route keys for the protocol, the CDK routes and the local gateway (schema.py).
ACTIONS: Final = ACTION_ROUTES
MODERATION_OPS: Final = frozenset(op.value for op in ModerationOp)
# Fields an action names as its *target*, not as the caller's identity: `dm {user}` names the
# other participant, a moderation op the user it acts on. Every other identity field in a frame
# is still refused.
TARGET_FIELDS: Final[dict[str, frozenset[str]]] = {
    "dm": frozenset({"user"}),
    **{op: frozenset({"user"}) for op in MODERATION_OPS},
}
# Bounds shared by the moderation frames and the operator API (functions/chat/domain/operator.py).
MAX_REASON_LENGTH: Final = 500
MAX_MODERATION_SECONDS: Final = 10 * 366 * 86400  # a timed ban or mute: up to ten years
ROOMS_PREVIEW_CHARS: Final = 200  # `rooms` carries each room's latest message cut to this length
# Whitespace and control characters are not reactions; format characters (ZWJ, variation
# selectors) are, since emoji sequences are built from them.
_NOT_EMOJI: Final = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


def strict_json(raw: str) -> Any:
    """JSON as RFC 8259 defines it (no NaN or Infinity); ValueError or RecursionError if not."""
    return json.loads(raw, parse_constant=_reject_constant)


def parse_frame(body: str | None, *, max_text_length: int) -> Request:
    """Parse one client frame into a typed request, or raise `ProtocolError`."""
    if body is None or body == "":
        raise ProtocolError(ErrorCode.BAD_REQUEST, "empty frame: send a JSON object with an 'action'")
    # API Gateway closes the socket (1009) past 128 KB; a smaller message that was sent in several
    # 32 KB frames does reach the function, and still must not be parsed at any size.
    if len(body.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"message exceeds {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame must be a JSON object")
    action = data.get("action")
    if not isinstance(action, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "missing string field 'action'")
    if action not in ACTIONS:
        shown = action if len(action) <= 64 else action[:64] + "..."
        raise ProtocolError(
            ErrorCode.UNKNOWN_ACTION, f"unknown action {shown!r}; one of {', '.join(ACTIONS)}"
        )
    return _parse_action(action, data, max_text_length=max_text_length)


def _parse_action(action: str, data: dict[str, Any], *, max_text_length: int) -> Request:
    room = data.get("room") if isinstance(data.get("room"), str) else None
    raw_id = data.get("clientMsgId")
    client_msg_id = raw_id if isinstance(raw_id, str) and CLIENT_MSG_ID_PATTERN.fullmatch(raw_id) else None

    def fail(code: ErrorCode, message: str) -> ProtocolError:
        valid_room = room if room is not None and ROOM_PATTERN.fullmatch(room) else None
        return ProtocolError(code, message, action=action, room=valid_room, client_msg_id=client_msg_id)

    named = sorted(IDENTITY_FIELDS.difference(TARGET_FIELDS.get(action, ())).intersection(data))
    if named:
        raise fail(ErrorCode.FORBIDDEN, f"identity comes from your token; remove {', '.join(named)}")
    if action == "ping":
        return Ping()
    if action == "rooms":
        return Rooms()
    if action == "dm":
        user = data.get("user")
        if not isinstance(user, str) or not USER_ID_PATTERN.fullmatch(user):
            raise fail(ErrorCode.BAD_REQUEST, "'user' must match ^[A-Za-z0-9_.@-]{1,64}$")
        return Dm(user)

    valid_room = _room(data.get("room"), fail)
    if action == "join":
        since, rev = _optional_int(data, "since", 0, fail), _optional_int(data, "rev", 0, fail)
        if rev is not None and since is None:
            raise fail(ErrorCode.BAD_REQUEST, "'rev' recovers changes of messages up to 'since': send both")
        return Join(valid_room, since, rev)
    if action == "leave":
        return Leave(valid_room)
    if action == "typing":
        return Typing(valid_room)
    if action == "read":
        seq = _optional_int(data, "seq", 0, fail)
        if seq is None:
            raise fail(ErrorCode.BAD_REQUEST, "'seq' (an integer >= 0) is required")
        return Read(valid_room, seq)
    if action == "history":
        before = _optional_int(data, "before", 1, fail)
        limit = _optional_int(data, "limit", 1, fail)
        if limit is not None and limit > HISTORY_MAX_LIMIT:
            raise fail(ErrorCode.BAD_REQUEST, f"'limit' must be 1..{HISTORY_MAX_LIMIT}")
        return History(valid_room, before, HISTORY_DEFAULT_LIMIT if limit is None else limit)
    if action in ("edit", "delete", "react"):
        return _parse_change(action, valid_room, data, fail, max_text_length=max_text_length)
    if action in MODERATION_OPS:
        return _parse_moderation(ModerationOp(action), valid_room, data, fail)
    # sendmessage
    if client_msg_id is None:
        raise fail(ErrorCode.BAD_REQUEST, "'clientMsgId' must match ^[A-Za-z0-9_-]{1,64}$")
    return SendMessage(valid_room, _text(data, fail, max_text_length), client_msg_id)


def _parse_change(
    action: str, room: str, data: dict[str, Any], fail: FailFn, *, max_text_length: int
) -> Edit | Delete | React:
    seq = _optional_int(data, "seq", 1, fail)
    if seq is None:
        raise fail(ErrorCode.BAD_REQUEST, "'seq' (the message's seq) is required")
    if action == "edit":
        return Edit(room, seq, _text(data, fail, max_text_length))
    if action == "delete":
        return Delete(room, seq)
    emoji = data.get("emoji")
    if (
        not isinstance(emoji, str)
        or not 1 <= len(emoji) <= MAX_EMOJI_LENGTH
        or _SURROGATE.search(emoji)
        or _NOT_EMOJI.search(emoji)
    ):
        raise fail(
            ErrorCode.BAD_REQUEST,
            f"'emoji' must be 1..{MAX_EMOJI_LENGTH} characters, no whitespace or control characters",
        )
    on = data.get("on")
    if not isinstance(on, bool):
        raise fail(ErrorCode.BAD_REQUEST, "'on' must be true (add your reaction) or false (remove it)")
    return React(room, seq, emoji, on)


def _parse_moderation(op: ModerationOp, room: str, data: dict[str, Any], fail: FailFn) -> Moderate:
    user = data.get("user")
    if not isinstance(user, str) or not USER_ID_PATTERN.fullmatch(user):
        raise fail(ErrorCode.BAD_REQUEST, "'user' (whom to moderate) must match ^[A-Za-z0-9_.@-]{1,64}$")
    seconds = None
    if op in (ModerationOp.BAN, ModerationOp.MUTE):
        seconds = _optional_int(data, "seconds", 1, fail)
        if seconds is not None and seconds > MAX_MODERATION_SECONDS:
            raise fail(
                ErrorCode.BAD_REQUEST, f"'seconds' must be 1..{MAX_MODERATION_SECONDS} (absent: until lifted)"
            )
    reason = ""
    if op in (ModerationOp.KICK, ModerationOp.BAN):
        problem = reason_problem(data.get("reason", ""))
        if problem is not None:
            raise fail(ErrorCode.BAD_REQUEST, problem)
        reason = str(data.get("reason") or "")
    return Moderate(op, room, user, seconds, reason)


def reason_problem(reason: object) -> str | None:
    """Why `reason` cannot be a kick's or ban's reason (a string of 0..500 characters of valid
    Unicode), or None. The one rule for moderation frames and the operator API."""
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH or _SURROGATE.search(reason):
        return f"'reason' must be a string of at most {MAX_REASON_LENGTH} characters"
    return None


def _text(data: dict[str, Any], fail: FailFn, max_text_length: int) -> str:
    text = data.get("text")
    problem = text_problem(text, max_text_length)
    if problem is not None:
        raise fail(*problem)
    assert isinstance(text, str)
    return text


def text_problem(text: object, max_text_length: int) -> tuple[ErrorCode, str] | None:
    """Why `text` cannot be a message's text (1..max characters of valid Unicode), or None.
    The one rule for frames, the operator API and a review's replacement text."""
    if not isinstance(text, str) or text == "":
        return ErrorCode.BAD_REQUEST, "'text' must be a non-empty string"
    if _SURROGATE.search(text):
        return ErrorCode.BAD_REQUEST, "'text' contains an unpaired surrogate (invalid Unicode)"
    if len(text) > max_text_length:
        return ErrorCode.TOO_LARGE, f"'text' exceeds {max_text_length} characters"
    return None


FailFn = Callable[[ErrorCode, str], ProtocolError]


def _room(value: object, fail: FailFn) -> str:
    if not isinstance(value, str) or not ROOM_PATTERN.fullmatch(value):
        raise fail(ErrorCode.BAD_REQUEST, "'room' must match ^[A-Za-z0-9_.-]{1,64}$")
    return value


def _optional_int(data: dict[str, Any], key: str, minimum: int, fail: FailFn) -> int | None:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    # bool is an int subclass in Python; floats with integral values (1.0) are accepted as JS sends them.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(ErrorCode.BAD_REQUEST, f"'{key}' must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise fail(ErrorCode.BAD_REQUEST, f"'{key}' must be an integer")
        value = int(value)
    if value < minimum or value > MAX_SEQ:
        raise fail(ErrorCode.BAD_REQUEST, f"'{key}' must be between {minimum} and {MAX_SEQ}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Replies and events (server -> client)


def encode(frame: dict[str, Any]) -> str:
    """Frames go out as compact UTF-8 JSON (non-ASCII kept as is: smaller than \\u escapes)."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def frame_size(frame: dict[str, Any]) -> int:
    return len(encode(frame).encode("utf-8"))


def error_frame(
    code: ErrorCode,
    message: str,
    *,
    action: str | None = None,
    room: str | None = None,
    client_msg_id: str | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": str(code), "message": message}
    if action is not None:
        frame["action"] = action
    if client_msg_id is not None:
        frame["clientMsgId"] = client_msg_id
    if room is not None:
        frame["room"] = room
    return frame


def message_frame(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "room": message["room"],
        "id": message["id"],
        "seq": message["seq"],
        "user": message["user"],
        "name": message["name"],
        "text": message["text"],
        "ts": message["ts"],
        "clientMsgId": message["clientMsgId"],
    }


def changed_frame(room: str, seq: int, rev: int) -> dict[str, Any]:
    return {"type": "changed", "room": room, "seq": seq, "rev": rev}


def message_state(message: dict[str, Any]) -> dict[str, Any]:
    """A message's whole current state, as `update` frames and `joined.updates` carry it."""
    return {
        "room": message["room"],
        "seq": message["seq"],
        "rev": int(message.get("rev", 0)),
        "text": message.get("text", ""),
        "editedAt": message.get("editedAt"),
        "deleted": bool(message.get("deleted", False)),
        "reactions": dict(message.get("reactions") or {}),
    }


def update_frame(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "update", **message_state(message)}


def ack_frame(room: str, client_msg_id: str, message_id: str, seq: int) -> dict[str, Any]:
    return {"type": "ack", "room": room, "clientMsgId": client_msg_id, "id": message_id, "seq": seq}


def presence_frame(room: str, user: str, event: str) -> dict[str, Any]:
    return {"type": "presence", "room": room, "user": user, "event": event}


def typing_frame(room: str, user: str) -> dict[str, Any]:
    return {"type": "typing", "room": room, "user": user}


def pong_frame(ts: int) -> dict[str, Any]:
    return {"type": "pong", "ts": ts}


def left_frame(room: str) -> dict[str, Any]:
    return {"type": "left", "room": room}


def read_frame(room: str, seq: int, unread: int) -> dict[str, Any]:
    return {"type": "read", "room": room, "seq": seq, "unread": unread}


def receipt_frame(room: str, user: str, seq: int) -> dict[str, Any]:
    return {"type": "receipt", "room": room, "user": user, "seq": seq}


def invited_frame(room: str, kind: str, from_user: str) -> dict[str, Any]:
    return {"type": "invited", "room": room, "kind": kind, "from": from_user}


def kicked_frame(room: str, by: str, reason: str, *, banned: bool = False) -> dict[str, Any]:
    """`kicked` (or `banned`) to every connection of a user whose membership a moderator ended."""
    return {"type": "banned" if banned else "kicked", "room": room, "by": by, "reason": reason}


def moderated_frame(room: str, user: str, op: str) -> dict[str, Any]:
    """The moderator's reply: the op is stored and its frames are queued."""
    return {"type": "moderated", "room": room, "user": user, "op": op}


def event_frame(name: str, data: Any, room: str | None = None) -> dict[str, Any]:
    """An operator API event: to a room's subscribers (with `room`) or to a user."""
    frame: dict[str, Any] = {"type": "event", "name": name, "data": data}
    return frame if room is None else {"type": "event", "room": room, "name": name, "data": data}


def preview(message: dict[str, Any]) -> dict[str, Any]:
    """A message frame whose text is cut to `ROOMS_PREVIEW_CHARS` (the room list's `last`)."""
    frame = message_frame(message)
    if len(frame["text"]) > ROOMS_PREVIEW_CHARS:
        frame["text"] = frame["text"][:ROOMS_PREVIEW_CHARS]
        frame["truncated"] = True
    return frame


def fit_rooms(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The `rooms` entries (newest activity first) that fit in one reply, and whether any were left."""
    budget = REPLY_BUDGET_BYTES - frame_size({"type": "rooms", "rooms": [], "more": True})
    used = 0
    for index, entry in enumerate(entries):
        used += frame_size(entry) + 1
        if used > budget:
            return entries[:index], True
    return entries, False


def fit_messages(
    envelope: dict[str, Any], messages: list[dict[str, Any]], *, keep: str, more: bool
) -> tuple[list[dict[str, Any]], bool]:
    """Trim `messages` so that the reply stays under the 128 KB message limit.

    ``keep="oldest"`` keeps the lowest seqs (recovery with ``since``: the client asks again from
    the last one it got); ``keep="newest"`` keeps the highest (history scroll-back). Trimming
    sets ``more`` so the client knows to page on.
    """
    budget = REPLY_BUDGET_BYTES - frame_size({**envelope, "messages": [], "more": True})
    ordered = messages if keep == "oldest" else list(reversed(messages))
    kept: list[dict[str, Any]] = []
    used = 0
    for message in ordered:
        size = frame_size(message) + 1
        if used + size > budget:
            more = True
            break
        kept.append(message)
        used += size
    if keep == "newest":
        kept.reverse()
    return kept, more


# Coalesced delivery (docs/protocol.md, "Coalesced delivery"): a connection opened with
# `?batch=1` may get one `batch` frame carrying several fan-out frames of one room.
BATCH_QUERY_PARAMETER: Final = "batch"
BATCH_OPT_IN_VALUES: Final = frozenset({"1", "true"})
# API Gateway bills outbound messages in 32 KB units: a batch is cut at 32 KB, so each post
# costs one unit, and it stays far under the 128 KB message limit.
BATCH_FRAME_BYTES: Final = 32 * 1024
_BATCH_HEAD: Final = b'{"type":"batch","frames":['
_BATCH_TAIL: Final = b"]}"


def wants_batches(query: dict[str, Any] | None) -> bool:
    """True if the $connect query string opts in to coalesced delivery (``batch=1``)."""
    return str((query or {}).get(BATCH_QUERY_PARAMETER, "")).lower() in BATCH_OPT_IN_VALUES


def coalesce(encoded: list[bytes], limit: int = BATCH_FRAME_BYTES) -> list[tuple[bytes, list[int]]]:
    """Pack encoded frames into as few posts as fit `limit` bytes each, keeping their order.

    Returns (body, indexes of the frames it carries). A run of one frame is posted as the frame
    itself (no envelope); a frame too big to share a batch travels alone, as it would unbatched.
    """
    posts: list[tuple[bytes, list[int]]] = []
    run: list[int] = []
    size = len(_BATCH_HEAD) + len(_BATCH_TAIL)

    def flush() -> None:
        if len(run) == 1:
            posts.append((encoded[run[0]], list(run)))
        elif run:
            posts.append((_BATCH_HEAD + b",".join(encoded[i] for i in run) + _BATCH_TAIL, list(run)))

    for index, data in enumerate(encoded):
        grown = size + len(data) + (1 if run else 0)
        if run and grown > limit:
            flush()
            run, size = [], len(_BATCH_HEAD) + len(_BATCH_TAIL)
            grown = size + len(data)
        run.append(index)
        size = grown
    flush()
    return posts


def unbatch(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The frames a received frame stands for: a `batch`'s contents, else the frame itself."""
    if frame.get("type") == "batch" and isinstance(frame.get("frames"), list):
        return [f for f in frame["frames"] if isinstance(f, dict)]
    return [frame]
