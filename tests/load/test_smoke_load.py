"""`make loadtest`, short: a local runtime, 10 locust users for 20 s, zero failures, real deliveries."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _stats(folder: Path) -> dict[str, dict[str, str]]:
    (report,) = folder.glob("*/locust_stats.csv")
    with report.open(newline="", encoding="utf-8") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def test_smoke_load_run_has_no_failures_and_delivers(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "loadtests.run",
        "--users", "10", "--spawn-rate", "10", "--run-time", "20s",
        "--rooms", "2", "--send-interval", "4", "--results", str(tmp_path),
        "--serve-arg=--iam",  # the functions run within the stack's grants (docs/local-runtime.md)
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = _stats(tmp_path)
    assert int(rows["Aggregated"]["Failure Count"]) == 0, rows
    assert int(rows["connect"]["Request Count"]) == 10
    assert int(rows["join"]["Request Count"]) == 10
    assert int(rows["ack"]["Request Count"]) > 0
    # 5 members per room: every message reaches the other 4, so deliveries outnumber sends.
    assert int(rows["deliver"]["Request Count"]) > int(rows["deliver own"]["Request Count"]) > 0
    assert (next(tmp_path.glob("*/report.html"))).stat().st_size > 0
