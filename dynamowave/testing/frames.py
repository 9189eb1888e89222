"""Frames in tests: a reply that must be there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def replied(reply: dict[str, Any] | None) -> dict[str, Any]:
    """`reply`, which the action under test must have given (a route response, a frame)."""
    assert reply is not None, "the action gave no reply"
    return reply


def reply_to(client_msg_id: str) -> Callable[[dict[str, Any]], bool]:
    """The route response to a send (not the own copy the fan-out may deliver first)."""
    return lambda frame: frame.get("clientMsgId") == client_msg_id and frame.get("type") != "message"
