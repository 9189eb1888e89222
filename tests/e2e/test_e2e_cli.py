"""`dynamowave token` and the argument checks of `dynamowave serve`, in process (no server)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt
import pytest

from dynamowave.cli import main
from dynamowave.commands.token import secret_from_string

SECRET = "cli-test-secret-0123456789abcdef0123456789"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DYNAMOWAVE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DYNAMOWAVE_JWT_SECRET", raising=False)
    return tmp_path / "state"


def test_token_signed_with_the_env_secret(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DYNAMOWAVE_JWT_SECRET", SECRET)
    assert main(["token", "alice", "--name", "Alice", "--rooms", "a,b", "--ttl", "120"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["name"], claims["rooms"]) == ("alice", "Alice", ["a", "b"])
    assert claims["exp"] - claims["iat"] == 120
    assert not state.exists()  # the env secret wins: no dev secret is created


@pytest.mark.parametrize(("flag", "claim"), [("ops,team.a", ["ops", "team.a"]), ("*", "*")])
def test_token_carries_the_mod_claim(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flag: str, claim: object
) -> None:
    monkeypatch.setenv("DYNAMOWAVE_JWT_SECRET", SECRET)
    assert main(["token", "mia", "--mod", flag]) == 0
    assert jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])["mod"] == claim


def test_token_creates_and_reuses_a_private_dev_secret(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "bob"]) == 0
    first = capsys.readouterr().out.strip()
    secret_file = state / "jwt-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert jwt.decode(first, secret, algorithms=["HS256"])["sub"] == "bob"
    assert "rooms" not in jwt.decode(first, secret, algorithms=["HS256"])
    assert main(["token", "bob"]) == 0
    assert secret_file.read_text().strip() == secret


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token", "bad user"], "invalid user id"),
        (["token", "x" * 65], "invalid user id"),
        (["token", "alice\n"], "invalid user id"),  # `$` would have matched before the newline
        (["token", "alice", "--rooms", "ok,not ok"], "invalid room name"),
        (["token", "alice", "--ttl", "0"], "--ttl"),
        (["token", "alice", "--mod", "ok,not ok"], "invalid room name"),
        (["token", "alice", "--secret-arn", "arn:aws:s3:::bucket"], "not a Secrets Manager ARN"),
    ],
)
def test_token_refuses_bad_input_with_exit_2(
    state: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_secret_string_raw_or_json() -> None:
    assert secret_from_string("plain-secret") == "plain-secret"
    assert secret_from_string('{"secret": "inside"}') == "inside"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"post_to_connection": {"throttle_rate": 1.5}}', "post_to_connection.throttle_rate"),
        ('{"post_to_connection": {"throttle_rate": 0.6, "error_rate": 0.6}}', "must be <= 1"),
        ('{"fanout_crash_rate": "often"}', "fanout_crash_rate must be a number"),
        ('{"surprise": 1}', "unknown key(s) surprise"),
        ('{"post_to_connection": {"latency_ms": -1}}', "latency_ms must be >= 0"),
    ],
)
def test_serve_refuses_a_bad_faults_file_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(content)
    assert main(["serve", "--port", "0", "--faults", str(faults)]) == 2
    assert message in capsys.readouterr().err


def test_serve_refuses_a_missing_faults_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--faults", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_serve_refuses_bad_handler_and_env_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--handler", "nosuch=x.y"]) == 2
    assert "unknown function 'nosuch'" in capsys.readouterr().err
    assert main(["serve", "--env", "lower=1"]) == 2
    assert "--env expects KEY=VALUE" in capsys.readouterr().err


def test_example_faults_file_from_the_issue_is_valid(tmp_path: Path) -> None:
    from dynamowave.local.faults import FaultConfig

    config = FaultConfig.from_json(
        json.loads(
            '{"post_to_connection": {"throttle_rate": 0.2, "error_rate": 0.05, "gone_rate": 0.0,'
            ' "latency_ms": 20}, "fanout_crash_rate": 0.1, "sqs_duplicate_rate": 0.1}'
        )
    )
    assert config.post_to_connection.latency_ms == 20
    assert config.fanout_crash_rate == 0.1
