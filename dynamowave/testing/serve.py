"""`dynamowave serve --port 0` as a child process: started, found ready, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCAL_CREDENTIALS_ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def child_environment(secret: str, **extra: str) -> dict[str, str]:
    """This process's environment, the local runtime's dummy credentials, the JWT secret."""
    return {**os.environ, **LOCAL_CREDENTIALS_ENV, "DYNAMOWAVE_JWT_SECRET": secret, **extra}


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM (the runtime shuts down cleanly), SIGKILL if it is still there after `timeout` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    ws_url: str  # ws://127.0.0.1:PORT (no trailing slash)
    http_url: str  # http://127.0.0.1:PORT/
    log_file: Path  # stderr (and stdout unless `stdout_file` was given)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self, timeout: float = 20.0) -> int:
        return stop_process(self.process, timeout)


def start_serve(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    log_file: Path,
    stdout_file: Path | None = None,
    ready_timeout: float = 60.0,
    need_http: bool = True,
) -> ServeProcess:
    """Start `dynamowave serve --port 0 ARGS` and wait for the URLs it prints.

    Output is appended to files, never to a pipe nobody reads (a full pipe would block the
    server); only what this start appends is searched, so a restart in the same folder finds
    its own URLs. With `need_http=False` the ws:// line alone means ready.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    urls_file = stdout_file or log_file
    offset = urls_file.stat().st_size if urls_file.exists() else 0
    command = [sys.executable, "-m", "dynamowave.cli", "serve", "--port", "0", *args]
    with open(log_file, "ab") as err:
        out = open(stdout_file, "ab") if stdout_file else err  # noqa: SIM115 - closed below
        try:
            # Our own interpreter and module, arguments from the caller: nothing untrusted.
            process = subprocess.Popen(command, cwd=REPO, env=dict(env), stdout=out, stderr=err)  # noqa: S603
        finally:
            if out is not err:
                out.close()
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        with open(urls_file, "rb") as printed:
            printed.seek(offset)
            lines = printed.read().decode("utf-8", errors="replace").splitlines()
        ws = next((line.strip() for line in lines if line.startswith("ws://")), None)
        http = next((line.strip() for line in lines if line.startswith("http://")), None)
        if ws and (http or not need_http):
            http_url = http or ws.replace("ws://", "http://", 1)
            return ServeProcess(
                process, ws.rstrip("/"), http_url if http_url.endswith("/") else http_url + "/", log_file
            )
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop_process(process, timeout=5)
    tail = log_file.read_text(encoding="utf-8", errors="replace")[-4000:]
    raise RuntimeError(f"dynamowave serve did not start (log {log_file}):\n{tail}")
