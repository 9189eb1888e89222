"""The terminal client settles a send by its ack or by its own copy, whichever comes first
(docs/protocol.md, "The ack and the sender's own copy"): no server needed."""

from __future__ import annotations

import asyncio

from dynamowave.client_core import Outgoing
from dynamowave.terminal_client import ChatClient, ChatOptions


def client() -> tuple[ChatClient, list[str]]:
    lines: list[str] = []
    chat = ChatClient(ChatOptions(url="ws://127.0.0.1:1/", room="r", user="me"), lines.append)
    chat.outbox["c1"] = Outgoing("r", "hello", "c1")
    return chat, lines


def own_copy(seq: int = 1) -> dict[str, object]:
    return {"type": "message", "room": "r", "id": "m1", "seq": seq, "user": "me", "name": "me", "text": "hello", "ts": 1, "clientMsgId": "c1"}  # fmt: skip


def test_the_own_copy_before_the_ack_settles_the_send_and_is_shown_once() -> None:
    chat, lines = client()
    asyncio.run(chat.handle_frame(own_copy()))
    assert chat.outbox == {}  # no resend of an already stored message
    asyncio.run(chat.handle_frame({"type": "ack", "room": "r", "clientMsgId": "c1", "id": "m1", "seq": 1}))
    assert chat.outbox == {} and sum("hello" in line for line in lines) == 1


def test_someone_elses_message_with_the_same_client_msg_id_settles_nothing() -> None:
    chat, _ = client()
    asyncio.run(chat.handle_frame({**own_copy(), "user": "other"}))
    assert set(chat.outbox) == {"c1"}
