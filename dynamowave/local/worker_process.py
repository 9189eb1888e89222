"""One fan-out worker process: ``python -m dynamowave.local.worker_process FD`` (started by
`dynamowave.local.workers.WorkerPool`, never by hand).

It reads a `WorkerSpec`, installs what the runtime installs in its own process for the functions
(`--iam`'s enforcement on every botocore call, the Management API's answers without HTTP), imports
the handler (the cold start), says ``ready``, then runs each invocation it is sent on a thread of
its own, with the Lambda context it was given. Its whole environment is the function's (threads a
handler starts see it too). It exits when the runtime closes the pipe, or dies.
"""

from __future__ import annotations

import itertools
import os
import pickle
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, SimpleQueue
from typing import Any, Final
from urllib.parse import unquote

from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from dynamowave.local.workers import HEADER, WorkerSpec, denials_since, encode

ANSWER_TIMEOUT_SECONDS: Final = 5.0  # as InProcessPosts waits for the loop (botocore's read timeout)


class Channel:
    """The pipe to the runtime: one writer thread sends whatever has queued up as one batch."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._outbox: SimpleQueue[tuple[Any, ...]] = SimpleQueue()
        self._answers: dict[int, SimpleQueue[Any]] = {}
        self._lock = threading.Lock()
        self._post_ids = itertools.count(1)
        threading.Thread(target=self._write, name="worker-writer", daemon=True).start()

    def send(self, message: tuple[Any, ...]) -> None:
        self._outbox.put(message)

    def _write(self) -> None:
        while True:
            batch = [self._outbox.get()]
            with_more = True
            while with_more:
                try:
                    batch.append(self._outbox.get_nowait())
                except Empty:
                    with_more = False
            try:
                self._sock.sendall(encode(batch))
            except OSError:
                os._exit(0)  # the runtime is gone

    def read(self) -> list[tuple[Any, ...]] | None:
        header = self._read_exactly(HEADER.size)
        if header is None:
            return None
        (length,) = HEADER.unpack(header)
        payload = self._read_exactly(length)
        if payload is None:
            return None
        messages: list[tuple[Any, ...]] = pickle.loads(payload)  # noqa: S301 - the runtime's own
        return messages

    def _read_exactly(self, size: int) -> bytes | None:
        chunks, left = [], size
        while left:
            chunk = self._sock.recv(min(left, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def ask(self, connection_id: str, data: bytes) -> Any:
        """A post handed to the runtime; its Answer (or None if none came in time)."""
        post_id = next(self._post_ids)
        answered: SimpleQueue[Any] = SimpleQueue()
        with self._lock:
            self._answers[post_id] = answered
        self.send(("post", post_id, connection_id, data))
        try:
            return answered.get(timeout=ANSWER_TIMEOUT_SECONDS)
        except Empty:
            return None
        finally:
            with self._lock:
                self._answers.pop(post_id, None)

    def answer(self, post_id: int, answer: Any) -> None:
        with self._lock:
            waiting = self._answers.get(post_id)
        if waiting is not None:
            waiting.put(answer)


class WorkerPosts:
    """botocore ``before-send`` for PostToConnection to the runtime's endpoint (as
    `InProcessPosts` in the runtime's process): the signature and grant checked here, the answer
    the runtime's."""

    EVENT: Final = "before-send.apigatewaymanagementapi"

    def __init__(self, authority: Any, prefix: str, channel: Channel) -> None:
        self._authority = authority
        self._prefix = prefix
        self._channel = channel

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        from dynamowave.local.management_api import Answer, body_bytes

        if request.method != "POST" or not request.url.startswith(self._prefix):
            return None
        connection_id, data = unquote(request.url[len(self._prefix) :]), body_bytes(request.body)
        answer = self._authority.check(request.method, request.url, request.headers.items(), data)
        if answer is None:
            answer = self._channel.ask(connection_id, data) or Answer(
                504, "GatewayTimeoutException", "no answer from the gateway in time"
            )
        response: AWSResponse = answer.as_aws_response(request.url)
        return response


