"""The web client's moderation in Chromium: a moderator (the token's `mod` claim) sees delete
and "Moderate" (kick, ban, mute) on others' messages and on members; a kicked or banned user
sees why; a muted user's send fails with the reason; non-moderators see none of it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.browser.chat_page import ChatPage

pytestmark = pytest.mark.browser


def test_moderator_deletes_mutes_kicks_and_bans_and_the_target_sees_why(
    open_chat: Callable[..., ChatPage],
) -> None:
    suffix = uuid.uuid4().hex[:6]
    room, mia_id, bob_id = f"club-{suffix}", f"mia{suffix}", f"bob{suffix}"
    mia = open_chat(mia_id, "Mia", mod=room)
    mia.join(room)
    bob = open_chat(bob_id, "Bob")
    bob.join(room)
    bob.say("buy cheap watches")
    bob.say("second")
    mine = bob.message(1)
    theirs = mia.message(1)
    expect(theirs.locator(".text")).to_have_text("buy cheap watches")

    # Bob (no `mod` claim) sees no moderation controls, on Mia's member entry or anywhere.
    expect(bob.page.locator(f'#members .member[data-user="{mia_id}"] .member-moderate')).to_have_count(0)
    expect(bob.page.locator(".message .moderate")).to_have_count(0)
    expect(mine.locator(".delete")).to_have_count(1)  # his own message: yes

    # Mia deletes Bob's message (a second click confirms). The actions show on hover, and a
    # re-render of the message (the first click's confirm state, a frame arriving) can drop
    # Chromium's hover until the mouse moves: hover before each click, as a user's pointer is.
    delete = theirs.locator(".actions .delete")
    for _ in range(2):
        theirs.hover()
        delete.click()
    expect(bob.message(1).locator(".text")).to_have_text("message deleted")

    # Mia mutes Bob from his second message: his send fails, saying why.
    second = mia.message(2)
    second.hover()
    second.locator(".actions .moderate").click()
    panel = mia.page.locator(f'.mod-panel[data-user="{bob_id}"]')
    panel.locator(".mod-duration").select_option("300")
    panel.locator(".mod-mute").click()
    expect(mia.page.locator('#errors .toast[data-code="moderated"]').last).to_contain_text(f"muted in {room}")
    bob.say("let me talk")
    expect(bob.page.locator('#errors .toast[data-code="muted"]')).to_contain_text("you are muted")
    expect(bob.page.locator("#messages .message.failed")).to_have_count(1)

    # Unmute, then kick from the member list with a reason: Bob's tab drops the room and says why.
    member = mia.page.locator(f'#members .member[data-user="{bob_id}"]')
    member.locator(".member-moderate").click()
    panel.locator(".mod-unmute").click()
    expect(mia.page.locator('#errors .toast[data-code="moderated"]').last).to_contain_text(
        f"unmuted in {room}"
    )
    member.locator(".member-moderate").click()
    panel.locator(".mod-reason").fill("off topic")
    panel.locator(".mod-kick").click()
    expect(bob.page.locator("#notice")).to_contain_text(
        f"You were removed from {room} by {mia_id}: off topic"
    )
    expect(bob.page.locator(f'#rooms .room[data-room="{room}"]')).to_have_count(0)
    expect(member).to_have_count(0)  # presence leave reached Mia

    # Bob rejoins (a kick is not a ban); Mia bans him: the notice says so and a rejoin is refused.
    bob.page.locator("#notice-close").click()
    bob.join(room)
    expect(member).to_have_count(1)
    member.locator(".member-moderate").click()
    panel.locator(".mod-reason").fill("spam")
    panel.locator(".mod-ban").click()
    expect(bob.page.locator("#notice")).to_contain_text(f"You were banned from {room} by {mia_id}: spam")
    bob.page.fill("#room-input", room)
    bob.page.click("#join")
    refusal = bob.page.locator('#errors .toast[data-code="banned"]', has_text="you are banned from")
    expect(refusal.last).to_contain_text("until unbanned")
    expect(bob.page.locator(f'#rooms .room[data-room="{room}"]')).to_have_count(0)
    assert mia.errors == [] and bob.errors == [] and mia.dialogs == [] and bob.dialogs == []
