"""Fixtures for the web client's browser tests: the real local runtime and Debian's Chromium.

Chromium comes from the system (/usr/bin/chromium); `playwright install` is never run. Where it
is absent the tests are skipped with a reason that says so loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

# The runtime helper is shared with the terminal client's tests.
from tests.browser.chat_page import CHROMIUM, CHROMIUM_ARGS, ChatPage
from tests.clients.local_runtime import LocalRuntime, start_local_runtime

TIMEOUT_MS = 15_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"BROWSER TESTS DID NOT RUN: {CHROMIUM} is absent (install Debian's chromium package)"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    server = start_local_runtime(tmp_path_factory.mktemp("web-client"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"BROWSER TESTS DID NOT RUN: {CHROMIUM} is absent")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def open_chat(browser: Any, runtime: LocalRuntime) -> Iterator[Callable[..., ChatPage]]:
    contexts: list[Any] = []

    def open_as(user: str, name: str | None = None, *, mod: str | None = None) -> ChatPage:
        context = browser.new_context(viewport={"width": 1100, "height": 720})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        chat = ChatPage(page, user)
        chat.record_script_errors()
        page.on(
            "websocket",
            lambda ws: ws.on("framesent", lambda payload: chat.frames_sent.append(str(payload))),
        )
        page.goto(runtime.http_url)
        page.fill("#name", name or user.capitalize())
        page.fill("#user-id", user)
        if mod:
            page.fill("#mod-rooms", mod)  # the dev token's `mod` claim: "*" or "a,b"
        page.click("#connect")
        page.locator('#status[data-state="connected"]').wait_for()
        return chat

    yield open_as
    for context in contexts:
        context.close()
