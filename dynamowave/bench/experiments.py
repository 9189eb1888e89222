"""Candidate fixes for bottlenecks in code outside the benchmark, tried in the bench server only.

``DYNAMOWAVE_BENCH_EXPERIMENTS=name[,name...]`` applies them to a run, so each proposed change
(docs/benchmarks.md, "Bottlenecks") is measured against the stock code on the same machine
before anyone edits the real module. None of them is on by default. Two earlier ones,
``recheck-1s`` and ``direct-posts``, were adopted by the runtime itself and are gone
(docs/benchmarks.md, bottlenecks 3 and 4).

* ``one-poller``: one SQS poller instead of four. Every send wakes every waiting poller, and each
  runs a full moto ReceiveMessage; with one job per message, three of the four find nothing.
* ``fanout-batch-1``: the fan-out's SQS event source hands one record per invocation (batch size
  1 instead of 10), so a message's shard jobs arrive in separate invocations. The handler has
  since delivered a batch's records side by side (docs/benchmarks.md, bottleneck 5); the
  experiment measures what separate invocations add to that.
* ``no-fanout-mark``: the ingress's ``mark_fanned_out`` UpdateItem is skipped (what dropping the
  flag would save per message). Not adopted: docs/protocol.md promises one fan-out per successful
  store, and without the mark a resend of an acked message would fan out again.
"""

from __future__ import annotations

import os
from typing import Any, Final

ENV_VAR: Final = "DYNAMOWAVE_BENCH_EXPERIMENTS"
KNOWN: Final = ("one-poller", "fanout-batch-1", "no-fanout-mark")


def enabled() -> set[str]:
    chosen = {name.strip() for name in os.environ.get(ENV_VAR, "").split(",") if name.strip()}
    unknown = chosen - set(KNOWN)
    if unknown:
        raise ValueError(f"{ENV_VAR}: unknown experiment(s) {sorted(unknown)}; known: {KNOWN}")
    return chosen


def before_start(chosen: set[str]) -> None:
    """Experiments that patch modules before the runtime imports and starts them."""
    if "no-fanout-mark" in chosen:
        from functions.chat.adapters.dynamodb.messages import MessageTable

        def skip(self: MessageTable, user_id: str, room: str, client_msg_id: str) -> None:
            return None

        MessageTable.mark_fanned_out = skip  # type: ignore[method-assign]


def configure(chosen: set[str], config: Any) -> Any:
    """Experiments that are runtime settings."""
    from dataclasses import replace

    if "fanout-batch-1" in chosen:
        config = replace(config, batch_size=1)
    if "one-poller" in chosen:
        config = replace(config, pollers=1)
    return config
