"""Candidate fixes for bottlenecks in code outside the benchmark, tried in the bench server only.

``DYNAMOWAVE_BENCH_EXPERIMENTS=name[,name...]`` applies them to a run, so each proposed change
(docs/benchmarks.md, "Bottlenecks") is measured against the stock code on the same machine
before anyone edits the real module. None of them is on by default.

* ``recheck-1s``: dynamowave/local/moto_backend.py re-ran every waiting SQS long poll as a
  short receive every 0.1 s (``_RECHECK_SECONDS``). The runtime has since adopted 1.0 s, so
  this is now a no-op, kept so the recorded commands still run.
* ``one-poller``: one SQS poller instead of four. Every send wakes every waiting poller, and each
  runs a full moto ReceiveMessage; with one job per message, three of the four find nothing.
* ``direct-posts``: the functions' PostToConnection calls skipped the loopback HTTP hop. The
  runtime has since adopted it (dynamowave.local.management_api.InProcessPosts), so this is now
  a no-op, kept so the recorded commands still run.
* ``fanout-batch-1``: the fan-out's SQS event source hands one record per invocation (batch size
  1 instead of 10). With 10, the shard jobs of one message usually arrive in one batch, and the
  handler delivers a batch's records one after another: a 1,000-member room (7 shards) is
  posted shard by shard instead of in parallel invocations.
* ``no-fanout-mark``: the ingress's ``mark_fanned_out`` UpdateItem is skipped (what dropping the
  flag would save per message). Not adopted: PROTOCOL.md promises one fan-out per successful
  store, and without the mark a resend of an acked message would fan out again.
"""

from __future__ import annotations

import os
from typing import Any, Final

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
    if "no-fanout-mark" in chosen:
        from functions.chat.store import ChatStore

        def skip(self: ChatStore, user_id: str, room: str, client_msg_id: str) -> None:
            return None

        ChatStore.mark_fanned_out = skip  # type: ignore[method-assign]


def configure(chosen: set[str], config: Any) -> Any:
    """Experiments that are runtime settings."""
    from dataclasses import replace

    if "fanout-batch-1" in chosen:
        config = replace(config, batch_size=1)
    if "one-poller" in chosen:
        config = replace(config, pollers=1)
    return config
