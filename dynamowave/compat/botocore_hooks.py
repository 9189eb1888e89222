"""Handlers on every botocore session and client a process creates (botocore 1.44.8 internals).

The functions build their own sessions and clients (functions/chat/deps.py), so the local
runtime and the benchmark cannot hand them an event system: they hook botocore itself.

* `add_builtin_handler`: ``botocore.handlers.BUILTIN_HANDLERS`` is the list every new session
  registers from; moto's own mock adds its ``before-send`` handler the same way. Used for the
  runtime's in-process posts (dynamowave/local/management_api.py) and `serve --iam`'s
  enforcement (dynamowave/local/iam.py).
* `on_every_new_client`: wraps ``Session.create_client``, because a client copies its session's
  events when it is created and the benchmark's meter must see each client's own events.

No upstream issue: botocore has no public registry of process-wide handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dynamowave.compat import require


def add_builtin_handler(event: str, handler: Callable[..., Any]) -> Callable[[], None]:
    """Register `handler` on every botocore session created from now on; returns the undo."""
    require("botocore")
    from botocore import handlers

    entry = (event, handler)
    handlers.BUILTIN_HANDLERS.append(entry)

    def remove() -> None:
        if entry in handlers.BUILTIN_HANDLERS:
            handlers.BUILTIN_HANDLERS.remove(entry)

    return remove


def on_every_new_client(callback: Callable[[Any], None]) -> Callable[[], None]:
    """Call `callback(client)` for every botocore client created from now on; returns the undo."""
    require("botocore")
    import botocore.session

    original = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        callback(client)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]

    def undo() -> None:
        botocore.session.Session.create_client = original  # type: ignore[method-assign]

    return undo