class CallRecorder:
    """Every botocore call this process makes, for the benchmark's meter in the runtime's process
    (``(endpoint prefix, service, operation, params, parsed)``; dynamowave/bench/meter.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[Any, ...]] = []

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build", self._remember)
        client.meta.events.register("after-call", self._record)

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["dynamowave_worker_params"] = params

    def _record(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        service = model.service_model
        call = (
            str(service.endpoint_prefix),
            str(service.service_name),
            str(model.name),
            context.get("dynamowave_worker_params") or {},
            parsed,
        )
        with self._lock:
            self._calls.append(call)

    def take(self) -> list[tuple[Any, ...]]:
        with self._lock:
            calls, self._calls = self._calls, []
        return calls


class Worker:
    def __init__(self, spec: WorkerSpec, channel: Channel) -> None:
        from dynamowave.compat.botocore_hooks import add_builtin_handler, on_every_new_client
        from dynamowave.local.management_api import PostAuthority
        from dynamowave.local.sigv4 import SigV4Verifier

        self._channel = channel
        self._policies: Any = None
        authority = PostAuthority(
            SigV4Verifier(spec.credentials, region=spec.region),
            region=spec.region,
            account_id=spec.account_id,
            api_id=spec.api_id,
            stage=spec.stage,
        )
        if spec.policies is not None:
            from dynamowave.local.iam import IamEnforcer, local_policies

            self._policies = authority.policies = local_policies(**spec.policies)
            IamEnforcer(self._policies, spec.principals).install()
        add_builtin_handler(WorkerPosts.EVENT, WorkerPosts(authority, spec.management_prefix, channel))
        self._recorder = CallRecorder() if spec.record_calls else None
        if self._recorder is not None:
            on_every_new_client(self._recorder.attach)
        self._denials_seen = 0
        self._denials_lock = threading.Lock()
        self._revoked: tuple[Any, ...] = ()
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, spec.function.concurrency), thread_name_prefix="lambda"
        )
        self._handler: Any = None
        self._import_error: BaseException | None = None
        try:
            from dynamowave.local.lambda_runner import resolve_handler

            self._handler = resolve_handler(spec.function.handler)
        except Exception as error:  # reported by every invocation, as the runner reports it
            self._import_error = error

    def invoke(self, invocation_id: int, event: Any, context: Any, revoked: tuple[Any, ...]) -> None:
        if self._policies is not None and revoked != self._revoked:
            self._revoked = revoked
            self._policies.revoke(revoked)
        self._executor.submit(self._run, invocation_id, event, context)

    def _run(self, invocation_id: int, event: Any, context: Any) -> None:
        result: Any = None
        error: BaseException | None = self._import_error
        if error is None:
            try:
                result = self._handler(event, context)
            except Exception as raised:
                error = raised
        with self._denials_lock:
            denials, self._denials_seen = denials_since(self._policies, self._denials_seen)
        calls = self._recorder.take() if self._recorder is not None else []
        try:
            pickle.dumps((result, error))
        except Exception as unpicklable:  # the runtime gets what it can log
            cause = error or unpicklable
            result, error = None, RuntimeError(f"{type(cause).__name__}: {cause}")
        self._channel.send(("result", invocation_id, result, error, denials, calls))


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    channel = Channel(sock)
    first = channel.read()
    if not first or first[0][0] != "spec":
        return 2
    worker = Worker(first[0][1], channel)
    channel.send(("ready", os.getpid()))
    while True:
        messages = channel.read()
        if messages is None:
            os._exit(0)  # the runtime closed the pipe (stop) or died: threads are not waited for
        for message in messages:
            if message[0] == "invoke":
                worker.invoke(*message[1:])
            elif message[0] == "answers":
                for post_id, answer in message[1]:
                    channel.answer(post_id, answer)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
