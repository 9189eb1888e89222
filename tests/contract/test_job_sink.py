"""One contract for the job sink (functions/chat/domain/ports.py), run against SQS on moto and against
the in-memory sink: what the domain may rely on, whichever stands behind it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from dynamowave.testing.aws import moto_resources
from functions.chat.adapters.memory import InMemoryJobSink
from functions.chat.adapters.queue import JobQueue
from functions.chat.domain.ports import JobSink
from functions.chat.jobs import FanoutJob


@dataclass
class Sink:
    sink: JobSink
    queued: Callable[[], list[tuple[str, int]]]  # (body, delay seconds)
    dead: Callable[[], list[str]]
    parked: Callable[[], list[str]]


def bodies(sqs: Any, url: str) -> list[tuple[str, int]]:
    """Every message on a queue with its delay, read with the delay skipped (moto honours it)."""
    found: list[tuple[str, int]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not batch:
            return found
        for message in batch:
            found.append((message["Body"], 0))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(params=["sqs", "memory"])
def sink(request: pytest.FixtureRequest) -> Iterator[Sink]:
    if request.param == "memory":
        memory = InMemoryJobSink()
        yield Sink(
            memory, lambda: [(b, 0) for b, _ in memory.queued], lambda: memory.dead, lambda: memory.parked
        )
        return
    with moto_resources("contract") as resources:
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = JobQueue(
            sqs, resources.fanout_queue_url, resources.fanout_dlq_url, resources.fanout_parked_url
        )
        yield Sink(
            queue,
            lambda: bodies(sqs, resources.fanout_queue_url),
            lambda: [b for b, _ in bodies(sqs, resources.fanout_dlq_url)],
            lambda: [b for b, _ in bodies(sqs, resources.fanout_parked_url)],
        )


def job(index: int) -> FanoutJob:
    return FanoutJob(room="r", frame={"type": "message", "seq": index}, shard=f"0.{index}")


def test_every_job_arrives_whole_ten_per_request(sink: Sink) -> None:
    jobs = [job(i) for i in range(23)]
    assert sink.sink.enqueue(jobs) == 3
    arrived = sorted((FanoutJob.from_json(body) for body, _ in sink.queued()), key=lambda j: str(j.shard))
    assert arrived == sorted(jobs, key=lambda j: str(j.shard))


def test_nothing_to_send_is_no_request(sink: Sink) -> None:
    assert sink.sink.enqueue([]) == 0 and sink.sink.dead_letter([]) == 0 and sink.sink.park([]) == 0
    assert sink.queued() == [] and sink.dead() == [] and sink.parked() == []


def test_dead_letters_and_parked_bodies_go_to_their_own_queues(sink: Sink) -> None:
    assert sink.sink.dead_letter([job(1).dead_lettered("429 x 7")]) == 1
    assert sink.sink.park(["{not a job"]) == 1
    assert [FanoutJob.from_json(body).reason for body in sink.dead()] == ["429 x 7"]
    assert sink.parked() == ["{not a job"]
    assert sink.queued() == []
