"""An example message reviewer (docs/protocol.md, "Message review"): a word list. Copy it.

Deploy it as its own Lambda function and name its ARN in CDK context ``reviewFunctionArn``, or
run it locally with ``dynamowave serve --review-handler functions.review.handler.handler``.

Words are matched whole and case-insensitively. A message with a word from
``REVIEW_DENY_WORDS`` is denied (the sender gets error ``rejected``); words from
``REVIEW_MASK_WORDS`` are replaced by asterisks and the masked text is stored. Both are
comma-separated lists; the defaults below only show the mechanism.
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Any, Final

DEFAULT_DENY_WORDS: Final = "buy-followers,free-crypto"
DEFAULT_MASK_WORDS: Final = "darn,heck,frak"


def _words(variable: str, default: str) -> frozenset[str]:
    raw = os.environ.get(variable, default)
    return frozenset(word.strip().lower() for word in raw.split(",") if word.strip())


@cache
def _pattern(words: frozenset[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)


def review(text: str, deny: frozenset[str], mask: frozenset[str]) -> dict[str, Any]:
    """The reviewer's answer for one text: allow, deny with a reason, or replace."""
    denied = _pattern(deny)
    found = denied.search(text) if denied else None
    if found:
        return {"result": "deny", "reason": f"{found.group(0)!r} is not allowed here"}
    masked = _pattern(mask)
    if masked is None:
        return {"result": "allow"}
    replaced = masked.sub(lambda match: "*" * len(match.group(0)), text)
    return {"result": "allow"} if replaced == text else {"result": "replace", "text": replaced}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    text = event.get("text")
    if not isinstance(text, str):
        return {"result": "deny", "reason": "no text to review"}
    return review(
        text,
        _words("REVIEW_DENY_WORDS", DEFAULT_DENY_WORDS),
        _words("REVIEW_MASK_WORDS", DEFAULT_MASK_WORDS),
    )
