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

# functions/chat/, by layer (docs/architecture.md, "The layers"): the folder says the layer.
# The top level holds the contract and the wiring; domain/ the rules and their ports; adapters/
# the edges (AWS and the in-memory fakes).
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
}
WIRING = {"deps"}
DOMAIN_FOLDER = "domain"
ADAPTERS_FOLDER = "adapters"
PORTS = f"{DOMAIN_FOLDER}.ports"
# Defined in domain/ports.py; an adapter raises them, the domain catches them from there.
ADAPTER_ERRORS_AT_THE_PORT = {
    "ConnectionGone",
    "NotMember",
    "RateLimited",
    "Restricted",
    "StoreBusy",
    "PostError",
    "Gone",
    "Refused",
    "Throttled",
    "Transient",
    "backoff",
}
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


def layer_of(module: str) -> str:
    """The layer of a module path under functions.chat (``domain.service`` -> domain)."""
    head = module.split(".", maxsplit=1)[0]
    if head in (DOMAIN_FOLDER, ADAPTERS_FOLDER):
        return head
    if head in WIRING:
        return "wiring"
    return "contract"


def chat_modules(imported: set[str]) -> set[str]:
    """The functions.chat modules among `imported`, relative to functions.chat
    (``functions.chat.adapters.queue.JobQueue`` -> ``adapters.queue``)."""
    found: set[str] = set()
    for name in imported:
        if not name.startswith(CHAT + "."):
            continue
        parts = name.split(".")[2:]
        depth = 2 if parts[0] in (DOMAIN_FOLDER, ADAPTERS_FOLDER) and len(parts) > 1 else 1
        found.add(".".join(parts[:depth]))
    return found


def layers(modules: set[str]) -> set[str]:
    return {layer_of(module) for module in modules}


def uses_sdk(imported: set[str]) -> bool:
    return any(name.startswith(AWS_SDK) for name in imported)


def test_every_chat_module_has_a_layer() -> None:
    chat = REPO / "functions" / "chat"
    top = {path.stem for path in chat.glob("*.py")} - {"__init__"}
    assert top == CONTRACT | WIRING, (
        "a new module at the top of functions/chat/ is contract (add it here and in "
        "docs/architecture.md); rules go into domain/, AWS and fakes into adapters/"
    )
    folders = {path.name for path in chat.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == {DOMAIN_FOLDER, ADAPTERS_FOLDER}


@pytest.mark.parametrize("path", sources("functions"), ids=module_name)
def test_the_functions_know_nothing_outside_them(path: Path) -> None:
    outside = {
        n for n in imports_of(path) if n.split(".")[0] in {"dynamowave", "stacks", "loadtests", "tests"}
    }
    assert not outside, f"functions/ is the ground floor: it imports none of {sorted(outside)}"


@pytest.mark.parametrize("path", sources("functions/chat"), ids=module_name)
def test_each_chat_layer_imports_only_the_layers_below_it(path: Path) -> None:
    if path.stem == "__init__":
        return
    name = ".".join(path.relative_to(REPO / "functions" / "chat").with_suffix("").parts)
    imported = imports_of(path)
    used = chat_modules(imported) - {name}
    layer = layer_of(name)
    if layer == "contract":
        assert layers(used) <= {"contract"}, f"the contract layer imports only itself, not {sorted(used)}"
        assert not uses_sdk(imported), "the contract layer has no AWS SDK"
    elif layer == ADAPTERS_FOLDER:
        beyond = {m for m in used if layer_of(m) not in ("contract", ADAPTERS_FOLDER)} - {PORTS}
        assert not beyond, f"an adapter imports the contract and the ports, not {sorted(beyond)}"
    elif layer == DOMAIN_FOLDER:
        assert "wiring" not in layers(used), "the domain is built by deps, it does not import it"
        adapters = {m for m in used if layer_of(m) == ADAPTERS_FOLDER}
        assert not adapters, f"the domain sees adapters through domain/ports.py only, not {sorted(adapters)}"
        named = {n for n in imported if n.startswith(f"{CHAT}.{ADAPTERS_FOLDER}.")}
        assert not {n for n in named if n.rsplit(".", 1)[-1] in ADAPTER_ERRORS_AT_THE_PORT}, (
            "errors the domain catches are defined at the port (domain/ports.py)"
        )
        assert not uses_sdk(imported), "the domain has no AWS SDK: it calls adapters"


@pytest.mark.parametrize("path", sources("functions"), ids=module_name)
def test_handlers_translate_events_and_leave_the_sdk_to_the_adapters(path: Path) -> None:
    if path.name != "handler.py":
        return
    imported = imports_of(path)
    assert not uses_sdk(imported), "a handler gets its clients from functions.chat.deps"
    adapters = {m for m in chat_modules(imported) if layer_of(m) == ADAPTERS_FOLDER}
    assert adapters <= {"adapters.secrets"}, (
        "a handler reaches adapters through deps (but the authorizer's secret)"
    )


@pytest.mark.parametrize("path", sources("stacks"), ids=module_name)
def test_the_stack_reads_only_the_contract_from_the_functions(path: Path) -> None:
    used = chat_modules(imports_of(path))
    assert layers(used) <= {"contract"}, f"stacks/ shares the schema and settings, not {sorted(used)}"


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
