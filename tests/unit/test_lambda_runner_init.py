"""The Lambda runner's cold start (the handler's import) runs before the function's timeout
starts, as Lambda's init phase has a budget of its own (dynamowave/local/lambda_runner.py)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from dynamowave.local.config import FunctionConfig
from dynamowave.local.lambda_runner import LambdaRunner

SLOW_IMPORT = """
import time
time.sleep(0.6)  # a cold start on a loaded machine


def handler(event, context):
    return {"remaining_ms": context.get_remaining_time_in_millis()}
"""


def test_a_slow_import_does_not_count_against_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_import_handler.py").write_text(SLOW_IMPORT)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_import_handler", raising=False)
    function = FunctionConfig("slow", "slow_import_handler.handler", 0.3, 128, 1)
    runner = LambdaRunner({"slow": function}, region="us-east-1", account_id="123456789012")
    try:
        invocation = asyncio.run(runner.invoke("slow", {}, trigger="test"))
    finally:
        runner.shutdown()
    assert invocation.ok, invocation.error
    assert invocation.duration_ms < 300  # the import is not in the invocation's duration
    assert 0 < invocation.result["remaining_ms"] <= 300
