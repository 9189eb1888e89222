"""The moto-call micro-benchmark times both codes of each call, and leaves the patches in place."""

from __future__ import annotations

import inspect
import json

import pytest

from dynamowave.bench import moto_calls


def test_each_call_is_timed_with_motos_own_code_and_patched(capsys: pytest.CaptureFixture[str]) -> None:
    # run() raises unless every receive returned its 10 messages.
    assert moto_calls.main(["--calls", "5", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["moto"] for row in rows] == ["moto's own", "patched"] * 3
    assert [row["call"].split()[0] for row in rows[::2]] == ["ReceiveMessage,", "conditional", "lexing"]
    assert all(row["calls"] == 5 and row["median_ms"] > 0 for row in rows)


def test_motos_own_functions_are_lent_and_the_patches_put_back() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    moto_calls.run(2)
    patched = ConditionExpressionParser._lex_condition_expression
    with moto_calls.motos_own_functions():
        assert ConditionExpressionParser._lex_condition_expression is inspect.unwrap(patched)
    assert ConditionExpressionParser._lex_condition_expression is patched


def test_fewer_than_two_calls_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        moto_calls.main(["--calls", "1"])
    assert exit_.value.code == 2
    assert "--calls must be at least 2" in capsys.readouterr().err
