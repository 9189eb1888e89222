"""dynamowave/compat: every patched library pinned exactly, and a loud refusal under any other version."""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path

import pytest

from dynamowave import compat
from dynamowave.local.config import RuntimeConfig
from dynamowave.local.runtime import LocalRuntime

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_pins_exactly_what_the_patches_were_written_against() -> None:
    local = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["local"]
    pins = {}
    for requirement in local:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([0-9][0-9A-Za-z.]*)", requirement)
        if match:
            pins[match[1]] = match[2]
    assert pins == compat.PINNED


def test_the_installed_libraries_are_the_pinned_ones() -> None:
    compat.check_versions()  # what `make test` runs is what the patches were written for


def test_another_version_is_refused_naming_both_versions() -> None:
    def installed(distribution: str) -> str:
        return "9.9.9" if distribution == "aiohttp" else compat.PINNED[distribution]

    with pytest.raises(
        compat.IncompatibleDependency, match=r"aiohttp 3\.14\.5's internals, but aiohttp is 9\.9\.9"
    ):
        compat.check_versions(installed)
    compat.require("moto", installed)  # the others are fine


def test_a_missing_library_is_refused() -> None:
    with pytest.raises(compat.IncompatibleDependency, match="moto is not installed"):
        compat.require("moto", lambda _: "not installed")


def test_the_runtime_refuses_to_start_under_another_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "installed_version", lambda distribution: "0.0.1")
    runtime = LocalRuntime(RuntimeConfig(port=0))
    with pytest.raises(compat.IncompatibleDependency, match=r"moto 5\.2\.5's internals, but moto is 0\.0\.1"):
        asyncio.run(runtime.start())
    assert runtime.aws_endpoint == ""  # refused before moto or any socket was started
