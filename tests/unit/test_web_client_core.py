"""The web client's core runs its own unit tests under `node --test` (tests/web/), inside make test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_web_clients_core_passes_its_node_tests() -> None:
    node = shutil.which("node")
    assert node, (
        "Node.js 20+ is needed for make test (README): the web client's core is tested with node --test"
    )
    tests = sorted(str(path) for path in (REPO / "tests" / "web").glob("*.test.js"))
    assert tests
    run = subprocess.run(
        [node, "--test", *tests], check=False, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout
