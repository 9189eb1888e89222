"""Every pattern in the code matches the whole string: `\\Z` (or fullmatch), never a bare `$`.

`$` also matches just before a final newline, so ``re.match(r"^[a-z]{1,64}$", "alice\\n")``
succeeds. This test reads every Python source file of the project and refuses any regular
expression literal that ends in an unescaped `$`; tests/fuzz/test_hostile_identifiers.py checks
the identifiers' behaviour end to end.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = [
    path
    for folder in ("functions", "dynamowave", "stacks", "loadtests")
    for path in (REPO / folder).rglob("*.py")
]
RE_FUNCTIONS = {"compile", "match", "fullmatch", "search"}


def pattern_literals(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in RE_FUNCTIONS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "re"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_the_scan_sees_the_projects_patterns() -> None:
    literals = [pattern for path in SOURCES for _, pattern in pattern_literals(path)]
    assert r"\A[A-Za-z0-9_.-]{1,64}\Z" in literals  # the room pattern


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_pattern_ends_in_a_bare_dollar(path: Path) -> None:
    bad = [(line, p) for line, p in pattern_literals(path) if p.endswith("$") and not p.endswith("\\$")]
    assert not bad, f"{path}: use \\Z (and fullmatch), not $: {bad}"


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        (r"\A[A-Za-z0-9_.@-]{1,64}\Z", "alice"),
        (r"^[A-Za-z0-9_.@-]{1,64}$", "alice"),
    ],
)
def test_why_dollar_is_not_enough(pattern: str, valid: str) -> None:
    compiled = re.compile(pattern)
    assert compiled.fullmatch(valid)
    assert not compiled.fullmatch(valid + "\n")
    assert bool(compiled.match(valid + "\n")) is pattern.endswith("$")


def test_every_identifier_pattern_refuses_a_trailing_newline() -> None:
    from dynamowave.local import dev_tokens as tokens
    from dynamowave.terminal_client import ROOM_PATTERN as TERMINAL_ROOM
    from functions.chat import protocol, settings
    from stacks import config

    cases = [
        (protocol.USER_ID_PATTERN, "alice"),
        (protocol.ROOM_PATTERN, "r" * 64),
        (protocol.CLIENT_MSG_ID_PATTERN, "c-1"),
        (tokens.USER_PATTERN, "alice"),
        (tokens.ROOM_PATTERN, "general"),
        (TERMINAL_ROOM, "general"),
        (settings.ORIGIN_PATTERN, "https://chat.example.com"),
        (config._STAGE_PATTERN, "prod"),
        (config._REGION_PATTERN, "eu-west-1"),
        (config._KEY_ARN_PATTERN, "arn:aws:kms:eu-west-1:123456789012:key/abc-1"),
        (config._EMAIL_PATTERN, "ops@example.com"),
    ]
    for pattern, valid in cases:
        assert pattern.match(valid) and pattern.fullmatch(valid), pattern.pattern
        assert not pattern.match(valid + "\n") and not pattern.fullmatch(valid + "\n"), pattern.pattern


def test_the_web_clients_patterns_are_the_protocols() -> None:
    """client_core.js cannot import Python: its room and user patterns are checked against the source."""
    import re as regex
    from pathlib import Path

    from functions.chat import protocol

    script = (Path(__file__).resolve().parents[2] / "dynamowave" / "web" / "client_core.js").read_text()
    for name, pattern in (("ROOM_RE", protocol.ROOM_PATTERN), ("USER_RE", protocol.USER_ID_PATTERN)):
        found = regex.search(rf"const {name} = /\^(.*?)\$/;", script)
        assert found, name
        # JavaScript's `$` (no `m` flag) ends the string, as Python's `\Z` does.
        assert found[1] == pattern.pattern.removeprefix("\\A").removesuffix("\\Z"), name
