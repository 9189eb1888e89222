"""Fan-out invocations in worker processes (`dynamowave serve --fanout-workers N`).

Every invocation on the runtime's threads shares one process and one GIL with the gateway, so a
fan-out's posts (each one built, SigV4-signed and verified) cannot use a second core
(docs/benchmarks.md, "The gap to the broadcast ceiling"). A `WorkerPool` runs one function's
invocations in N child processes instead (`python -m dynamowave.local.worker_process`): the same
handler string, the function's own environment and credentials, the Lambda context the runner
built. What has state stays here, in the runtime's process, on its event loop: the sockets, the
Management API's answers (faults, 410, 413, the post count, `ManagementApiEmulator`), the event
source, `--iam`'s revocations and the denials `/dev/iam` lists.

A worker's PostToConnection calls do not cross HTTP: the worker checks the signature and the
grant itself (the same `PostAuthority` the endpoint uses, built from the same credentials and
policies), then hands the post over the pipe; the answer comes back the way `InProcessPosts`
gets it (accepted at once without faults, decided by `deliver` on the loop with them).

Wire: a socketpair per worker; each write is one length-prefixed pickle of a list of messages
(tuples whose first item names them), so a busy fan-out's posts cross in batches. Pickle is
safe here only because both ends are this runtime's own processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from dynamowave.local.config import FunctionConfig
from dynamowave.local.sigv4 import LocalCredentials

if TYPE_CHECKING:
    from dynamowave.local.iam import Call, Policies
    from dynamowave.local.management_api import Answer, ManagementApiEmulator

log = logging.getLogger("dynamowave.workers")

HEADER: Final = struct.Struct("!I")
STOP_TIMEOUT_SECONDS: Final = 5.0


def encode(messages: list[tuple[Any, ...]]) -> bytes:
    payload = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def default_size() -> int:
    """A pool sized to the cores (as many workers as the machine can run side by side)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs to run one function as the runtime would."""

    function: FunctionConfig
    environment: dict[str, str]  # the worker's whole os.environ: the process's plus the function's own
    management_prefix: str  # ``{endpoint}/@connections/``: posts there are answered by this runtime
    credentials: tuple[LocalCredentials, ...]  # who may sign @connections calls
    region: str
    account_id: str
    api_id: str
    stage: str
    # `serve --iam`: the arguments of `iam.local_policies` and access key -> function; None: off.
    policies: dict[str, Any] | None = None
    principals: dict[str, str] = field(default_factory=dict)
    record_calls: bool = False  # report every botocore call made (the benchmark's meter)


class WorkerExited(Exception):
    """The worker process died during the invocation (killed, crashed): the sandbox is gone."""


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    pending: dict[int, asyncio.Future[tuple[Any, BaseException | None]]] = field(default_factory=dict)
    alive: bool = True
    reader_task: asyncio.Task[None] | None = None

    def send(self, messages: list[tuple[Any, ...]]) -> None:
        if self.alive and not self.writer.is_closing():
            self.writer.write(encode(messages))


CallObserver = Callable[[list[tuple[Any, ...]]], None]


class WorkerPool:
    """N worker processes for one function; `invoke` runs an invocation in the least busy one.

    A worker that dies fails its invocations with `WorkerExited` (the event source then deletes
    nothing, as when a Lambda sandbox dies) and is replaced by a new process.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        size: int,
        management: ManagementApiEmulator,
        *,
        policies: Policies | None = None,
        observe_calls: CallObserver | None = None,
    ) -> None:
        self.spec = spec
        self.size = size
        self._management = management
        self._policies = policies
        self._observe_calls = observe_calls
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = 0  # worker processes started, replacements included
        self.invocations = 0

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.alive]

    def info(self) -> dict[str, Any]:
        """For ``GET /dev/info``: the live workers' pids, how many were started, invocations run."""
        return {"pids": self.pids, "started": self.started, "invocations": self.invocations}

    async def start(self) -> None:
        for index in range(self.size):
            await self._spawn(index)

    async def _spawn(self, index: int) -> None:
        parent, child = socket.socketpair()
        child_fd = child.fileno()
        env = dict(self.spec.environment)
        # The same imports as this process (a test's stub handlers, an editable install).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dynamowave.local.worker_process",
            str(child_fd),
            pass_fds=(child_fd,),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
        )
        child.close()
        reader, writer = await asyncio.open_connection(sock=parent, limit=64 * 1024 * 1024)
        worker = _Worker(index, process, writer)
        worker.send([("spec", self.spec)])
        worker.reader_task = asyncio.create_task(self._read(worker, reader), name=f"worker-{index}")
        self._workers.append(worker)
        self.started += 1

    async def wait_ready(self) -> None:
        """Until a worker has imported its handler (a cold start), or the pool stops."""
        while not self._stopping and not any(w.alive and w.ready.is_set() for w in self._workers):
            await asyncio.sleep(0.02)

    async def _choose(self) -> _Worker:
        """The ready worker with the fewest invocations in flight (waits for a cold start)."""
        while True:
            ready = [w for w in self._workers if w.alive and w.ready.is_set()]
            if ready:
                return min(ready, key=lambda w: len(w.pending))
            if self._stopping:
                raise WorkerExited("the worker pool is stopping")
            waits = [asyncio.ensure_future(w.ready.wait()) for w in self._workers if w.alive]
            if not waits:
                await asyncio.sleep(0.05)  # a replacement is being started
                continue
            _, still = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED, timeout=1.0)
            for wait in still:
                wait.cancel()

    async def invoke(self, event: Any, context: Any) -> Any:
        """The handler's result, or its exception raised here (as a thread's would be)."""
        worker = await self._choose()
        invocation_id = next(self._ids)
        future: asyncio.Future[tuple[Any, BaseException | None]] = asyncio.get_running_loop().create_future()
        worker.pending[invocation_id] = future
        revoked = self._policies.revoked if self._policies is not None else ()
        worker.send([("invoke", invocation_id, event, context, revoked)])
        self.invocations += 1
        result, error = await future
        if error is not None:
            raise error
        return result

    async def _read(self, worker: _Worker, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
                messages: list[tuple[Any, ...]] = pickle.loads(await reader.readexactly(length))  # noqa: S301 - our own child
                self._handle(worker, messages)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("worker %d: unreadable message; replacing it", worker.index)
        finally:
            await self._lost(worker)

    def _handle(self, worker: _Worker, messages: list[tuple[Any, ...]]) -> None:
        management = self._management
        answers: list[tuple[int, Answer]] = []
        accepted: list[tuple[str, bytes]] = []
        for message in messages:
            kind = message[0]
            if kind == "post":
                _, post_id, connection_id, data = message
                if management.answers_at_once():
                    answer = management.accept(connection_id, data)
                    answers.append((post_id, answer))
                    if answer.status == 200:
                        accepted.append((connection_id, data))
                else:  # faults or latency: the loop decides, side by side, as concurrent HTTP calls
                    self._track(self._deliver(worker, post_id, connection_id, data))
            elif kind == "result":
                _, invocation_id, result, error, denials, calls = message
                if denials and self._policies is not None:
                    self._policies.record(denials)
                if calls and self._observe_calls is not None:
                    self._observe_calls(calls)
                future = worker.pending.pop(invocation_id, None)
                if future is not None and not future.done():
                    future.set_result((result, error))
            elif kind == "ready":
                worker.ready.set()
        if answers:
            worker.send([("answers", answers)])
        if accepted:  # in order, one task: as InProcessPosts hands them to the loop
            self._track(self._send_in_turn(accepted))

    async def _send_in_turn(self, posts: Iterable[tuple[str, bytes]]) -> None:
        for connection_id, data in posts:
            await self._management.send_accepted(connection_id, data)

    async def _deliver(self, worker: _Worker, post_id: int, connection_id: str, data: bytes) -> None:
        from dynamowave.local.management_api import Answer

        try:
            answer = await self._management.deliver(connection_id, data)
        except Exception as error:  # never leave a posting thread waiting
            answer = Answer(500, "InternalServerErrorException", f"{type(error).__name__}: {error}")
        worker.send([("answers", [(post_id, answer)])])

    def _track(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lost(self, worker: _Worker) -> None:
        worker.alive = False
        worker.writer.close()
        code = await worker.process.wait()
        for future in worker.pending.values():
            if not future.done():
                future.set_result(
                    (None, WorkerExited(f"worker process {worker.process.pid} exited ({code})"))
                )
        worker.pending.clear()
        if worker in self._workers:
            self._workers.remove(worker)
        if not self._stopping:
            log.warning(
                "fan-out worker %d (pid %d) exited (%s); starting another",
                worker.index,
                worker.process.pid,
                code,
            )
            await self._spawn(worker.index)

    async def stop(self) -> None:
        """Closes every worker's pipe (it exits on EOF), then kills what is still running."""
        self._stopping = True
        workers = list(self._workers)
        for worker in workers:
            worker.writer.close()
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), timeout=STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
        for worker in workers:
            if worker.reader_task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker.reader_task
        for task in list(self._tasks):
            task.cancel()


def denials_since(policies: Policies | None, seen: int) -> tuple[list[Call], int]:
    """The denials recorded after the first ``seen`` (a worker reports each only once)."""
    if policies is None:
        return [], seen
    every = policies.denials()
    return every[seen:], len(every)
