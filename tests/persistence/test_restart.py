"""`dynamowave serve` keeps its tables and queues across restarts (docs/local-runtime.md, Persistence).

A real runtime with its state folder, real WebSocket clients. SIGTERM, then kill -9 (of the
runtime and of its moto child at once): after each restart the history, the room's seq and the
idempotency of clientMsgId are what they were, and an acked message is never lost.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from dynamowave.testing.frames import reply_to
from dynamowave.testing.waits import wait_for_frame
from tests.clients.local_runtime import LocalRuntime, start_local_runtime

ROOM = "kept"


def session(
    runtime: LocalRuntime, token: str, sends: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Join ROOM from seq 0, send each clientMsgId (text = the id); the `joined` and the acks."""
    with connect(runtime.socket_url(token), open_timeout=20) as ws:
        ws.send(json.dumps({"action": "join", "room": ROOM, "since": 0}))
        joined = wait_for_frame(ws, lambda f: f.get("type") == "joined", timeout=30)
        acks = []
        for client_msg_id in sends:
            ws.send(
                json.dumps(
                    {
                        "action": "sendmessage",
                        "room": ROOM,
                        "text": client_msg_id,
                        "clientMsgId": client_msg_id,
                    }
                )
            )
            acks.append(
                wait_for_frame(
                    ws,
                    reply_to(client_msg_id),
                    timeout=30,
                )
            )
    assert all(ack["type"] == "ack" for ack in acks), acks
    return joined, acks


def kill_hard(runtime: LocalRuntime) -> None:
    """kill -9 of the runtime and of the moto child it started: nothing runs a shutdown path."""
    children = Path(f"/proc/{runtime.process.pid}/task/{runtime.process.pid}/children")
    pids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
    for pid in [runtime.process.pid, *pids]:
        os.kill(pid, signal.SIGKILL)
    runtime.process.wait(timeout=20)


def test_history_seq_and_idempotency_survive_sigterm_and_kill_9(tmp_path: Path) -> None:
    runtime = start_local_runtime(tmp_path, ephemeral=False)
    token = runtime.token("keeper")  # tokens stay valid across restarts (same secret, same data)
    try:
        _, first = session(runtime, token, ["a1", "a2", "a3"])
        assert [a["seq"] for a in first] == [1, 2, 3]
    finally:
        runtime.stop()  # SIGTERM

    runtime = start_local_runtime(tmp_path, ephemeral=False)
    try:
        joined, acks = session(runtime, token, ["a2", "b1"])
        assert [m["text"] for m in joined["messages"]] == ["a1", "a2", "a3"] and joined["seq"] == 3
        assert (acks[0]["id"], acks[0]["seq"]) == (first[1]["id"], 2)  # a resend, not a new message
        assert acks[1]["seq"] == 4  # seqs go on, never reused
        _, late = session(runtime, token, ["c1", "c2"])
    except BaseException:
        runtime.stop()
        raise
    kill_hard(runtime)  # right after the acks: whatever was acked must be there

    runtime = start_local_runtime(tmp_path, ephemeral=False)
    try:
        joined, acks = session(runtime, token, ["c2", "d1"])
        assert [m["seq"] for m in joined["messages"]] == [1, 2, 3, 4, 5, 6]
        assert [m["text"] for m in joined["messages"]][-2:] == ["c1", "c2"]
        assert (acks[0]["id"], acks[0]["seq"]) == (late[1]["id"], 6)
        assert acks[1]["seq"] == 7
    finally:
        runtime.stop()


def test_ephemeral_keeps_nothing(tmp_path: Path) -> None:
    runtime = start_local_runtime(tmp_path)
    try:
        session(runtime, runtime.token("temp"), ["e1"])
    finally:
        runtime.stop()
    runtime = start_local_runtime(tmp_path)
    try:
        joined, acks = session(runtime, runtime.token("temp"), ["e1"])
        assert joined["seq"] == 0 and joined["messages"] == [] and acks[0]["seq"] == 1
    finally:
        runtime.stop()
    assert not (tmp_path / "state" / "data").exists()
