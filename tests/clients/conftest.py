"""Fixtures for the terminal client's tests: one real local runtime per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.local_runtime import LocalRuntime, start_local_runtime


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    server = start_local_runtime(tmp_path_factory.mktemp("terminal-client"))
    yield server
    server.stop()
