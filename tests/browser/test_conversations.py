"""The web client's v2 conversations in Chromium: the room list with unread badges, DMs opened
from the member list, "seen" receipts, and read markers that follow the user across tabs."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.browser.chat_page import ChatPage

pytestmark = pytest.mark.browser


def test_two_users_dm_each_other_and_the_unread_badge_clears_in_the_other_tab(
    open_chat: Callable[..., ChatPage],
) -> None:
    suffix = uuid.uuid4().hex[:6]
    room, alice_id, bob_id = f"lobby-{suffix}", f"alice{suffix}", f"bob{suffix}"
    alice = open_chat(alice_id, "Alice")
    alice.join(room)
    bob = open_chat(bob_id, "Bob")
    bob.join(room)

    # Alice starts a DM from the member list; Bob is invited and the DM appears in his list.
    alice.page.locator(f'#members .member[data-user="{bob_id}"] .member-dm').click()
    dm = alice.page.locator("#rooms .room.dm")
    expect(dm).to_have_count(1)
    dm_room = dm.get_attribute("data-room")
    assert dm_room is not None and dm_room.startswith("dm.")
    expect(alice.page.locator("#room-title")).to_have_text(f"@ {bob_id}")  # no name seen yet
    bob_dm = bob.page.locator(f'#rooms .room[data-room="{dm_room}"]')
    expect(bob_dm).to_be_visible()

    # A second tab of Alice, looking at the lobby: the room list came from `rooms`.
    second = open_chat(alice_id, "Alice")
    second_dm = second.page.locator(f'#rooms .room[data-room="{dm_room}"]')
    expect(second_dm).to_be_visible()
    second.page.locator(f'#rooms .room[data-room="{room}"] .room-open').click()

    # Bob writes in the DM; Alice's first tab (away from the DM) and second tab show it unread.
    bob_dm.locator(".room-open").click()
    alice.page.locator(f'#rooms .room[data-room="{room}"] .room-open').click()
    bob.say("psst, lunch?")
    expect(alice.page.locator(f'#rooms .room[data-room="{dm_room}"] .badge')).to_have_text("1")
    expect(second_dm.locator(".badge")).to_have_text("1")

    # Alice reads it in her first tab: the marker goes out (debounced), the second tab's badge
    # clears through the server's `read`, and Bob sees "seen".
    alice.page.locator(f'#rooms .room[data-room="{dm_room}"] .room-open').click()
    expect(alice.message(1).locator(".text")).to_have_text("psst, lunch?")
    expect(second_dm.locator(".badge")).to_have_count(0)
    expect(alice.page.locator(f'#rooms .room[data-room="{dm_room}"] .badge')).to_have_count(0)
    expect(bob.page.locator("#messages .message.mine.seen")).to_have_count(1)
    reads = [f for f in alice.frames_sent if '"action": "read"' in f or '"action":"read"' in f]
    assert len(reads) == 1, reads  # one marker for one message, not one per render

    # And back: Alice answers, Bob's badge (he is in the lobby now) counts it.
    bob.page.locator(f'#rooms .room[data-room="{room}"] .room-open').click()
    alice.say("yes, 12:30")
    expect(bob_dm.locator(".badge")).to_have_text("1")
    assert alice.errors == [] and bob.errors == [] and second.errors == []
