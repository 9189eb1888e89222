"""What may import what (docs/architecture.md), checked on the source: a new import that crosses a
layer fails here, with the rule it broke.

Imports are read with `ast` (every `import` and `from ... import`, also inside functions), so the
check needs nothing installed and sees the lazy imports the handlers and the runtime use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHAT = "functions.chat"

# functions/chat/, by layer (docs/architecture.md, "The layers").
CONTRACT = {
    "schema",
    "settings",
    "protocol",
    "jobs",
    "lifecycle",
    "auth",
    "clock",
    "retry",
    "lease",
    "observability",
    "ports",
}
ADAPTERS = {"store", "changes", "queue", "management_client", "review", "secrets", "memory"}
DOMAIN = {"service", "lifecycle_service", "conversations", "user_delivery", "delivery", "operator", "redrive"}
WIRING = {"deps"}
AWS_SDK = ("boto3", "botocore", "mypy_boto3_")
# Private internals of third-party libraries: patched in dynamowave/compat/ only.
PRIVATE_INTERNALS = ("aiohttp._websocket", "botocore.handlers")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (REPO / folder).rglob("*.py"))


def chat_modules(imported: set[str]) -> set[str]:
    """The functions.chat modules among `imported` (``functions.chat.store.ChatStore`` -> store)."""
    return {name.split(".")[2] for name in imported if name.startswith(CHAT + ".")} & (
        CONTRACT | ADAPTERS | DOMAIN | WIRING
    )


def uses_sdk(imported: set[str]) -> bool:
    return any(name.startswith(AWS_SDK) for name in imported)


def test_every_chat_module_has_a_layer() -> None:
    modules = {path.stem for path in (REPO / "functions" / "chat").glob("*.py")} - {"__init__"}
    assert modules == CONTRACT | ADAPTERS | DOMAIN | WIRING, (
        "add the new module to a layer here and in docs/architecture.md"
    )


@pytest.mark.parametrize("path", sources("functions"), ids=module_name)
def test_the_functions_know_nothing_outside_them(path: Path) -> None:
    outside = {
        n for n in imports_of(path) if n.split(".")[0] in {"dynamowave", "stacks", "loadtests", "tests"}
    }
    assert not outside, f"functions/ is the ground floor: it imports none of {sorted(outside)}"


@pytest.mark.parametrize("path", sources("functions/chat"), ids=module_name)
def test_each_chat_layer_imports_only_the_layers_below_it(path: Path) -> None:
    name = path.stem
    if name == "__init__":
        return
    imported = imports_of(path)
    used = chat_modules(imported)
    if name in CONTRACT:
        assert used <= CONTRACT, f"the contract layer imports only itself, not {sorted(used - CONTRACT)}"
        assert not uses_sdk(imported), "the contract layer has no AWS SDK"
    elif name in ADAPTERS:
        assert used <= CONTRACT | ADAPTERS, (
            f"an adapter imports no domain or wiring: {sorted(used - CONTRACT - ADAPTERS)}"
        )
    elif name in DOMAIN:
        assert not used & WIRING, "the domain is built by deps, it does not import it"
        assert not uses_sdk(imported), "the domain has no AWS SDK: it calls adapters"


@pytest.mark.parametrize("path", sources("functions"), ids=module_name)
def test_handlers_translate_events_and_leave_the_sdk_to_the_adapters(path: Path) -> None:
    if path.name != "handler.py":
        return
    imported = imports_of(path)
    assert not uses_sdk(imported), "a handler gets its clients from functions.chat.deps"
    assert not chat_modules(imported) & ADAPTERS - {"secrets", "review"}, (
        "a handler reaches adapters through deps"
    )


@pytest.mark.parametrize("path", sources("stacks"), ids=module_name)
def test_the_stack_reads_only_the_contract_from_the_functions(path: Path) -> None:
    used = chat_modules(imports_of(path))
    assert used <= CONTRACT, f"stacks/ shares the schema and settings, not {sorted(used - CONTRACT)}"


def test_the_client_core_has_no_io() -> None:
    imported = imports_of(REPO / "dynamowave" / "client_core.py")
    allowed = {"__future__", "random", "collections", "collections.abc", "dataclasses", "typing"}
    roots = {name.split(".")[0] for name in imported}
    assert roots <= {a.split(".")[0] for a in allowed}, (
        f"dynamowave/client_core.py is sans-I/O: {sorted(roots)}"
    )


@pytest.mark.parametrize(
    "path", sources("functions", "dynamowave", "stacks", "loadtests", "tests"), ids=module_name
)
def test_private_internals_are_patched_only_in_compat(path: Path) -> None:
    if path.is_relative_to(REPO / "dynamowave" / "compat"):
        return
    private = {n for n in imports_of(path) if n.startswith(PRIVATE_INTERNALS)}
    assert not private, (
        f"patch third-party internals in dynamowave/compat/ (pinned, version-checked): {private}"
    )


@pytest.mark.parametrize("path", sources("functions", "dynamowave/local", "stacks"), ids=module_name)
def test_the_test_harness_is_not_shipped_code_s_dependency(path: Path) -> None:
    assert not {n for n in imports_of(path) if n.startswith("dynamowave.testing")}
