"""The operator API's actions (docs/operator-api.md): what the operator's own backends may do,
over the same chat service the WebSocket routes use.

No HTTP here: `functions/operator/handler.py` routes API Gateway HTTP API events to these
methods. Every input is validated with the protocol's own rules before anything is read or
written, and every refusal is an `OperatorError` carrying the HTTP status and the protocol's
error code, so a refused call changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import unquote

from functions.chat import protocol
from functions.chat.auth import MAX_NAME_LENGTH, Identity
from functions.chat.domain.ports import Gone, PostError, StoreBusy
from functions.chat.domain.service import ChatService
from functions.chat.protocol import (
    CLIENT_MSG_ID_PATTERN,
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
    MAX_SEQ,
    ROOM_PATTERN,
    USER_ID_PATTERN,
    ErrorCode,
)

EVENT_NAME_PATTERN: Final = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")
# An event's `data` must leave room for its envelope inside one 128 KB WebSocket message.
MAX_EVENT_DATA_BYTES: Final = 64 * 1024
PRESENCE_LIMIT: Final = 1000
MAX_BAN_SECONDS: Final = protocol.MAX_MODERATION_SECONDS
# Who kicked, banned or invited, as the user sees it in `kicked` / `banned` / `invited`.
OPERATOR: Final = "operator"


class OperatorError(Exception):
    """A refused operator call: HTTP `status` and the JSON body {code, message}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def bad_request(message: str) -> OperatorError:
    return OperatorError(400, str(ErrorCode.BAD_REQUEST), message)


def path_value(raw: str, pattern: re.Pattern[str], what: str) -> str:
    """A path parameter, percent-decoded, that must match the protocol's pattern for `what`."""
    value = unquote(raw)
    if not pattern.fullmatch(value):
        raise bad_request(f"{what} {value[:80]!r} must match {pattern.pattern}")
    return value


def room_of(raw: str) -> str:
    return path_value(raw, ROOM_PATTERN, "room")


def user_of(raw: str) -> str:
    return path_value(raw, USER_ID_PATTERN, "user")


def json_body(raw: str | None, *, required: bool = True) -> dict[str, Any]:
    if raw is None or raw == "":
        if required:
            raise bad_request("the body must be a JSON object")
        return {}
    if len(raw.encode("utf-8", "surrogatepass")) > protocol.MAX_MESSAGE_BYTES:
        raise OperatorError(413, str(ErrorCode.TOO_LARGE), f"body exceeds {protocol.MAX_MESSAGE_BYTES} bytes")
    try:
        data = protocol.strict_json(raw)
    except (ValueError, RecursionError):
        raise bad_request("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    return data


def optional_int(
    value: object, name: str, minimum: int, maximum: int = MAX_SEQ, *, query: bool = False
) -> int | None:
    """An integer in range, or None; from a query string (digits) or a JSON body (a number)."""
    if value is None:
        return None
    number: object = value
    if query and isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,16}", value):
            raise bad_request(f"'{name}' must be an integer {minimum}..{maximum}")
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= maximum:
        raise bad_request(f"'{name}' must be an integer {minimum}..{maximum}")
    return number


