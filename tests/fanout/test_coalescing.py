"""Coalesced delivery: one `batch` post per opted-in member for a shard's jobs (docs/fanout.md).

Through the real handler against moto and the scripted Management API: what each connection
received is read from the posts the API answered.
"""

from __future__ import annotations

import json
from typing import Any

from functions.chat import protocol
from functions.chat.jobs import FanoutJob
from tests.fanout.conftest import Deployment


def frames_of(deployment: Deployment, connection_id: str) -> list[dict[str, Any]]:
    return [f for posted in deployment.api.delivered_to(connection_id) for f in protocol.unbatch(posted)]


def test_a_batch_member_gets_one_post_and_a_v1_member_one_per_message(deployment: Deployment) -> None:
    batched = deployment.member("alice", batch=True)
    plain = deployment.member("bob")
    deployment.queued()  # presence jobs of the joins
    for index in range(3):
        deployment.send(plain, f"hello {index}")
    bodies = deployment.queued()
    assert len(bodies) == 3  # one shard job per message

    assert deployment.fanout(bodies) == {"batchItemFailures": []}

    posts = deployment.api.delivered_to(batched)
    assert [p["type"] for p in posts] == ["batch"]
    assert sorted(f["seq"] for f in frames_of(deployment, batched)) == [1, 2, 3]
    assert sorted((p["type"], p["seq"]) for p in deployment.api.delivered_to(plain)) == [
        ("message", 1),
        ("message", 2),
        ("message", 3),
    ]


def test_a_batch_member_alone_in_a_batch_gets_the_bare_frame(deployment: Deployment) -> None:
    batched = deployment.member("alice", batch=True)
    deployment.queued()
    deployment.send(batched, "only one")
    assert deployment.fanout(deployment.queued()) == {"batchItemFailures": []}
    assert [p["type"] for p in deployment.api.delivered_to(batched)] == ["message"]


def test_a_failed_batch_post_requeues_every_job_it_carried(deployment: Deployment) -> None:
    batched = deployment.member("alice", batch=True)
    plain = deployment.member("bob")
    deployment.queued()
    deployment.send(plain, "one")
    deployment.send(plain, "two")
    deployment.api.script(batched, *[500] * 10)  # every retry in the invocation fails too

    assert deployment.fanout(deployment.queued()) == {"batchItemFailures": []}

    retries = [FanoutJob.from_json(body) for body in deployment.queued()]
    assert sorted((job.connections, job.frame["seq"], job.attempt) for job in retries) == [
        ((batched,), 1, 1),
        ((batched,), 2, 1),
    ]
    assert len(deployment.api.delivered_to(plain)) == 2


def test_typing_in_a_batch_still_skips_the_typist(deployment: Deployment) -> None:
    alice = deployment.member("alice", batch=True)
    bob = deployment.member("bob", batch=True)
    deployment.queued()
    deployment.send(bob, "hi")
    deployment.frame(alice, deployment.connect("alice")[1], action="typing", room="general")
    assert deployment.fanout(deployment.queued()) == {"batchItemFailures": []}
    assert sorted(str(f["type"]) for f in frames_of(deployment, bob)) == ["message", "typing"]
    assert [f["type"] for f in frames_of(deployment, alice)] == ["message"]


def test_coalesce_cuts_at_32_kb_and_keeps_order() -> None:
    frames = [json.dumps({"type": "message", "seq": i, "text": "x" * 10_000}).encode() for i in range(7)]
    posts = protocol.coalesce(frames)
    assert [indexes for _, indexes in posts] == [[0, 1, 2], [3, 4, 5], [6]]
    for body, indexes in posts:
        assert len(body) <= protocol.BATCH_FRAME_BYTES
        decoded = protocol.unbatch(json.loads(body))
        assert [f["seq"] for f in decoded] == indexes
    big = b'{"type":"update","text":"' + b"y" * 40_000 + b'"}'
    assert protocol.coalesce([frames[0], big, frames[1]]) == [(frames[0], [0]), (big, [1]), (frames[1], [2])]


def test_only_batch_1_opts_in() -> None:
    assert protocol.wants_batches({"token": "t", "batch": "1"})
    assert protocol.wants_batches({"batch": "true"})
    assert not protocol.wants_batches({"batch": "0"})
    assert not protocol.wants_batches(None)
