"""Runs handlers as Lambda does: by handler string, with a context, a timeout and a concurrency limit.

Handlers are synchronous boto3 code, so each invocation runs on a worker thread; the event loop
only awaits it. A function given a `WorkerPool` (`serve --fanout-workers N`: the fan-out) runs in
worker processes instead, with the same context, timeout, concurrency and log line
(dynamowave/local/workers.py). A timed-out invocation is reported as failed at its deadline (as Lambda reports
``Task timed out``); its thread cannot be killed and finishes in the background, which is the one
place the runtime cannot be exactly like Lambda (which freezes the sandbox).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import logging
import os
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dynamowave.local import environments, fair_share
from dynamowave.local.config import FunctionConfig

if TYPE_CHECKING:
    from dynamowave.local.workers import WorkerPool

log = logging.getLogger("dynamowave.lambda")

Handler = Callable[[Any, Any], Any]


class InvocationTimeout(Exception):
    def __init__(self, function: str, timeout: float) -> None:
        super().__init__(f"Task timed out after {timeout:.2f} seconds")
        self.function = function


class LambdaContext:
    """The attributes and method of the Python runtime's context object."""

    def __init__(self, config: FunctionConfig, *, region: str, account_id: str, request_id: str) -> None:
        self.function_name = config.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{config.name}"
        self.memory_limit_in_mb = config.memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{config.name}"
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[$LATEST]{secrets.token_hex(16)}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + config.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    function: str
    request_id: str
    result: Any
    error: BaseException | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.error is None


def resolve_handler(handler: str) -> Handler:
    """``functions.ingress.handler.handler`` -> the callable (module path, then attribute)."""
    module_name, _, attribute = handler.rpartition(".")
    if not module_name:
        raise ValueError(f"handler string {handler!r} must be module.attribute")
    module = importlib.import_module(module_name)
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"{handler!r}: {module_name} has no callable {attribute!r}")
    return function  # type: ignore[no-any-return]


def new_request_id() -> str:
    return str(uuid.uuid4())


class LambdaRunner:
    def __init__(
        self, functions: Mapping[str, FunctionConfig], *, region: str, account_id: str, max_workers: int = 0
    ) -> None:
        self._functions = dict(functions)
        self._region = region
        self._account_id = account_id
        self._handlers: dict[str, Handler] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        workers = max_workers or sum(f.concurrency for f in self._functions.values()) + 4
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda")
        self.invocations = 0
        # Each function's own environment (set by the runtime; empty: the process's for all).
        self.environments: dict[str, dict[str, str]] = {}
        # Functions whose invocations run in worker processes (set by the runtime).
        self.pools: dict[str, WorkerPool] = {}

    def config(self, name: str) -> FunctionConfig:
        return self._functions[name]

    def handler(self, name: str) -> Handler:
        """Imports the handler on first use (a cold start). Called on worker threads: Python's
        per-module import locks make concurrent first uses safe."""
        handler = self._handlers.get(name)
        if handler is None:
            handler = self._handlers[name] = resolve_handler(self._functions[name].handler)
        return handler

    def _call(self, name: str, event: Any, context: LambdaContext) -> Any:
        tenant = fair_share.tenant_of(name, event)
        with environments.running(self.environments.get(name)), fair_share.acting_for(tenant):
            return self.handler(name)(event, context)

    async def invoke(
        self, name: str, event: Any, *, trigger: str, request_id: str | None = None
    ) -> Invocation:
        config = self._functions[name]
        semaphore = self._semaphores.setdefault(name, asyncio.Semaphore(config.concurrency))
        request_id = request_id or new_request_id()
        # Reserved concurrency: a Lambda over its limit throttles; the runtime queues instead,
        # which is what the SQS event source and a retrying caller end up doing anyway.
        async with semaphore:
            loop = asyncio.get_running_loop()
            pool = self.pools.get(name)
            await self._initialized(name, loop)
            started = time.perf_counter()
            context = LambdaContext(
                config, region=self._region, account_id=self._account_id, request_id=request_id
            )
            result: Any = None
            error: BaseException | None = None
            try:
                future: asyncio.Future[Any] = (
                    asyncio.ensure_future(pool.invoke(event, context))
                    if pool is not None
                    else loop.run_in_executor(self._executor, self._call, name, event, context)
                )
                # A timed-out invocation runs on (thread or worker); its outcome is dropped.
                future.add_done_callback(lambda done: done.cancelled() or done.exception())
                result = await asyncio.wait_for(asyncio.shield(future), timeout=config.timeout_seconds)
            except TimeoutError:
                error = InvocationTimeout(name, config.timeout_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the handler's own failure: reported, never raised into the gateway
                error = exc
            duration_ms = (time.perf_counter() - started) * 1000
        self.invocations += 1
        outcome = "ok" if error is None else f"error {type(error).__name__}: {error}"
        log.info("%-10s %-22s %8.1f ms  %s  %s", name, trigger, duration_ms, outcome, request_id)
        return Invocation(name, request_id, result, error, duration_ms)

    async def _initialized(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        """The cold start (the handler's import, a worker process starting) before the clock
        runs: Lambda's init phase has a budget of its own, apart from the function's timeout, and
        on a loaded machine an import can take longer than a short timeout (the authorizer's 5 s)."""
        pool = self.pools.get(name)
        if pool is not None:
            await pool.wait_ready()
        elif name not in self._handlers:
            with contextlib.suppress(Exception):  # an import error is the invocation's to report
                await loop.run_in_executor(self._executor, self.handler, name)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def api_gateway_id(nbytes: int = 11) -> str:
    """An id shaped like API Gateway's connection and request ids, e.g. ``Ab3dEfGhIAMCJ-Q=``."""
    return base64.urlsafe_b64encode(os.urandom(nbytes)).decode("ascii")
