"""Every patch of a third-party library's internals, in one place, against exact versions.

The local runtime needs three libraries to behave as AWS does where they do not:

* `moto_patches`: moto's DynamoDB made atomic, and as cheap as DynamoDB per request (moto);
* `aiohttp_frames`: API Gateway's 32 KB per-frame limit in aiohttp's WebSocket parser (aiohttp);
* `botocore_hooks`: handlers on every botocore session and client a process creates, for
  in-process posts and the benchmark's meter (botocore).

Each patch reaches into internals that may change in any release, so each is written and
tested against the exact version `PINNED` names (pyproject.toml pins the same: a test checks),
and `require` refuses to apply it under any other version, loudly, at start-up: a patch that
silently no longer fits would make the local runtime differ from AWS without a sign.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import metadata
from typing import Final

# The versions the patches were written against (pyproject.toml's `local` extra pins the same).
PINNED: Final = {"moto": "5.2.5", "aiohttp": "3.14.5", "botocore": "1.44.8"}


class IncompatibleDependency(RuntimeError):
    """An installed library is not the version a patch of its internals was written for."""


@cache
def installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def require(distribution: str, installed: Callable[[str], str] | None = None) -> None:
    """Refuse to patch `distribution` unless it is the pinned version."""
    pinned = PINNED[distribution]
    found = (installed or installed_version)(distribution)
    if found != pinned:
        raise IncompatibleDependency(
            f"dynamowave.compat patches {distribution} {pinned}'s internals, but {distribution} "
            f"is {found}: install the pinned versions (pip install -e '.[local]'), or port the "
            f"patches in dynamowave/compat/ to {found} and update PINNED and pyproject.toml"
        )


def check_versions(installed: Callable[[str], str] | None = None) -> None:
    """Every patched library at its pinned version (the local runtime calls this first)."""
    for distribution in PINNED:
        require(distribution, installed)