def event_fields(body: dict[str, Any]) -> tuple[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not EVENT_NAME_PATTERN.fullmatch(name):
        raise bad_request(f"'name' must match {EVENT_NAME_PATTERN.pattern}")
    if "data" not in body:
        raise bad_request("'data' is required (any JSON value)")
    if len(protocol.encode({"data": body["data"]}).encode("utf-8")) > MAX_EVENT_DATA_BYTES:
        raise OperatorError(413, str(ErrorCode.TOO_LARGE), f"'data' exceeds {MAX_EVENT_DATA_BYTES} bytes")
    return name, body["data"]


class Operator:
    """The operator API's actions over one `ChatService`."""

    def __init__(
        self, service: ChatService, *, max_text_length: int, close_connection: Callable[[str], None]
    ) -> None:
        self._service = service
        self._max_text_length = max_text_length
        self._close = close_connection  # the Management API's DeleteConnection

    def publish(self, room: str, body: dict[str, Any], correlation_id: str) -> dict[str, Any]:
        """Store and fan out a message as a bot or system user, idempotent on clientMsgId."""
        user = body.get("user")
        if not isinstance(user, str) or not USER_ID_PATTERN.fullmatch(user):
            raise bad_request(f"'user' must match {USER_ID_PATTERN.pattern}")
        name = body.get("name", user)
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise bad_request(f"'name' must be a non-empty string of at most {MAX_NAME_LENGTH} characters")
        client_msg_id = body.get("clientMsgId")
        if not isinstance(client_msg_id, str) or not CLIENT_MSG_ID_PATTERN.fullmatch(client_msg_id):
            raise bad_request(f"'clientMsgId' must match {CLIENT_MSG_ID_PATTERN.pattern}")
        problem = protocol.text_problem(body.get("text"), self._max_text_length)
        if problem is not None:
            code, message = problem
            raise OperatorError(413 if code is ErrorCode.TOO_LARGE else 400, str(code), message)
        try:
            message_id, seq, _ = self._service.publish(
                room, user, name, str(body["text"]), client_msg_id, correlation_id
            )
        except StoreBusy:
            raise OperatorError(409, str(ErrorCode.INTERNAL), "the room is busy; retry") from None
        return {"id": message_id, "seq": seq}

    def history(self, room: str, before: str | None, limit: str | None) -> dict[str, Any]:
        page = optional_int(limit, "limit", 1, HISTORY_MAX_LIMIT, query=True) or HISTORY_DEFAULT_LIMIT
        return self._service.history_frame(room, optional_int(before, "before", 1, query=True), page)

    def presence(self, room: str) -> dict[str, Any]:
        users, connections = self._service.presence(room, PRESENCE_LIMIT)
        return {"users": users, "connections": connections}

    def room_event(self, room: str, body: dict[str, Any], correlation_id: str) -> dict[str, Any]:
        name, data = event_fields(body)
        frame = {"type": "event", "room": room, "name": name, "data": data}
        return {"jobs": self._service.room_event(room, frame, correlation_id)}

    def add_member(self, room: str, user: str, correlation_id: str) -> dict[str, Any]:
        """The user becomes a member (no connection subscribed) and gets `invited` if new."""
        try:
            self._service.refuse_if_banned(room, user, action="add")
        except protocol.ProtocolError as error:
            raise OperatorError(409, str(error.code), f"{user!r} is banned from {room!r}") from None
        return {"added": self._service.add_member(user, room, OPERATOR, correlation_id)}

    def remove_member(
        self, room: str, user: str, body: dict[str, Any], correlation_id: str
    ) -> dict[str, Any]:
        """As a kick: every connection of a member is unsubscribed and gets `kicked`."""
        reason = reason_of(body)
        return {"jobs": self._run(lambda: self._service.kick(room, user, OPERATOR, reason, correlation_id))}

    def ban(self, room: str, user: str, body: dict[str, Any], correlation_id: str) -> dict[str, Any]:
        seconds = optional_int(body.get("seconds"), "seconds", 1, MAX_BAN_SECONDS)
        reason = reason_of(body)
        jobs = self._run(lambda: self._service.ban(room, user, OPERATOR, seconds, reason, correlation_id))
        return {"banned": True, "seconds": seconds, "jobs": jobs}

    def unban(self, room: str, user: str) -> dict[str, Any]:
        return {"unbanned": self._service.unban(room, user)}

    def mute(self, room: str, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """The user keeps reading; their sends, edits, reactions and typing are refused with
        `muted` until it expires (`seconds`) or is lifted."""
        seconds = optional_int(body.get("seconds"), "seconds", 1, MAX_BAN_SECONDS)
        self._service.mute(room, user, OPERATOR, seconds)
        return {"muted": True, "seconds": seconds}

    def unmute(self, room: str, user: str) -> dict[str, Any]:
        return {"unmuted": self._service.unmute(room, user)}

    def user_event(self, user: str, body: dict[str, Any], correlation_id: str) -> dict[str, Any]:
        name, data = event_fields(body)
        frame = protocol.event_frame(name, data)
        return {"jobs": self._service.users.deliver(user, frame, correlation_id=correlation_id)}

    def disconnect(self, user: str) -> dict[str, Any]:
        """Close every live connection of the user, as DeleteConnection closes it."""
        closed = 0
        for connection_id in self._service.users.connections(user):
            try:
                self._close(connection_id)
                closed += 1
            except Gone:
                continue  # already gone: its $disconnect or the janitor removes the record
            except PostError as error:
                raise OperatorError(
                    500, str(ErrorCode.INTERNAL), f"closing a connection failed: {error.detail}"
                ) from None
        return {"closed": closed}

    def rooms(self, user: str) -> dict[str, Any]:
        return self._service.rooms_of(user)

    def delete_message(self, room: str, raw_seq: str) -> dict[str, Any]:
        """Delete as a moderator would (the message lifecycle's delete: text erased, tombstone
        kept, `update` to every subscriber) -> {seq, rev, changed}."""
        seq = optional_int(raw_seq, "seq", 1, query=True)
        assert seq is not None
        try:
            outcome = self._service.lifecycle.delete(
                Identity(OPERATOR, OPERATOR, None), protocol.Delete(room, seq), moderator=True
            )
        except protocol.ProtocolError as error:
            status = {ErrorCode.NOT_FOUND: 404, ErrorCode.INTERNAL: 409}.get(error.code, 400)
            raise OperatorError(status, str(error.code), error.message) from None
        return {"seq": seq, "rev": outcome.rev, "changed": outcome.changed}

    @staticmethod
    def _run(action: Callable[[], int]) -> int:
        try:
            return action()
        except StoreBusy:
            raise OperatorError(409, str(ErrorCode.INTERNAL), "the room is busy; retry") from None


def reason_of(body: dict[str, Any]) -> str:
    reason = body.get("reason", "")
    problem = protocol.reason_problem(reason)
    if problem is not None:
        raise bad_request(problem)
    return str(reason or "")
