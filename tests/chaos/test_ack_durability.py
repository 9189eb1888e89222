"""An `ack` promises delivery: once a sender holds one, the fan-out must happen without its help.

docs/protocol.md: an acked message is delivered at least once to every member, or ends in the DLQ,
"never silently". So a failure between storing the message and enqueueing its fan-out (the
shard Query, SendMessageBatch) must either come before the ack (the sender gets an error and
resends the same clientMsgId) or be recovered by the system itself. Deterministic versions of
what the chaos run hits at random.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from functions.chat import deps
from tests.chaos.botofaults import BotoFaults
from tests.chaos.pipeline import Pipeline
from tests.fuzz.support import ENDPOINT, ingress_harness

ROOM = "acks"


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    with ingress_harness(RATE_LIMIT_PER_SECOND="1000", RATE_LIMIT_BURST="1000") as harness:
        faults = BotoFaults(rates={}, enabled=True)
        for client in (deps.dynamodb_client(), deps.sqs_client(), deps.management_api(ENDPOINT)._client):
            faults.install(client)
        yield Pipeline(harness, faults)


@pytest.mark.parametrize(
    "failing_call",
    [
        "sqs.SendMessageBatch",  # the enqueue itself
        "dynamodb.Query",  # the room's shard directory, read to build the jobs
    ],
)
def test_an_acked_message_is_fanned_out_without_a_resend(pipeline: Pipeline, failing_call: str) -> None:
    sender, receiver = pipeline.member("sender", ROOM), pipeline.member("receiver", ROOM)
    pipeline.pump()
    body = json.dumps({"action": "sendmessage", "room": ROOM, "text": "hello", "clientMsgId": "c1"})

    pipeline.faults.rates = {failing_call: 1.0}  # this one call fails (after the SDK's retries)
    reply = pipeline.harness.send(sender.connection_id, sender.identity, body)
    pipeline.faults.rates = {}
    acked = reply.frame is not None and reply.frame["type"] == "ack"  # the route response

    if not acked:
        # Acceptable: refused before the ack, and the resend completes it.
        assert reply.frame is not None and reply.frame["code"] == "internal", reply
        again = pipeline.harness.send(sender.connection_id, sender.identity, body)
        assert again.frame is not None and again.frame["type"] == "ack", again
    # Whether the ack came first or after a resend, the receiver gets the message now.
    pipeline.pump()
    assert receiver.seqs(ROOM) == {1}, (
        f"the sender holds an ack for seq 1 but the fan-out was never enqueued "
        f"(reply to the sender: {reply.frame}); the message is lost for every member"
    )
