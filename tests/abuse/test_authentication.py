"""Authentication abuse at the authorizer: every hostile token is refused, the valid one is not.

API Gateway turns the authorizer's answers into the handshake's status: an exception
"Unauthorized" -> 401, a Deny policy -> 403, Allow -> the connection proceeds. The same
catalogue (tests/abuse/hostile_tokens.py) is thrown at a real WebSocket handshake in test_handshake.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.chat import deps
from functions.chat.settings import ENV
from tests.abuse.hostile_tokens import KINDS, REFUSED, valid_token
from tests.integration.events import authorize

SECRET = "abuse-test-secret-0123456789abcdef0123"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV.JWT_SECRET, SECRET)
    deps.reset()


def effects(result: dict[str, Any]) -> set[str]:
    return {statement["Effect"] for statement in result["policyDocument"]["Statement"]}


def test_the_valid_token_is_allowed() -> None:
    result = authorize(valid_token(SECRET))
    assert effects(result) == {"Allow"}
    assert result["context"]["userId"] == "mallory"


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_token_is_denied_without_identity(kind: str) -> None:
    result = authorize(REFUSED[kind](SECRET))
    assert effects(result) == {"Deny"}, result
    # No identity leaks into the request context of a refused connection.
    assert "context" not in result or not result["context"].get("userId")


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token_is_unauthorized(token: str | None) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(token)
