"""A message reviewer for the e2e suite: the example word list, plus a text that stalls it."""

from __future__ import annotations

import time
from typing import Any

from functions.review.handler import handler as wordlist

STALL_TEXT = "please stall the reviewer"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("text") == STALL_TEXT:
        time.sleep(8)  # far past the ingress's budget
    return wordlist(event, context)
