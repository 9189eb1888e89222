"""The web client in headless Chromium against the real local runtime (`dynamowave serve`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.chat_page import ChatPage
from tests.clients.local_runtime import LocalRuntime, post_messages

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


def fresh_room(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_two_users_chat_both_ways_with_presence_and_typing(open_chat: Callable[..., ChatPage]) -> None:
    room = fresh_room("both-ways")
    alice = open_chat("alice")
    alice.join(room)
    bob = open_chat("bob")
    bob.join(room)

    # Presence: Alice sees Bob arrive; Bob's `joined.members` lists both.
    expect(alice.page.locator('#members .member[data-user="bob"]')).to_be_visible()
    expect(bob.page.locator('#members .member[data-user="alice"]')).to_be_visible()

    alice.say("Hi Bob, how is the deploy going?")
    expect(bob.message(1).locator(".text")).to_have_text("Hi Bob, how is the deploy going?")
    expect(bob.message(1).locator(".author")).to_have_text("Alice")
    # The sender's copy goes from pending to sent once acked.
    expect(alice.message(1)).to_have_attribute("data-status", "sent")
    expect(alice.page.locator("#messages .message.pending")).to_have_count(0)

    bob.page.locator("#message-input").press_sequentially("All green", delay=20)
    expect(alice.page.locator("#typing")).to_have_text("bob is typing…")  # typing frames carry the user id
    bob.page.locator("#message-input").press("Enter")
    expect(alice.message(2).locator(".text")).to_have_text("All green")
    # A message from the typist clears their typing indicator.
    expect(alice.page.locator("#typing")).to_have_text("")

    assert alice.seqs() == [1, 2] and bob.seqs() == [1, 2]
    assert alice.texts() == bob.texts() == ["Hi Bob, how is the deploy going?", "All green"]

    bob.page.locator(f'#rooms .room[data-room="{room}"] .room-leave').click()
    expect(alice.page.locator('#members .member[data-user="bob"]')).to_have_count(0)
    assert alice.errors == [] and bob.errors == []


def test_html_in_a_message_shows_as_text(open_chat: Callable[..., ChatPage]) -> None:
    room = fresh_room("xss")
    mallory = open_chat("mallory")
    mallory.join(room)
    victim = open_chat("victim")
    victim.join(room)

    mallory.say(XSS)
    for chat in (victim, mallory):
        expect(chat.message(1).locator(".text")).to_have_text(XSS)
        assert chat.page.locator("#messages img").count() == 0
        assert chat.page.locator("img").count() == 0
    victim.page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert victim.dialogs == [] and mallory.dialogs == []
    assert victim.errors == [] and mallory.errors == []


def test_scroll_back_through_history(open_chat: Callable[..., ChatPage], runtime: LocalRuntime) -> None:
    room = fresh_room("history")
    texts = [f"note {n}" for n in range(1, 56)]
    seqs = post_messages(runtime, "archivist", room, texts)
    assert sorted(seqs) == list(range(1, 56))
    text_of = dict(zip(seqs, texts, strict=True))

    reader = open_chat("reader")
    reader.join(room)
    # `join` without `since` returns the last 50.
    expect(reader.page.locator("#messages .message[data-seq]")).to_have_count(50)
    assert reader.seqs() == list(range(6, 56))
    assert reader.texts() == [text_of[seq] for seq in range(6, 56)]
    expect(reader.page.locator("#load-older")).to_be_visible()

    # Scrolling to the top asks for `history` before the lowest seq shown.
    reader.page.eval_on_selector("#scroller", "el => { el.scrollTop = 0; }")
    expect(reader.page.locator("#messages .message[data-seq]")).to_have_count(55)
    assert reader.seqs() == list(range(1, 56))
    assert reader.texts() == [text_of[seq] for seq in range(1, 56)]
    expect(reader.page.locator("#history-start")).to_be_visible()
    expect(reader.page.locator("#load-older")).to_be_hidden()
    history = [json.loads(f) for f in reader.frames_sent if '"history"' in f]
    assert history and history[0]["before"] == 6


def test_reconnect_recovers_messages_sent_while_disconnected(
    open_chat: Callable[..., ChatPage],
) -> None:
    room = fresh_room("recover")
    alice = open_chat("alice")
    alice.join(room)
    bob = open_chat("bob")
    bob.join(room)
    alice.say("before the outage")
    expect(bob.message(1)).to_be_visible()

    # Bob's network drops; the client stays offline until resume() so the test controls timing.
    bob.page.evaluate("window.dynamowave.dropConnection({hold: true})")
    expect(bob.page.locator("#status")).to_have_attribute("data-state", "offline")
    bob.say("typed while offline")  # queued, pending until the room is joined again
    expect(bob.page.locator("#messages .message.pending")).to_have_count(1)
    alice.say("you missed this one")
    expect(alice.message(2)).to_have_attribute("data-status", "sent")
    expect(bob.message(2)).to_have_count(0)

    bob.frames_sent.clear()
    bob.page.evaluate("window.dynamowave.resume()")
    expect(bob.page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(bob.message(2).locator(".text")).to_have_text("you missed this one")
    # The queued message went out after the re-join and was acked (seq 3), shown once.
    expect(bob.message(3).locator(".text")).to_have_text("typed while offline")
    expect(bob.page.locator("#messages .message.pending")).to_have_count(0)
    expect(alice.message(3).locator(".text")).to_have_text("typed while offline")

    joins = [json.loads(f) for f in bob.frames_sent if '"join"' in f]
    assert joins[0] == {"action": "join", "room": room, "since": 1, "rev": 0}  # v2: changes too
    assert bob.seqs() == [1, 2, 3]
    assert bob.texts() == ["before the outage", "you missed this one", "typed while offline"]
    assert alice.seqs() == [1, 2, 3]


def test_automatic_reconnect_after_the_socket_closes(open_chat: Callable[..., ChatPage]) -> None:
    room = fresh_room("auto")
    carol = open_chat("carol")
    carol.join(room)
    carol.page.evaluate("window.dynamowave.dropConnection()")
    # No hold: the client reconnects by itself (backoff) and re-joins its rooms.
    expect(carol.page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(carol.page.locator(f'#rooms .room[data-room="{room}"]:not(.not-joined)')).to_be_visible()
    carol.say("still here")
    expect(carol.message(1)).to_have_attribute("data-status", "sent")


def test_error_frames_are_shown_and_a_refused_send_can_be_retried(open_chat: Callable[..., ChatPage]) -> None:
    room = fresh_room("errors")
    dave = open_chat("dave")
    dave.join(room)
    # The server's limit is the authority (it is configurable): lift the page's own cap.
    dave.page.eval_on_selector("#message-input", "el => el.removeAttribute('maxlength')")
    dave.say("x" * 4001)
    toast = dave.page.locator('#errors .toast[data-code="too_large"]')
    expect(toast).to_contain_text("4000")
    expect(toast).to_contain_text(f"action sendmessage, room {room}")
    failed = dave.page.locator("#messages .message.failed")
    expect(failed.locator(".state")).to_contain_text("not sent: too_large")
    expect(failed.locator(".retry")).to_be_visible()
    dave.say("short enough")
    expect(dave.message(1).locator(".text")).to_have_text("short enough")


def test_pasted_url_and_token_connect_and_a_bad_token_is_refused(browser: Any, runtime: LocalRuntime) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(runtime.http_url)
        page.click("#remote summary")
        page.fill("#url", runtime.ws_url + "/")
        page.fill("#token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJldmUifQ.wrong-signature")
        page.click("#connect")
        expect(page.locator("#login-error")).to_contain_text("refused the token")
        expect(page.locator("#login-view")).to_be_visible()

        page.fill("#token", runtime.token("zed", "Zed"))
        page.click("#connect")
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        expect(page.locator("#status")).to_have_text("Connected as Zed (zed)")
    finally:
        context.close()


def test_edit_react_and_delete_in_one_tab_are_seen_in_the_other_and_after_a_reload(
    open_chat: Callable[..., ChatPage],
) -> None:
    import re

    room = fresh_room("lifecycle")
    alice = open_chat("alice")
    alice.join(room)
    bob = open_chat("bob")
    bob.join(room)
    alice.say("helo wrold")
    expect(bob.message(1).locator(".text")).to_have_text("helo wrold")
    expect(alice.message(1)).to_have_attribute("data-status", "sent")

    # Up-arrow in the empty composer edits one's last message.
    composer = alice.page.locator("#message-input")
    composer.press("ArrowUp")
    expect(composer).to_have_value("helo wrold")
    composer.fill("hello world")
    composer.press("Enter")
    for chat in (alice, bob):
        expect(chat.message(1).locator(".text")).to_have_text("hello world")
        expect(chat.message(1).locator(".edited-mark")).to_have_text("(edited)")

    # Bob reacts from the picker; both tabs count it, only Bob's is highlighted as his.
    bob.message(1).hover()
    bob.message(1).locator(".react-add").click()
    bob.message(1).locator('.pick[data-emoji="🎉"]').click()
    for chat in (alice, bob):
        expect(chat.message(1).locator('.reaction[data-emoji="🎉"]')).to_have_text("🎉 1")
    expect(bob.message(1).locator('.reaction[data-emoji="🎉"]')).to_have_class(re.compile(r"\bmine\b"))
    expect(alice.message(1).locator(".reaction.mine")).to_have_count(0)
    alice.message(1).locator('.reaction[data-emoji="🎉"]').click()  # Alice joins in from the chip
    expect(bob.message(1).locator('.reaction[data-emoji="🎉"]')).to_have_text("🎉 2")

    # Delete asks for a confirmation (a second click) before anything is sent.
    alice.say("oops, wrong room")
    expect(bob.message(2).locator(".text")).to_have_text("oops, wrong room")
    alice.message(2).hover()
    alice.message(2).locator(".delete").click()
    expect(alice.message(2).locator(".delete")).to_have_text("Delete? Click again")
    assert not any('"delete"' in frame for frame in alice.frames_sent)
    alice.message(2).locator(".delete").click()
    for chat in (alice, bob):
        expect(chat.message(2).locator(".text")).to_have_text("message deleted")
        expect(chat.message(2)).to_have_class(re.compile(r"\bdeleted\b"))

    # After a reload Bob's tab shows the current state from `joined`.
    bob.page.reload()
    bob.page.fill("#name", "Bob")
    bob.page.fill("#user-id", "bob")
    bob.page.click("#connect")
    bob.page.locator('#status[data-state="connected"]').wait_for()
    bob.join(room)
    expect(bob.message(1).locator(".text")).to_have_text("hello world")
    expect(bob.message(1).locator(".edited-mark")).to_have_text("(edited)")
    expect(bob.message(1).locator('.reaction[data-emoji="🎉"]')).to_have_text("🎉 2")
    expect(bob.message(1).locator('.reaction[data-emoji="🎉"]')).to_have_class(re.compile(r"\bmine\b"))
    expect(bob.message(2).locator(".text")).to_have_text("message deleted")
    assert alice.errors == [] and bob.errors == []
    assert alice.dialogs == [] and bob.dialogs == []


def wipe_room(runtime: LocalRuntime, room: str) -> None:
    """What a restart of the local runtime does to a room: its counter and messages are gone."""
    import urllib.request

    import boto3

    with urllib.request.urlopen(f"{runtime.http_url}dev/info", timeout=30) as response:
        info = json.loads(response.read())
    db: Any = boto3.session.Session().client(
        "dynamodb",
        endpoint_url=info["aws_endpoint"],
        region_name=info["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    db.delete_item(TableName=info["tables"]["rooms"], Key={"pk": {"S": f"ROOM#{room}"}, "sk": {"S": "META"}})
    items = db.query(
        TableName=info["tables"]["messages"],
        KeyConditionExpression="room = :r",
        ExpressionAttributeValues={":r": {"S": room}},
    )["Items"]
    for item in items:
        db.delete_item(TableName=info["tables"]["messages"], Key={"room": item["room"], "seq": item["seq"]})


def test_a_new_history_epoch_drops_the_rooms_cache(
    open_chat: Callable[..., ChatPage], runtime: LocalRuntime
) -> None:
    """After a reset, the new seq 1 is a new message, not a duplicate of the old seq 1."""
    room = fresh_room("epoch")
    dana = open_chat("dana")
    dana.join(room)
    dana.say("old one")
    dana.say("old two")
    expect(dana.message(2)).to_have_attribute("data-status", "sent")
    dana.page.evaluate("window.dynamowave.dropConnection({hold: true})")
    expect(dana.page.locator("#status")).to_have_attribute("data-state", "offline")
    wipe_room(runtime, room)
    post_messages(runtime, "erin", room, ["new one"])  # seq 1 of the new epoch

    dana.page.evaluate("window.dynamowave.resume()")
    expect(dana.page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(dana.message(1).locator(".text")).to_have_text("new one")
    expect(dana.message(2)).to_have_count(0)
    assert dana.texts() == ["new one"]
