"""The web client never interprets chat text or display names as HTML (Chromium, real runtime).

Hostile text arrives through the whole pipeline (stored, fanned out, rendered by the other
user's browser) and must show literally: no element created from it, no script run, no dialog,
no page error. Display names come from the token's `name` claim, so they are attacker-chosen too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chat_page import CHROMIUM, CHROMIUM_ARGS, ChatPage
from tests.clients.local_runtime import LocalRuntime, runtime_available, start_local_runtime

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"BROWSER TESTS DID NOT RUN: {CHROMIUM} is absent"),
    pytest.mark.skipif(runtime_available() is not None, reason=f"runtime missing: {runtime_available()}"),
]

PAYLOADS = [
    "<script>alert('script')</script>",
    '"><svg onload=alert("svg")>',
    "<iframe srcdoc=\"<script>parent.alert('iframe')</script>\"></iframe>",
    "<a href=\"javascript:alert('href')\">click me</a>",
    "</div><img src=x onerror=alert('img')>",
    "<style>body{display:none}</style><b>bold?</b>",
    "{{constructor.constructor('alert(1)')()}} ${alert(1)}",
    "\u202egnp.exe\u200b <math><mi xlink:href=\"javascript:alert('math')\">x</mi></math>",
]
HOSTILE_NAME = "<img src=x onerror=alert('name')>"
ACTIVE = "#messages script, #messages img, #messages svg, #messages iframe, #messages a, #messages style, #messages b, #messages math"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    server = start_local_runtime(
        Path(tmp_path_factory.mktemp("abuse-xss")), "--janitor-interval", "0", "--quiet"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def open_as(browser: Any, runtime: LocalRuntime, user: str, name: str) -> ChatPage:
    context = browser.new_context()
    context.set_default_timeout(20_000)
    page = context.new_page()
    chat = ChatPage(page, user)
    chat.record_script_errors()
    page.goto(runtime.http_url)
    page.fill("#name", name)
    page.fill("#user-id", user)
    page.click("#connect")
    page.locator('#status[data-state="connected"]').wait_for()
    return chat


def test_hostile_text_and_names_render_as_text(browser: Any, runtime: LocalRuntime) -> None:
    mallory = open_as(browser, runtime, "mallory", HOSTILE_NAME)
    victim = open_as(browser, runtime, "victim", "Victim")
    for chat in (mallory, victim):
        chat.join("xss-more")
    for payload in PAYLOADS:
        mallory.say(payload)
    for chat in (victim, mallory):
        # Frames of one connection run concurrently (as on AWS), so seq order may differ from send order.
        for seq in range(1, len(PAYLOADS) + 1):
            chat.message(seq).locator(".text").wait_for()
        assert sorted(chat.texts()) == sorted(PAYLOADS)
        assert chat.page.locator(ACTIVE).count() == 0, chat.page.inner_html("#messages")[:2000]
        names = chat.page.locator("#messages .message[data-seq] .author").all_text_contents()
        assert HOSTILE_NAME in names, names
    victim.page.wait_for_timeout(500)  # handlers would have fired by now
    assert victim.dialogs == [] and mallory.dialogs == []
    assert victim.errors == [] and mallory.errors == []
    assert victim.page.locator("body").is_visible()  # the <style> did not apply
