"""The embedded AWS: moto's server on a loopback port, in a child process of the runtime.

Its own process because on AWS the services do not share the functions' CPU: in the runtime's
process every DynamoDB and SQS request would hold the one GIL that the gateway and every
invocation also need (moto was about a fifth of the runtime's CPU under fan-out). The child
exits when the runtime closes its stdin, or dies.

moto's backends are not thread-safe: two concurrent conditional writes can both pass their
condition (a duplicate ``seq``), two concurrent receives can take the same SQS message. DynamoDB
and SQS are linearizable per item / per receive, so the embedded server runs one request at a
time (`SerializedMoto`). Long-poll receives would hold that lock for seconds, so they are
rewritten into short receives under the lock with waits outside it, woken at once by any send.
Every request is CPU-bound Python under the GIL anyway, so serializing them costs little.

moto answers anyone and, by default, sends CORS headers allowing every origin: any page in the
developer's browser could read and write every table and queue once it found the port (SQS's
query protocol even takes a form POST, a "simple" request with no preflight). So the child
turns moto's CORS off and `SerializedMoto` refuses, before moto sees it, every request that a
browser sent (an ``Origin`` or ``Sec-Fetch-*`` header: botocore sends neither) or that names
a host other than loopback (DNS rebinding): 403, nothing applied.

Unless the runtime is ``--ephemeral``, the child also journals every change it applies (under
the same lock, before answering) and replays the journal at start: dynamowave/local/journal.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from dynamowave.local.config import REGION
from dynamowave.local.fair_share import TENANT_ENVIRON, YieldingLock
from dynamowave.local.journal import (
    Fsync,
    Journal,
    Recorder,
    StateFolderBusy,
    lock_state_folder,
    read_entries,
    replay,
)
from dynamowave.local.sigv4 import LOCAL_CREDENTIALS

# The credentials every local client signs with; the runtime's signed APIs check them (sigv4).
DUMMY_CREDENTIALS = LOCAL_CREDENTIALS.environment()

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# SQS actions after which a waiting receive may find something (JSON protocol targets).
_SQS_WAKERS = {"SendMessage", "SendMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch"}
# How often a waiting receive looks again without a wake-up: only messages whose visibility
# timeout expired need it (they do not announce themselves), and those waited seconds already.
_RECHECK_SECONDS = 1.0


def queue_name(request: Any) -> str:
    """The queue an SQS (JSON protocol) request names, by the last part of its QueueUrl."""
    url = request.get("QueueUrl") if isinstance(request, dict) else None
    return url.rstrip("/").rpartition("/")[2] if isinstance(url, str) else ""


def made_visible(action: str, request: Any) -> tuple[str, int]:
    """(queue name, how many messages the SQS request made receivable): a send, one per
    entry; a visibility change, one per entry set to 0 (a lease extension makes none)."""
    queue = queue_name(request)
    if not queue:
        return "", 0
    entries = request.get("Entries") if action.endswith("Batch") else [request]
    if not isinstance(entries, list):
        return queue, 0
    if action.startswith("Send"):
        return queue, len(entries)
    return queue, sum(1 for e in entries if isinstance(e, dict) and e.get("VisibilityTimeout") == 0)


class QueueWaits:
    """Receives waiting for messages, by queue. A request that makes n messages receivable
    wakes at most n of its own queue's waiters: waking every waiter of every queue made each
    send cost one empty receive under the lock per waiting poller (the fan-out's four and the
    redriver's, about 5 a message; docs/local-runtime.md)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, threading.Condition] = {}
        self._generations: dict[str, int] = {}

    def generation(self, queue: str) -> int:
        with self._lock:
            return self._generations.get(queue, 0)

    def wake(self, queue: str, messages: int) -> None:
        if messages <= 0:
            return
        with self._lock:
            self._generations[queue] = self._generations.get(queue, 0) + 1
            waiting = self._queues.get(queue)
            if waiting is not None:
                waiting.notify(messages)

    def wait(self, queue: str, generation: int, timeout: float) -> None:
        """Until a wake-up for `queue` or `timeout`; at once if one came since `generation`."""
        with self._lock:
            if self._generations.get(queue, 0) != generation:
                return
            waiting = self._queues.setdefault(queue, threading.Condition(self._lock))
            waiting.wait(timeout)


class SerializedMoto:
    """WSGI middleware: one moto request at a time; long polls wait outside the lock."""

    def __init__(self, app: WsgiApp, recorder: Recorder | None = None) -> None:
        self._app = app
        self._recorder = recorder
        # One request at a time; a flooding connection's wait for others' (fair_share.py).
        self._lock = YieldingLock()
        self.waits = QueueWaits()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        refusal = browser_request(environ)
        if refusal is not None:
            start_response("403 Forbidden", [("Content-Type", "application/json")])
            return [json.dumps({"__type": "AccessDeniedException", "message": refusal}).encode()]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        action = target.rpartition(".")[2] if target.startswith("AmazonSQS.") else ""
        if action == "ReceiveMessage":
            return self._receive(environ, start_response)
        recorded = self._recorder is not None and environ.get("REQUEST_METHOD") == "POST"
        if not recorded and action not in _SQS_WAKERS:
            with self._lock.held(environ.get(TENANT_ENVIRON, "")):
                return list(self._app(environ, start_response))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ = {**environ, "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))}
        captured: dict[str, Any] = {}
        with self._lock.held(environ.get(TENANT_ENVIRON, "")):
            answer = b"".join(self._app(environ, _capturing(captured)))
            if recorded:
                # Applied and journaled under the lock, before the answer leaves.
                assert self._recorder is not None
                self._recorder.applied(_headers(environ), raw, captured["status"], answer)
        start_response(captured["status"], captured["headers"])
        if action in _SQS_WAKERS and captured["status"].startswith("200"):  # moto parsed it
            self.waits.wake(*made_visible(action, json.loads(raw)))
        return [answer]

    def _receive(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b"{}"
        request = json.loads(raw or b"{}")
        wait = float(request.get("WaitTimeSeconds") or 0)
        request["WaitTimeSeconds"] = 0
        queue = queue_name(request)
        payload = json.dumps(request).encode()
        deadline = time.monotonic() + wait
        while True:
            generation = self.waits.generation(queue)
            captured: dict[str, Any] = {}
            attempt = dict(environ)
            attempt["wsgi.input"] = io.BytesIO(payload)
            attempt["CONTENT_LENGTH"] = str(len(payload))
            with self._lock.held(environ.get(TENANT_ENVIRON, "")):
                body = b"".join(self._app(attempt, _capturing(captured)))
                if self._recorder is not None and captured["status"].startswith("200"):
                    self._recorder.received(body)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not captured["status"].startswith("200") or _has_messages(body):
                start_response(captured["status"], captured["headers"])
                return [body]
            self.waits.wait(queue, generation, min(remaining, _RECHECK_SECONDS))


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def browser_request(environ: dict[str, Any]) -> str | None:
    """Why a request to the embedded AWS is refused (it came from a browser, or names a host
    other than loopback), or None for an SDK's request."""
    if "HTTP_ORIGIN" in environ or any(key.startswith("HTTP_SEC_FETCH_") for key in environ):
        return "the embedded AWS endpoint does not answer browsers"
    host = str(environ.get("HTTP_HOST", ""))
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if hostname.lower() not in LOOPBACK_HOSTS:
        return f"host {host!r} is not served here"
    return None


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    names = {
        "Host": "HTTP_HOST",
        "X-Amz-Target": "HTTP_X_AMZ_TARGET",
        "Content-Type": "CONTENT_TYPE",
        "Authorization": "HTTP_AUTHORIZATION",
    }
    return {name: str(environ[key]) for name, key in names.items() if environ.get(key)}


def _capturing(captured: dict[str, Any]) -> StartResponse:
    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    return start_response


def _has_messages(body: bytes) -> bool:
    try:
        return bool(json.loads(body or b"{}").get("Messages"))
    except ValueError:
        return True  # not JSON: hand it back as it is


class MotoBackend:
    """Starts and stops the child process (`serve`); `start` returns its endpoint."""

    STARTUP_TIMEOUT_SECONDS = 60.0

    def __init__(self, journal: Path | None = None, fsync: str = "interval") -> None:
        """`journal`: the file that keeps the state across restarts (None: ephemeral)."""
        self._process: subprocess.Popen[str] | None = None
        self._journal = journal
        self._fsync = fsync
        self.endpoint = ""
        self.replayed: dict[str, int] = {}

    def start(self) -> str:
        persistence = (
            [] if self._journal is None else ["--journal", str(self._journal), "--fsync", self._fsync]
        )
        process = subprocess.Popen(  # noqa: S603 (our own module, our own arguments)
            [sys.executable, "-m", "dynamowave.local.moto_backend", *persistence],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        # A long journal takes a while to replay (about a millisecond per change).
        ready = _read_line(process.stdout, self.STARTUP_TIMEOUT_SECONDS * (10 if self._journal else 1))
        try:
            announced = json.loads(ready)
            if "error" in announced:
                self.stop()
                raise OSError(str(announced["error"]))
            self.endpoint = str(announced["endpoint"])
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise RuntimeError(
                f"the moto server did not start (exit code {process.poll()}): {ready!r}"
            ) from None
        self.replayed = dict(announced.get("replayed") or {})
        return self.endpoint

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the child's cue to exit
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_line(stream: IO[str], timeout: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


def serve(journal_path: Path | None = None, fsync: str = "interval") -> None:
    """The child: moto's server app behind `SerializedMoto` on 127.0.0.1 and a free port; with
    `journal_path`, the journal replayed first (into a fresh file that replaces it) and kept."""
    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"  # before moto.settings is read
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from dynamowave.compat.moto_patches import cache_server_dispatch, serialize_dynamodb

    # DynamoDB as real DynamoDB behaves and costs: atomic transactions that touch only their
    # items, queries that read only their partition.
    serialize_dynamodb()
    cache_server_dispatch()
    # werkzeug logs every request at INFO: one line per DynamoDB call drowns the invocation log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto_app = DomainDispatcherApplication(create_backend_app)
    journal: Journal | None = None
    replayed: dict[str, int] = {}
    if journal_path is None:
        app = SerializedMoto(moto_app)
    else:
        try:
            _STATE_LOCKS.append(lock_state_folder(journal_path.parent))
        except StateFolderBusy as busy:
            print(json.dumps({"error": str(busy)}), flush=True)
            os._exit(3)
        fresh = journal_path.with_name(journal_path.name + ".new")
        fresh.unlink(missing_ok=True)
        journal = Journal(fresh, Fsync(fsync))
        app = SerializedMoto(moto_app, Recorder(journal))
        replayed = replay(read_entries(journal_path), lambda headers, body: _apply(app, headers, body))
        journal.sync()
        os.replace(fresh, journal_path)  # the replayed state is the journal from now on
        journal.path = journal_path
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
    threading.Thread(target=_exit_with_parent, args=(journal,), name="parent-watch", daemon=True).start()
    print(json.dumps({"endpoint": f"http://127.0.0.1:{port}", "replayed": replayed}), flush=True)
    os.dup2(2, 1)  # nobody reads stdout after that line: a full pipe would block the server
    server.serve_forever()


def _exit_with_parent(journal: Journal | None) -> None:
    """stdin reaches EOF when the runtime closes it or dies (even by SIGKILL): no orphan server."""
    sys.stdin.read()
    if journal is not None:
        journal.sync()
    os._exit(0)


_STATE_LOCKS: list[Any] = []  # held for the child's life


def _apply(app: SerializedMoto, headers: dict[str, str], body: bytes) -> None:
    """One journaled request, as if it came over HTTP (replay at start)."""
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path="/", method="POST", headers=list(headers.items()), data=body).get_environ()
    answer = b"".join(app(environ, _capturing({})))
    del answer


def point_boto3_at(endpoint: str, region: str = REGION) -> None:
    """Every boto3 client created from now on talks to ``endpoint`` with dummy credentials.

    Must run before any function code creates a client (they are cached per process).
    """
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_REGION"] = region
    for key, value in DUMMY_CREDENTIALS.items():
        os.environ[key] = value
    # A developer's ~/.aws profile must not leak in (it could name a real account or role).
    os.environ.pop("AWS_PROFILE", None)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the embedded moto server (started by dynamowave serve)")
    parser.add_argument("--journal", type=Path)
    parser.add_argument("--fsync", choices=[f.value for f in Fsync], default=Fsync.INTERVAL.value)
    options = parser.parse_args()
    serve(options.journal, options.fsync)
