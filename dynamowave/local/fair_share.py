"""A flooding connection's AWS calls yield to everyone else's in the embedded moto.

On AWS one connection's invocations run in sandboxes of their own and its DynamoDB calls touch
its own partitions, so a flood costs the flooder. Here every invocation shares one process and
one moto process, each a single core's worth of Python (docs/local-runtime.md). The flooder's
*allowed* traffic is real work (its burst of 10 and 5 a second: each a transaction, a queue
job and a fan-out), in a short window twice a bystander's; run side by side with the
bystander's, it made every call of the bystander's wait for CPU (docs/operations.md,
"Measured: flooding", the phase timings).

So the runtime gives the embedded AWS to the connections that are not flooding first:

* the gateway marks a connection `backlogged` when a frame arrives while another of its frames
  is still being handled (it sends faster than the runtime serves it; `mark_backlogged`), and
  for a second after;
* each AWS request carries the tenant it is made for (`TENANT_HEADER`: the connection whose
  frame an ingress invocation is handling, with ``;backlogged`` if it is, else the function's
  name), set on the invocation's thread (`acting_for`) and added by a botocore ``before-send``
  handler (`install`);
* the embedded moto holds a backlogged connection's request back (`YieldingLock`) while
  another connection's calls are under way (one within `YIELD_GAP_SECONDS`), at most
  `MAX_YIELD_SECONDS` per request, so a flooder still progresses and alone runs at full speed.

What is stored and answered is unchanged (the limiter counts a frame by its arrival time);
only when a flooder's calls run is.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

TENANT_HEADER = "X-Dynamowave-Tenant"
# The environ key a WSGI server gives TENANT_HEADER.
TENANT_ENVIRON = "HTTP_" + TENANT_HEADER.upper().replace("-", "_")
BACKLOGGED_SUFFIX = ";backlogged"
CONNECTION_PREFIX = "connection:"
# A connection stays backlogged this long after it last overlapped its own frames: a flooder's
# frames are handled one at a time for a moment without its flood being over.
BACKLOG_MEMORY_SECONDS = 1.0
# A backlogged request waits while another connection made a call this recently: a send is a
# chain of calls with a few milliseconds of the function's own work between them.
YIELD_GAP_SECONDS = 0.05
# ...but never longer than this per request, so a flooder is slowed, never stopped.
MAX_YIELD_SECONDS = 0.25

_acting = threading.local()
# Connection id -> when it last sent a frame while another was being handled (monotonic s).
_backlogged: dict[str, float] = {}


def mark_backlogged(connection_id: str, clock: Callable[[], float] = time.monotonic) -> None:
    """The gateway: a frame of `connection_id` arrived while another was being handled."""
    if len(_backlogged) > 10_000:
        _backlogged.clear()
    _backlogged[connection_id] = clock()


def forget(connection_id: str) -> None:
    _backlogged.pop(connection_id, None)


def is_backlogged(connection_id: str, clock: Callable[[], float] = time.monotonic) -> bool:
    since = _backlogged.get(connection_id)
    return since is not None and clock() - since < BACKLOG_MEMORY_SECONDS


@contextlib.contextmanager
def acting_for(tenant: str) -> Iterator[None]:
    """AWS requests made on this thread inside the block are `tenant`'s."""
    previous = getattr(_acting, "tenant", None)
    _acting.tenant = tenant
    try:
        yield
    finally:
        _acting.tenant = previous


def tenant_of(function: str, event: Any) -> str:
    """An API Gateway event's connection, else the function (SQS batches, schedules)."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    connection = context.get("connectionId") if isinstance(context, dict) else None
    return CONNECTION_PREFIX + connection if isinstance(connection, str) else f"function:{function}"


def current_tenant() -> str | None:
    """This thread's tenant as the header gives it (backlogged or not, as of now)."""
    tenant: str | None = getattr(_acting, "tenant", None)
    connection = tenant.removeprefix(CONNECTION_PREFIX) if tenant else None
    if tenant is not None and connection != tenant and is_backlogged(str(connection)):
        return tenant + BACKLOGGED_SUFFIX
    return tenant


def tag_request(request: Any, **_: Any) -> None:
    """botocore ``before-send``: the tenant header on the request (after signing, so unsigned;
    only the embedded moto reads it)."""
    tenant = current_tenant()
    if tenant is not None:
        request.headers[TENANT_HEADER] = tenant


def install() -> Callable[[], None]:
    """Tag every AWS request of every botocore session created from now on; returns the undo."""
    from dynamowave.compat.botocore_hooks import add_builtin_handler

    return add_builtin_handler("before-send", tag_request)


class YieldingLock:
    """One request at a time (moto is not thread-safe); a backlogged connection's request
    first waits while other connections' calls are under way (module docstring)."""

    def __init__(
        self,
        gap: float = YIELD_GAP_SECONDS,
        max_yield: float = MAX_YIELD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._activity = threading.Condition()
        self._gap = gap
        self._max_yield = max_yield
        self._clock = clock
        self._last_call = float("-inf")  # when a connection that is not backlogged last called
        self._calls = 0  # of theirs under way (waiting for the lock or holding it)
        self.yields = 0  # requests that waited (the tests read it)

    def _yield(self) -> None:
        deadline = self._clock() + self._max_yield
        with self._activity:
            waited = False
            while True:
                now = self._clock()
                busy_until = now + self._gap if self._calls else self._last_call + self._gap
                if busy_until <= now or now >= deadline:
                    break
                waited = True
                self._activity.wait(min(busy_until, deadline) - now)
            self.yields += waited

    def _mark(self, delta: int) -> None:
        with self._activity:
            self._calls += delta
            self._last_call = self._clock()
            if delta < 0 and not self._calls:
                self._activity.notify_all()

    @contextlib.contextmanager
    def held(self, tenant: str) -> Iterator[None]:
        backlogged = tenant.endswith(BACKLOGGED_SUFFIX)
        counted = tenant.startswith(CONNECTION_PREFIX) and not backlogged
        if backlogged:
            self._yield()
        elif counted:
            self._mark(+1)
        try:
            with self._lock:
                yield
        finally:
            if counted:
                self._mark(-1)
