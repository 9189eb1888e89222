"""Message lifecycle rules: edit, delete and react, decided on a message's current state.

Pure, no I/O (docs/protocol.md, "Message lifecycle"). `ChangeStore` (changes.py) reads the
stored message, asks one of the `decide_*` functions what the change makes of it, and writes
the answer conditionally on the state it read, so a racing change makes it decide again on the
newer state. A decision is one of: refused (`ChangeRefused`), no change (None: the same edit
again, `react on` twice, a second delete), or the message's whole new `MessageState`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from functions.chat.protocol import ErrorCode

# Documented limits (docs/protocol.md): they bound the `update` frame (every reaction's users
# travel in it) well under API Gateway's 128 KB: 20 x 50 user ids of 64 bytes is ~67 KB.
MAX_DISTINCT_REACTIONS: Final = 20
MAX_USERS_PER_REACTION: Final = 50


class ChangeRefused(Exception):
    """The change is not allowed on this message; becomes the protocol's error frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class MessageState:
    """What a change can alter. A tombstone is ``text=""``, ``deleted=True``, nothing else."""

    text: str
    edited_at: int | None = None
    deleted: bool = False
    reactions: dict[str, list[str]] = field(default_factory=dict)  # emoji -> user ids, in order

    @classmethod
    def of(cls, message: Mapping[str, Any]) -> MessageState:
        edited = message.get("editedAt")
        return cls(
            text=str(message.get("text", "")),
            edited_at=None if edited is None else int(edited),
            deleted=bool(message.get("deleted", False)),
            reactions={str(k): [str(u) for u in v] for k, v in dict(message.get("reactions") or {}).items()},
        )


TOMBSTONE: Final = MessageState(text="", deleted=True)


def _author(message: Mapping[str, Any]) -> str:
    return str(message.get("user", ""))


def _seq(message: Mapping[str, Any]) -> int:
    return int(message.get("seq", 0))


def _not_deleted(message: Mapping[str, Any], state: MessageState) -> None:
    if state.deleted:
        raise ChangeRefused(ErrorCode.NOT_FOUND, f"message {_seq(message)} was deleted")


def check_edit(message: Mapping[str, Any], user_id: str) -> MessageState:
    """The message's state if `user_id` may edit it (its author, and it is not deleted)."""
    state = MessageState.of(message)
    _not_deleted(message, state)
    if _author(message) != user_id:
        raise ChangeRefused(ErrorCode.FORBIDDEN, f"only the author may edit message {_seq(message)}")
    return state


def decide_edit(message: Mapping[str, Any], user_id: str, text: str, now_ms: int) -> MessageState | None:
    """The author's new text; None if it is already the text."""
    state = check_edit(message, user_id)
    if state.text == text:
        return None
    return MessageState(text=text, edited_at=now_ms, deleted=False, reactions=state.reactions)


def decide_delete(message: Mapping[str, Any], user_id: str, *, moderator: bool) -> MessageState | None:
    """A tombstone: text, edit time and reactions erased. None if it is one already."""
    if _author(message) != user_id and not moderator:
        raise ChangeRefused(
            ErrorCode.FORBIDDEN,
            f"only the author or a moderator of the room may delete message {_seq(message)}",
        )
    if MessageState.of(message).deleted:
        return None
    return TOMBSTONE


def decide_react(message: Mapping[str, Any], user_id: str, emoji: str, on: bool) -> MessageState | None:
    """`user_id` added to (or removed from) `emoji`'s users; None if already so."""
    state = MessageState.of(message)
    _not_deleted(message, state)
    users = state.reactions.get(emoji, [])
    if (user_id in users) == on:
        return None
    reactions = {k: list(v) for k, v in state.reactions.items()}
    if on:
        if emoji not in reactions and len(reactions) >= MAX_DISTINCT_REACTIONS:
            raise ChangeRefused(
                ErrorCode.BAD_REQUEST,
                f"message {_seq(message)} already has {MAX_DISTINCT_REACTIONS} different reactions "
                "(the limit): react with one of them",
            )
        if len(users) >= MAX_USERS_PER_REACTION:
            raise ChangeRefused(
                ErrorCode.BAD_REQUEST,
                f"{MAX_USERS_PER_REACTION} users already reacted {emoji} to message {_seq(message)} (the limit)",
            )
        reactions[emoji] = [*users, user_id]
    else:
        remaining = [u for u in users if u != user_id]
        if remaining:
            reactions[emoji] = remaining
        else:
            del reactions[emoji]
    return MessageState(text=state.text, edited_at=state.edited_at, deleted=False, reactions=reactions)
