"""Regenerate docs/screenshots/web-client.png: two users chatting, seen from one of them, with an
unread room and a direct message from a third user in the room list.

    .venv/bin/python -m tests.browser.screenshot [OUTPUT.png]

Starts its own `dynamowave serve --port 0` and Debian's Chromium, like the browser tests.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from dynamowave.testing.serve import REPO
from tests.browser.chat_page import CHROMIUM, CHROMIUM_ARGS
from tests.clients.local_runtime import start_local_runtime

CONVERSATION = [
    ("alice", "Morning! The new fan-out stage is deployed to dev."),
    ("bob", "Nice. Did the 410 path clean up the stale connections?"),
    ("alice", "Yes: the janitor pruned 3, and nothing went to the DLQ."),
    ("bob", "Then let's load-test it after lunch. <script>alert('hi')</script> shows as text, by the way."),
]


def sign_in(page: Page, url: str, user: str, name: str) -> None:
    page.goto(url)
    page.fill("#name", name)
    page.fill("#user-id", user)
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")


def join(page: Page, room: str) -> None:
    page.fill("#room-input", room)
    page.click("#join")
    expect(page.locator(f'#rooms .room[data-room="{room}"]:not(.not-joined)')).to_be_visible()


def main(output: Path) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        runtime = start_local_runtime(Path(workdir))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                pages: dict[str, Page] = {}
                for user, name in (("alice", "Alice"), ("bob", "Bob")):
                    context = browser.new_context(
                        viewport={"width": 1200, "height": 720}, device_scale_factor=1
                    )
                    pages[user] = context.new_page()
                    sign_in(pages[user], runtime.http_url, user, name)
                    join(pages[user], "ops")
                    join(pages[user], "general")
                for seq, (user, text) in enumerate(CONVERSATION, start=1):
                    pages[user].fill("#message-input", text)
                    pages[user].click("#send")
                    for page in pages.values():
                        expect(page.locator(f'.message[data-seq="{seq}"]')).to_be_visible()
                # A message in the other room shows as an unread badge; Bob starts typing again.
                pages["bob"].click('#rooms .room[data-room="ops"] .room-open')
                pages["bob"].fill("#message-input", "Deploy to prod is queued for 14:00.")
                pages["bob"].click("#send")
                expect(pages["alice"].locator('#rooms .room[data-room="ops"] .badge')).to_have_text("1")
                # Carol opens a DM with Alice from the member list (v2): it appears in Alice's
                # room list as "@ Carol" with its unread badge.
                context = browser.new_context(viewport={"width": 1200, "height": 720}, device_scale_factor=1)
                carol = context.new_page()
                sign_in(carol, runtime.http_url, "carol", "Carol")
                join(carol, "general")
                carol.click('#members .member[data-user="alice"] .member-dm')
                expect(carol.locator("#rooms .room.dm")).to_have_count(1)
                carol.fill("#message-input", "Got a minute to review my PR?")
                carol.click("#send")
                expect(pages["alice"].locator("#rooms .room.dm .badge")).to_have_text("1")
                expect(pages["alice"].locator("#rooms .room.dm .room-open")).to_have_text("@ Carol")
                pages["bob"].click('#rooms .room[data-room="general"] .room-open')
                pages["bob"].locator("#message-input").press_sequentially("Sounds good", delay=30)
                expect(pages["alice"].locator("#typing")).not_to_be_empty()
                pages["alice"].locator("#message-input").fill("On it")
                output.parent.mkdir(parents=True, exist_ok=True)
                pages["alice"].screenshot(path=str(output))
                browser.close()
        finally:
            runtime.stop()
    print(f"wrote {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots" / "web-client.png")
