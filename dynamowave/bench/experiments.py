"""Candidate fixes for bottlenecks in code outside the benchmark, tried in the bench server only.

``DYNAMOWAVE_BENCH_EXPERIMENTS=name[,name...]`` applies them to a run, so each proposed change
(docs/benchmarks.md, "Bottlenecks") is measured against the stock code on the same machine
before anyone edits the real module. None of them is on by default.

* ``recheck-1s``: dynamowave/local/moto_backend.py re-ran every waiting SQS long poll as a
  short receive every 0.1 s (``_RECHECK_SECONDS``). The runtime has since adopted 1.0 s, so
  this is now a no-op, kept so the recorded commands still run.
* ``one-poller``: one SQS poller instead of four. Every send wakes every waiting poller, and each
  runs a full moto ReceiveMessage; with one job per message, three of the four find nothing.
* ``direct-posts``: the Management API calls of the functions skip HTTP: a botocore
  ``before-send`` hook hands PostToConnection straight to the gateway's connection (on its
  event loop) and answers as the HTTP endpoint would (200, or 410 for an unknown connection).
* ``fanout-batch-1``: the fan-out's SQS event source hands one record per invocation (batch size
  1 instead of 10). With 10, the shard jobs of one message usually arrive in one batch, and the
  handler delivers a batch's records one after another: a 1,000-member room (7 shards) is
  posted shard by shard instead of in parallel invocations.
* ``no-fanout-mark``: the ingress's ``mark_fanned_out`` UpdateItem is skipped (what dropping the
  flag would save per message; a resend of an acked message would then always fan out again,
  which at-least-once delivery and seq de-duplication already allow).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Final
from urllib.parse import unquote

ENV_VAR: Final = "DYNAMOWAVE_BENCH_EXPERIMENTS"
KNOWN: Final = ("recheck-1s", "one-poller", "direct-posts", "fanout-batch-1", "no-fanout-mark")


def enabled() -> set[str]:
    chosen = {name.strip() for name in os.environ.get(ENV_VAR, "").split(",") if name.strip()}
    unknown = chosen - set(KNOWN)
    if unknown:
        raise ValueError(f"{ENV_VAR}: unknown experiment(s) {sorted(unknown)}; known: {KNOWN}")
    return chosen


def before_start(chosen: set[str]) -> None:
    """Experiments that patch modules before the runtime imports and starts them."""
    if "recheck-1s" in chosen:
        from dynamowave.local import moto_backend

        moto_backend._RECHECK_SECONDS = 1.0
    if "no-fanout-mark" in chosen:
        from functions.chat.store import ChatStore

        def skip(self: ChatStore, user_id: str, room: str, client_msg_id: str) -> None:
            return None

        ChatStore.mark_fanned_out = skip  # type: ignore[method-assign]


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> list[bytes]:
        return [self._data]


def configure(chosen: set[str], config: Any) -> Any:
    """Experiments that are runtime settings."""
    from dataclasses import replace

    if "fanout-batch-1" in chosen:
        config = replace(config, batch_size=1)
    if "one-poller" in chosen:
        config = replace(config, pollers=1)
    return config


def after_start(chosen: set[str], runtime: Any) -> None:
    """Experiments that need the running gateway."""
    if "direct-posts" not in chosen:
        return
    import botocore.session
    from botocore.awsrequest import AWSResponse

    gateway = runtime.gateway
    loop = asyncio.get_running_loop()
    gone_headers: Any = {"x-amzn-ErrorType": "GoneException", "content-type": "application/json"}
    no_headers: Any = {}

    def deliver(request: Any, **_: Any) -> Any:
        if request.method != "POST" or "/@connections/" not in request.url:
            return None
        connection = gateway.registry.get(unquote(request.url.rsplit("/", 1)[1]))
        if connection is None or connection.closing or connection.ws.closed:
            return AWSResponse(request.url, 410, gone_headers, _Body(b'{"message":null}'))
        body = request.body if isinstance(request.body, bytes) else bytes(request.body or b"")
        sent = asyncio.run_coroutine_threadsafe(connection.ws.send_str(body.decode("utf-8")), loop)
        sent.result(timeout=10)
        return AWSResponse(request.url, 200, no_headers, _Body(b""))

    original = botocore.session.Session.create_client

    def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = original(self, service_name, *args, **kwargs)
        if service_name == "apigatewaymanagementapi":
            client.meta.events.register("before-send", deliver)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
