"""`dynamowave chat` as a user runs it: a subprocess with piped stdin/stdout, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from websockets.sync.client import connect

from dynamowave.testing.serve import REPO
from dynamowave.testing.waits import wait_for_frame
from tests.clients.local_runtime import LocalRuntime
from tests.ports import closed_port

# `python -m dynamowave.cli` would load cli.py twice (as __main__ and as dynamowave.cli);
# calling main() from the imported module is exactly what the `dynamowave` script does.
DYNAMOWAVE = [sys.executable, "-c", "from dynamowave.cli import main; raise SystemExit(main())"]


def chat(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DYNAMOWAVE, "chat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def test_piped_session_sends_lines_and_exits_zero(runtime: LocalRuntime) -> None:
    room = f"pipe-{uuid.uuid4().hex[:8]}"
    # No --token with a loopback URL: the client fetches one from /dev/token for --user.
    result = chat(
        "--url", runtime.ws_url, "--room", room, "--user", "dana", stdin="hello from a pipe\n/quit\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"* joined #{room} (latest seq 0)"

    with connect(runtime.socket_url(runtime.token("checker"))) as ws:
        ws.send(json.dumps({"action": "join", "room": room, "since": 0}))
        joined = wait_for_frame(ws, lambda f: f.get("type") == "joined")
    assert [(m["user"], m["text"]) for m in joined["messages"]] == [("dana", "hello from a pipe")]


def test_history_is_printed_on_join(runtime: LocalRuntime) -> None:
    room = f"replay-{uuid.uuid4().hex[:8]}"
    token = runtime.token("erin")
    first = chat("--url", runtime.ws_url, "--token", token, "--room", room, stdin="first line\n")
    assert first.returncode == 0, first.stderr
    second = chat("--url", runtime.ws_url + "/", "--token", token, "--room", room, "--since", "0", stdin="")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [f"* joined #{room} (latest seq 1)", "[1] erin: first line"]


def test_refused_token_exits_non_zero_with_the_status(runtime: LocalRuntime) -> None:
    result = chat("--url", runtime.ws_url, "--token", "not.a.jwt", "--room", "general")
    assert result.returncode == 2
    assert "handshake refused" in result.stderr and "HTTP 403" in result.stderr


def test_missing_token_exits_non_zero_with_401(runtime: LocalRuntime) -> None:
    result = chat("--url", runtime.ws_url, "--token", "", "--room", "general")
    assert result.returncode == 2
    assert "HTTP 401: no token was presented" in result.stderr


def test_bad_url_exits_non_zero() -> None:
    result = chat("--url", "ftp://example.com/", "--token", "t")
    assert result.returncode == 2
    assert "not a WebSocket URL" in result.stderr


def test_unreachable_endpoint_exits_non_zero() -> None:
    port = closed_port()
    result = chat("--url", f"ws://127.0.0.1:{port}/", "--token", "t", timeout=30)
    assert result.returncode == 2
    assert f"cannot connect to ws://127.0.0.1:{port}/" in result.stderr


def test_remote_endpoint_needs_a_token() -> None:
    result = chat("--url", "wss://abc123.execute-api.us-east-1.amazonaws.com/prod")
    assert result.returncode == 2
    assert "--token is required" in result.stderr
