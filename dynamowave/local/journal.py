"""Durable state for the embedded moto: an append-only journal of what it applied, replayed at start.

`dynamowave serve` (not `--ephemeral`) keeps its tables and queues in the state folder
(``.dynamowave/data/moto-journal.jsonl``, docs/local-runtime.md, "Persistence"). The moto child
writes one JSON line per request it applied, inside the lock that serializes requests and before
the answer leaves, so the journal's order is the order moto applied them:

* DynamoDB writes and table changes, and SQS queue changes: the request itself (``req``),
  replayed verbatim. Only answers with status 200 are written: a refused condition changed
  nothing. Replaying them in order rebuilds the same items (every value, timestamps included,
  comes from the client, so a write means the same thing twice).
* SQS messages: their effect, not the request. ``send`` (queue name, message id, body, delay) and
  ``del`` (message id: ReceiveMessage answers map receipt handles to ids). Receives, visibility
  changes and receive counts are not kept: at start every message sent and not deleted is sent
  again (the delay it had left still applies), so an in-flight job is delivered again
  (at least once) and its receive count starts over.

The guarantee: every line is written to the OS (``write`` + ``flush``) before moto's answer is
sent, so a SIGTERM or a kill -9 of the runtime or of its moto child loses nothing that was
answered, e.g. an acked message. ``fsync`` decides what survives the machine crashing: ``always``
fsyncs each line before answering (nothing answered is lost), ``interval`` (the default) at most
``FSYNC_INTERVAL_SECONDS`` later (a power cut loses at most that last second).

At start the journal is replayed through the same recording middleware into a new file, which
then replaces the old one (atomic rename): the messages come back under new ids and the
deleted ones are gone, while the DynamoDB requests are kept as they were.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Final

FSYNC_INTERVAL_SECONDS: Final = 1.0
JOURNAL_FILE: Final = "moto-journal.jsonl"
# Requests that change state, replayed verbatim (X-Amz-Target actions).
DYNAMODB_WRITES: Final = frozenset(
    {
        "CreateTable",
        "DeleteTable",
        "UpdateTable",
        "UpdateTimeToLive",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
    }
)
SQS_QUEUE_CHANGES: Final = frozenset({"CreateQueue", "DeleteQueue", "SetQueueAttributes", "TagQueue"})
# Headers moto dispatches on (service, region, protocol).
REPLAYED_HEADERS: Final = ("Host", "X-Amz-Target", "Content-Type", "Authorization")
# Receipt handles remembered (a handle a crashed consumer never deletes is forgotten first).
MAX_RECEIPTS: Final = 200_000


class Fsync(StrEnum):
    ALWAYS = "always"
    INTERVAL = "interval"


class StateFolderBusy(RuntimeError):
    """Another `dynamowave serve` holds this state folder's journal."""


