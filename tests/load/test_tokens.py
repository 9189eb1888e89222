"""Where the load test's tokens come from."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from loadtests.token_source import NoTokenSource, token_source

ENV = ("DYNAMOWAVE_TOKEN_FILE", "DYNAMOWAVE_JWT_SECRET", "DYNAMOWAVE_SECRET_ARN", "DYNAMOWAVE_STATE_DIR")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./.dynamowave of the developer's


def test_secret_from_the_environment_mints_tokens_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s" * 48
    monkeypatch.setenv("DYNAMOWAVE_JWT_SECRET", secret)
    token = token_source("wss://example.execute-api.us-east-1.amazonaws.com/prod").token(3, "load-3")
    assert jwt.decode(token, secret, algorithms=["HS256"])["sub"] == "load-3"


def test_token_file_is_used_round_robin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("t0\nt1\n", encoding="utf-8")
    monkeypatch.setenv("DYNAMOWAVE_TOKEN_FILE", str(path))
    source = token_source("wss://anything")
    assert [source.token(i, f"u{i}") for i in range(3)] == ["t0", "t1", "t0"]


def test_local_host_reads_the_runtime_dev_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "jwt-secret").write_text("d" * 48 + "\n", encoding="utf-8")
    monkeypatch.setenv("DYNAMOWAVE_STATE_DIR", str(state))
    token = token_source("ws://127.0.0.1:8765").token(0, "u0")
    assert jwt.decode(token, "d" * 48, algorithms=["HS256"])["sub"] == "u0"


def test_a_deployed_host_without_credentials_is_refused() -> None:
    with pytest.raises(NoTokenSource):
        token_source("wss://example.execute-api.us-east-1.amazonaws.com/prod")
