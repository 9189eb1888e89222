"""Start `dynamowave serve --port 0` as a subprocess for the client tests (terminal and browser).

The real runtime with the real functions: the clients are tested against what users run.
Output goes to a file (a pipe nobody reads would fill up and block the server).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from websockets.sync.client import connect

from dynamowave.testing.frames import reply_to
from dynamowave.testing.serve import REPO, ServeProcess, child_environment, start_serve, stop_process
from dynamowave.testing.waits import wait_for_frame

SECRET = "client-tests-secret-0123456789abcdef0123456789"
# The clients' tests send bursts (60 messages of history): lift the per-connection send rate.
FAST_SENDS = ("--rate-limit", "1000", "--rate-burst", "1000", "--janitor-interval", "0")


@dataclass
class LocalRuntime(ServeProcess):
    def token(self, user: str, name: str | None = None, *, mod: str | None = None) -> str:
        """A dev token; `mod` ("*" or "a,b") makes the user a moderator of those rooms."""
        extra = {**({"name": name} if name else {}), **({"mod": mod} if mod else {})}
        query = urllib.parse.urlencode({"user": user, **extra})
        with urllib.request.urlopen(f"{self.http_url}dev/token?{query}", timeout=10) as response:
            body = json.loads(response.read())
        return str(body["token"])

    def socket_url(self, token: str) -> str:
        return f"{self.ws_url}/?{urllib.parse.urlencode({'token': token})}"

    def denials(self) -> list[dict[str, str]]:
        """Every call `serve --iam` refused so far (a grant missing from stacks/grants.py)."""
        with urllib.request.urlopen(f"{self.http_url}dev/iam", timeout=10) as response:
            return list(json.loads(response.read())["denials"])

    def stop(self, timeout: float = 20.0) -> int:
        """Stops the server; fails if `serve --iam` refused any call the functions made."""
        try:
            denials = self.denials() if self.process.poll() is None else []
        finally:
            code = stop_process(self.process, timeout)
        assert not denials, f"serve --iam refused calls the functions made: {denials}"
        return code


def start_local_runtime(workdir: Path, *args: str, ephemeral: bool = True) -> LocalRuntime:
    """`ephemeral=False` keeps the state in `workdir`/state across restarts (docs/local-runtime.md)."""
    state = ("--ephemeral",) if ephemeral else ()
    # --iam: each function's calls are checked against the stack's grants (dynamowave/local/iam.py).
    started = start_serve(
        ["--iam", *FAST_SENDS, *state, *args],
        env=child_environment(SECRET, DYNAMOWAVE_STATE_DIR=str(workdir / "state")),
        log_file=workdir / "serve.log",
    )
    return LocalRuntime(started.process, started.ws_url, started.http_url, started.log_file)


def runtime_available() -> str | None:
    """None if the runtime and the functions it runs are importable, else why not."""
    for module in ("dynamowave.commands.serve", "functions.ingress.handler", "functions.fanout.handler"):
        if not (REPO / (module.replace(".", "/") + ".py")).exists():
            return f"{module} does not exist yet"
    return None


def post_messages(runtime: LocalRuntime, user: str, room: str, texts: list[str]) -> list[int]:
    """Join `room` as `user`, send every text, return the acked seq of each text (same order).

    One send at a time: concurrent sends to one room contend for its seq counter and are
    slower in total. A send refused as rate_limited is sent again with the same clientMsgId,
    as a client should.
    """
    seqs: list[int] = []
    with connect(runtime.socket_url(runtime.token(user)), open_timeout=10) as ws:
        ws.send(json.dumps({"action": "join", "room": room}))
        wait_for_frame(ws, lambda f: f.get("type") == "joined")
        for index, text in enumerate(texts):
            client_msg_id = f"{user}-{index}-{time.monotonic_ns()}"
            frame = {"action": "sendmessage", "room": room, "text": text, "clientMsgId": client_msg_id}
            for _attempt in range(5):
                ws.send(json.dumps(frame))
                # The own copy (from the fan-out) may overtake the ack (the route response).
                reply = wait_for_frame(
                    ws,
                    reply_to(client_msg_id),
                    timeout=30,
                )
                if reply.get("code") != "rate_limited":
                    break
                time.sleep(0.2)
            assert reply["type"] == "ack", reply
            seqs.append(int(reply["seq"]))
    return seqs