class Journal:
    """The append-only file: one JSON object per line, flushed before the caller answers."""

    def __init__(self, path: Path, fsync: Fsync = Fsync.INTERVAL) -> None:
        self.path = path
        self._fsync = fsync
        self._lock = threading.Lock()
        self._dirty = False
        self._closed = threading.Event()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        if fsync is Fsync.INTERVAL:
            threading.Thread(target=self._sync_every_interval, name="journal-fsync", daemon=True).start()

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if self._fsync is Fsync.ALWAYS:
                os.fsync(self._file.fileno())
            else:
                self._dirty = True

    def sync(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._dirty = False

    def close(self) -> None:
        self._closed.set()
        self.sync()
        with self._lock:
            self._file.close()

    def _sync_every_interval(self) -> None:
        while not self._closed.wait(FSYNC_INTERVAL_SECONDS):
            if self._dirty:
                with contextlib.suppress(ValueError, OSError):
                    self.sync()


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Every complete line; a torn last line (the machine died mid-write) is dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def lock_state_folder(folder: Path) -> IO[str]:
    """An exclusive lock on the folder for this process's life (two runtimes would interleave)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / "lock", "w", encoding="utf-8")  # noqa: SIM115 (held until exit)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StateFolderBusy(f"{folder} is in use by another dynamowave serve") from None
    return handle


class Recorder:
    """Turns each applied request into journal lines (called under moto's request lock)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._receipts: dict[str, str] = {}  # receipt handle -> message id

    def applied(self, headers: dict[str, str], body: bytes, status: str, answer: bytes) -> None:
        if not status.startswith("200"):
            return
        service, _, action = headers.get("X-Amz-Target", "").partition(".")
        if service.startswith("DynamoDB") and action in DYNAMODB_WRITES:
            self._request(headers, body)
        elif service == "AmazonSQS":
            self._sqs(action, headers, body, answer)

    def received(self, answer: bytes) -> None:
        for message in _json(answer).get("Messages") or []:
            self._receipts[message["ReceiptHandle"]] = message["MessageId"]
        while len(self._receipts) > MAX_RECEIPTS:
            del self._receipts[next(iter(self._receipts))]

    def _request(self, headers: dict[str, str], body: bytes) -> None:
        kept = {name: headers[name] for name in REPLAYED_HEADERS if name in headers}
        self.journal.append({"k": "req", "h": kept, "b": body.decode("utf-8")})

    def _sqs(self, action: str, headers: dict[str, str], body: bytes, answer: bytes) -> None:
        if action in SQS_QUEUE_CHANGES:
            self._request(headers, body)
            return
        request, reply = _json(body), _json(answer)
        auth = headers.get("Authorization", "")
        if action == "SendMessage":
            self._sent(request, reply.get("MessageId"), auth)
        elif action == "SendMessageBatch":
            ids = {entry["Id"]: entry["MessageId"] for entry in reply.get("Successful") or []}
            for entry in request.get("Entries") or []:
                self._sent({**entry, "QueueUrl": request.get("QueueUrl")}, ids.get(entry.get("Id")), auth)
        elif action == "DeleteMessage":
            self._deleted([request.get("ReceiptHandle")])
        elif action == "DeleteMessageBatch":
            done = {entry["Id"] for entry in reply.get("Successful") or []}
            self._deleted(
                [e.get("ReceiptHandle") for e in request.get("Entries") or [] if e.get("Id") in done]
            )
        elif action == "PurgeQueue":
            self.journal.append({"k": "purge", "q": _queue_name(request.get("QueueUrl"))})

    def _sent(self, request: dict[str, Any], message_id: Any, auth: str) -> None:
        if not isinstance(message_id, str):
            return
        entry = {
            "k": "send",
            "q": _queue_name(request.get("QueueUrl")),
            "id": message_id,
            "b": request.get("MessageBody", ""),
            "d": int(request.get("DelaySeconds") or 0),
            "t": time.time(),
            "a": auth,
        }
        if request.get("MessageAttributes"):
            entry["attrs"] = request["MessageAttributes"]
        self.journal.append(entry)

    def _deleted(self, handles: Iterable[Any]) -> None:
        for handle in handles:
            message_id = self._receipts.pop(handle, None) if isinstance(handle, str) else None
            if message_id is not None:
                self.journal.append({"k": "del", "id": message_id})


def _json(data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _queue_name(url: Any) -> str:
    return str(url or "").rstrip("/").rsplit("/", 1)[-1]


Send = Callable[[dict[str, str], bytes], None]


def replay(entries: list[dict[str, Any]], send: Send) -> dict[str, int]:
    """Apply `entries` through `send(headers, body)`: requests in order, then every message still
    live (sent, neither deleted nor purged) once more, with the delay it had left."""
    live: dict[str, dict[str, Any]] = {}
    counts = {"requests": 0, "messages": 0}
    for entry in entries:
        kind = entry.get("k")
        if kind == "req":
            send(dict(entry["h"]), str(entry["b"]).encode("utf-8"))
            counts["requests"] += 1
        elif kind == "send":
            live[str(entry["id"])] = entry
        elif kind == "del":
            live.pop(str(entry.get("id")), None)
        elif kind == "purge":
            live = {key: e for key, e in live.items() if e.get("q") != entry.get("q")}
    now = time.time()
    for entry in live.values():
        request: dict[str, Any] = {"QueueUrl": entry["q"], "MessageBody": entry["b"]}
        left = int(entry.get("d", 0) - (now - float(entry.get("t", now))))
        if left > 0:
            request["DelaySeconds"] = min(900, left)
        if entry.get("attrs"):
            request["MessageAttributes"] = entry["attrs"]
        headers = {
            "X-Amz-Target": "AmazonSQS.SendMessage",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": str(entry.get("a", "")),
        }
        send(headers, json.dumps(request).encode("utf-8"))
        counts["messages"] += 1
    return counts
