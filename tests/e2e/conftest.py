"""`dynamowave serve --port 0` as a subprocess, and helpers to talk to it.

Each fixture starts one server (module scope) and stops it with SIGTERM. Output goes to files,
never to pipes nobody reads (a full pipe would block the server).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from dynamowave.testing.serve import REPO, child_environment, start_serve, stop_process

E2E_DIR = Path(__file__).resolve().parent
SECRET = "e2e-test-secret-0123456789abcdef0123456789"
STUBS = [
    "--handler",
    "authorizer=stub_functions.authorizer",
    "--handler",
    "ingress=stub_functions.ingress",
    "--handler",
    "fanout=stub_functions.fanout",
    "--handler",
    "janitor=stub_functions.janitor",
]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    ws_url: str
    http_url: str
    workdir: Path
    events_file: Path
    log_file: Path
    _seen: int = field(default=0)
    # --iam: stop() fails if any function call was refused (a grant missing from stacks/grants.py);
    # the IAM suite, which revokes grants on purpose, turns it off.
    iam: bool = True
    expect_no_denials: bool = True

    @property
    def port(self) -> int:
        return int(self.ws_url.rsplit(":", 1)[1])

    @property
    def management_endpoint(self) -> str:
        return f"{self.http_url}local"

    def url(self, token: str | None = None, **query: str) -> str:
        params = dict(query)
        if token is not None:
            params["token"] = token
        from urllib.parse import urlencode

        return f"{self.ws_url}/" + (f"?{urlencode(params)}" if params else "")

    def token(
        self,
        user: str,
        *,
        name: str | None = None,
        rooms: list[str] | None = None,
        mod: str | list[str] | None = None,
    ) -> str:
        from functions.chat.auth import mint_token

        return mint_token(SECRET, user, name=name, rooms=rooms, mod=mod)

    def http(self, method: str, path: str, body: Any = None, *, signed: bool = False) -> tuple[int, Any]:
        """One HTTP call; `signed` signs it (SigV4, execute-api) with the local credentials."""
        data = None if body is None else json.dumps(body).encode()
        url = self.http_url.rstrip("/") + path
        request = urllib.request.Request(url, data=data, method=method)
        if signed:
            from dynamowave.local.sigv4 import LOCAL_CREDENTIALS, sign

            for name, value in sign(LOCAL_CREDENTIALS, method, url, data or b"", region="us-east-1").items():
                request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode()

    def info(self) -> dict[str, Any]:
        status, body = self.http("GET", "/dev/info")
        assert status == 200
        return cast("dict[str, Any]", body)

    def events(self, function: str | None = None) -> list[dict[str, Any]]:
        """Every invocation the stub handlers recorded so far."""
        if not self.events_file.exists():
            return []
        lines = self.events_file.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        return [r for r in records if function is None or r["function"] == function]

    def boto3_client(self, service: str) -> Any:
        import boto3

        session: Any = boto3.session.Session()
        if service == "apigatewaymanagementapi":
            from botocore.config import Config

            return session.client(
                service,
                endpoint_url=self.management_endpoint,
                region_name="us-east-1",
                config=Config(retries={"total_max_attempts": 1}),
            )
        return session.client(service, endpoint_url=self.info()["aws_endpoint"], region_name="us-east-1")

    def denials(self) -> list[dict[str, str]]:
        """Every call `serve --iam` refused so far (GET /dev/iam)."""
        status, body = self.http("GET", "/dev/iam")
        assert status == 200, body
        return list(body["denials"])

    def stop(self) -> int:
        try:
            denials = self.denials() if self.iam and self.process.poll() is None else []
        finally:
            stop_process(self.process)
        if denials and self.expect_no_denials:
            raise AssertionError(f"serve --iam refused calls the functions made: {denials}")
        return self.process.returncode


def start_server(workdir: Path, *args: str, env: dict[str, str] | None = None, iam: bool = True) -> Server:
    serve_env = child_environment(
        SECRET,
        DYNAMOWAVE_STATE_DIR=str(workdir / "state"),
        STUB_EVENTS_FILE=str(workdir / "events.jsonl"),
        PYTHONPATH=os.pathsep.join([str(E2E_DIR), str(REPO)]),
    )
    serve_env.update(env or {})
    # --iam: every function's AWS calls are checked against the stack's grants, so the suite
    # proves by running the real code that least privilege is enough (dynamowave/local/iam.py).
    flags = ["--iam"] if iam else []
    # A start takes a few seconds; far longer on a loaded machine (tests run side by side).
    started = start_serve(
        ["--quiet", "--ephemeral", *flags, *args],
        env=serve_env,
        log_file=workdir / "stderr.txt",
        stdout_file=workdir / "stdout.txt",
        ready_timeout=90,
    )
    return Server(
        started.process,
        started.ws_url,
        started.http_url,
        workdir,
        workdir / "events.jsonl",
        started.log_file,
        iam=iam,
    )


@pytest.fixture(scope="module")
def stub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The runtime with stub handlers and AWS's default limits, short SQS timings."""
    server = start_server(
        tmp_path_factory.mktemp("stub"),
        *STUBS,
        "--visibility-timeout",
        "1",
        "--max-receive-count",
        "3",
        "--janitor-interval",
        "1",
        "--no-auto-redrive",  # the stubs' dead letters are not fan-out jobs: they stay put
    )
    yield server
    server.stop()
