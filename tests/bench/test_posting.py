"""The posting micro-benchmark delivers every post of both posters and reports both side by side."""

from __future__ import annotations

import json

import pytest

from dynamowave.bench import posting


def test_both_posters_are_measured_on_posts_that_arrived(capsys: pytest.CaptureFixture[str]) -> None:
    # run() raises unless the endpoint counted every post of both posters.
    assert posting.main(["--posts", "25", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["poster"].split()[0] for row in rows] == ["boto3", "SignedPoster.post"]
    assert all(row["posts"] == 25 and row["cpu_ms_per_post"] > 0 for row in rows)


def test_a_non_positive_post_count_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        posting.main(["--posts", "0"])
    assert exit_.value.code == 2
    assert "--posts must be at least 1" in capsys.readouterr().err
