"""The browser tests' helpers: how Chromium is launched, and one signed-in user of the web client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Debian's Chromium; `playwright install` is never run.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class ChatPage:
    """One signed-in user in their own browser context (own storage, own socket)."""

    page: Any
    user: str
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    frames_sent: list[str] = field(default_factory=list)

    def record_script_errors(self) -> None:
        """Collect alert() dialogs (injected HTML would raise them) and uncaught page errors."""

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def join(self, room: str) -> None:
        self.page.fill("#room-input", room)
        self.page.click("#join")
        self.page.locator(f'#rooms .room[data-room="{room}"]:not(.not-joined)').wait_for()

    def say(self, text: str) -> None:
        self.page.fill("#message-input", text)
        self.page.click("#send")

    def message(self, seq: int) -> Any:
        return self.page.locator(f'#messages .message[data-seq="{seq}"]')

    def texts(self) -> list[str]:
        return [str(t) for t in self.page.locator("#messages .message[data-seq] .text").all_text_contents()]

    def seqs(self) -> list[int]:
        return [
            int(s)
            for s in self.page.eval_on_selector_all(
                "#messages .message[data-seq]", "els => els.map(e => e.dataset.seq)"
            )
        ]
