"""Each local function sees only its own variables (dynamowave/local/environments.py)."""

from __future__ import annotations

import threading

import pytest

from dynamowave.local.environments import FunctionEnviron, function_environments
from functions.chat.settings import ENV, get_settings


def test_a_running_function_sees_its_own_settings_and_the_process_for_the_rest() -> None:
    process = {ENV.CONNECTIONS_TABLE: "t", ENV.FANOUT_DLQ_URL: "dlq", "PATH": "/bin"}
    environ = FunctionEnviron(process)
    with environ.running({ENV.CONNECTIONS_TABLE: "mine"}):
        assert environ[ENV.CONNECTIONS_TABLE] == "mine"
        assert ENV.FANOUT_DLQ_URL not in environ  # not given to this function: absent, as on Lambda
        assert environ.get(ENV.FANOUT_DLQ_URL) is None
        assert environ["PATH"] == "/bin"  # not one of the functions' settings: the process's
        assert dict(environ) == {"PATH": "/bin", ENV.CONNECTIONS_TABLE: "mine"}
        seen_elsewhere: list[str | None] = []
        other = threading.Thread(target=lambda: seen_elsewhere.append(environ.get(ENV.FANOUT_DLQ_URL)))
        other.start()
        other.join()
        assert seen_elsewhere == ["dlq"]  # another thread is not this invocation
        environ["NEW"] = "1"  # writes go to the process
    assert process["NEW"] == "1"
    assert environ[ENV.FANOUT_DLQ_URL] == "dlq"


def test_settings_are_parsed_per_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    environ = FunctionEnviron(dict(os.environ))
    monkeypatch.setattr(os, "environ", environ)
    with environ.running({ENV.FANOUT_DLQ_URL: "one"}):
        first = get_settings()
    with environ.running({ENV.FANOUT_DLQ_URL: "two"}):
        second = get_settings()
    with environ.running({ENV.FANOUT_DLQ_URL: "one"}):
        assert get_settings() is first
    assert (first.fanout_dlq_url, second.fanout_dlq_url) == ("one", "two")


def test_function_environments_follow_the_one_definition() -> None:
    resources = {
        ENV.CONNECTIONS_TABLE: "c",
        ENV.ROOMS_TABLE: "r",
        ENV.MESSAGES_TABLE: "m",
        ENV.FANOUT_QUEUE_URL: "q",
        ENV.FANOUT_DLQ_URL: "d",
        ENV.MANAGEMENT_API_ENDPOINT: "e",
        ENV.JWT_SECRET_ARN: "s",
    }
    envs = function_environments(
        ["authorizer", "ingress", "fanout", "janitor", "redriver", "review"],
        {**resources, ENV.SHARD_SIZE: "2", ENV.FANOUT_VISIBILITY_SECONDS: "15"},
    )
    assert envs["authorizer"] == {ENV.JWT_SECRET_ARN: "s", ENV.SHARD_SIZE: "2"}
    assert ENV.FANOUT_DLQ_URL not in envs["ingress"] and ENV.JWT_SECRET_ARN not in envs["ingress"]
    assert envs["fanout"][ENV.FANOUT_DLQ_URL] == "d" and ENV.MESSAGES_TABLE not in envs["fanout"]
    # A setting only one function is given reaches that function only.
    assert envs["fanout"][ENV.FANOUT_VISIBILITY_SECONDS] == "15"
    assert ENV.FANOUT_VISIBILITY_SECONDS not in envs["ingress"]
    assert envs["redriver"] == {ENV.FANOUT_QUEUE_URL: "q", ENV.SHARD_SIZE: "2"}
    # Not deployed by the stack: every variable.
    assert envs["review"] == {**resources, ENV.SHARD_SIZE: "2", ENV.FANOUT_VISIBILITY_SECONDS: "15"}
