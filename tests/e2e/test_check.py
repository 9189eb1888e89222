"""`dynamowave check` against `dynamowave serve` (every row passes), and against a server that
gets the protocol wrong (the run fails, says which row, and exits 1)."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from dynamowave.check.runner import all_rows
from dynamowave.cli import main
from dynamowave.testing.serve import REPO
from tests.e2e.conftest import SECRET, Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The runtime with the real functions."""
    running = start_server(tmp_path_factory.mktemp("check"))
    yield running
    running.stop()


def test_every_row_passes_against_the_local_runtime(server: Server) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "dynamowave.cli", "check", server.url(), "--fanout", "6"],
        cwd=REPO,
        env={**os.environ, "DYNAMOWAVE_JWT_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    rows = all_rows()
    assert len(rows) >= 20
    for check_row in rows:
        (line,) = [line for line in lines if line.startswith(check_row.title)]
        assert line[len(check_row.title) :].split()[0] == "pass", line
    assert f"{len(rows)} passed, 0 failed, 0 skipped" in run.stdout


def test_with_one_token_rows_needing_other_users_are_skipped(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    token = server.token("solo")
    assert (
        main(["check", server.url(), "--token", token, "--only", "naming an identity,outside the token"]) == 0
    )
    out = capsys.readouterr().out
    assert "a frame naming an identity is forbidden" in out
    assert "skip" in out and "needs other users" in out
    assert "2 passed" not in out and "1 passed, 0 failed, 1 skipped" in out


@pytest.fixture
def wrong_server() -> Iterator[str]:
    """A WebSocket server that admits anyone and echoes every frame back: wrong on every row."""
    ready = threading.Event()
    address: list[str] = []
    stop: list[asyncio.Event] = []

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async def main_loop() -> None:
        stop.append(asyncio.Event())
        async with serve(echo, "127.0.0.1", 0) as running:
            port = next(iter(running.sockets)).getsockname()[1]
            address.append(f"ws://127.0.0.1:{port}/")
            ready.set()
            await stop[0].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main_loop(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield address[0]
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(10)


def test_a_deployment_that_breaks_the_protocol_fails_the_check(
    wrong_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["check", wrong_server, "--token", SOLO_TOKEN, "--only", "handshake,ping", "--timeout", "0.5"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "handshake without a token is refused with 401" in out
    (line,) = [line for line in out.splitlines() if line.startswith("handshake without a token")]
    assert "FAIL" in line and "expected HTTP 401, got 101" in line
    (ping,) = [line for line in out.splitlines() if line.startswith("ping replies pong")]
    assert "FAIL" in ping and "no pong" in ping


def test_operator_rows_sign_calls_to_the_operator_url(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{server.port}/admin"
    assert main(["check", server.url(), "--only", "operator API", "--operator-url", url]) == 0
    out = capsys.readouterr().out
    assert "2 passed, 0 failed, 0 skipped" in out


@pytest.fixture
def permissive_operator_api() -> Iterator[str]:
    """An HTTP server that answers every call 200, signed or not: wrong on the unsigned row."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"messages": [], "id": "x", "seq": 1}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/admin"
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


def test_an_operator_api_accepting_unsigned_calls_fails_the_check(
    server: Server, permissive_operator_api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", server.url(), "--only", "unsigned call", "--operator-url", permissive_operator_api])
    out = capsys.readouterr().out
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("operator API: an unsigned call")]
    assert "FAIL" in line and "refused with 403, got 200" in line


def test_bad_arguments_are_refused_with_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check", "http://example.com/"]) == 2
    assert "ws:// or wss://" in capsys.readouterr().err
    assert main(["check", "ws://127.0.0.1:1/", "--token", SOLO_TOKEN, "--only", "no such row"]) == 2
    assert "no row matches" in capsys.readouterr().err
    assert main(["check", "ws://127.0.0.1:1/", "--token", "not-a-jwt"]) == 2
    assert "sub claim" in capsys.readouterr().err
    assert main(["check", "ws://127.0.0.1:1/", "--token", SOLO_TOKEN, "--operator-url", "ftp://x"]) == 2
    assert "--operator-url" in capsys.readouterr().err


def _solo_token() -> str:
    from functions.chat.auth import mint_token

    return mint_token(SECRET, "solo")


SOLO_TOKEN = _solo_token()
