"""The whole pipeline in one process: ingress and fan-out handlers over moto, with an SQS event
source emulated here so that crashes mid-batch and duplicate deliveries can be injected.

The event source behaves like Lambda's: a batch of up to 10 records, partial batch responses
(failed records become visible again at once, standing in for the visibility timeout), moto's
redrive policy moving a record to the DLQ after maxReceiveCount receives. Faults:
- `crash_rate`: the invocation processes a random prefix of its batch, then dies: no record is
  deleted, every one comes back (the processed ones are delivered twice);
- `duplicate_rate`: a record that succeeded is delivered once more (SQS at-least-once).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core.models import DEFAULT_ACCOUNT_ID

from dynamowave.testing.aws import LambdaContext
from functions.chat.auth import Identity
from functions.chat.clock import now_ms
from functions.fanout.handler import handler as fanout_handler
from functions.janitor.handler import handler as janitor_handler
from tests.chaos.botofaults import BotoFaults
from tests.fuzz.support import IngressHarness
from tests.queues import peek_jobs


@dataclass
class Member:
    identity: Identity
    connection_id: str
    offset: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)

    def poll(self) -> list[dict[str, Any]]:
        """Frames posted to this connection since the last poll (moto concatenates them)."""
        backend = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        key = quote(self.connection_id, safe="")
        data = backend.connections[key].data.decode() if key in backend.connections else ""
        fresh, decoder = [], json.JSONDecoder()
        while self.offset < len(data):
            frame, self.offset = decoder.raw_decode(data, self.offset)
            fresh.append(frame)
        self.frames.extend(fresh)
        return fresh

    def seqs(self, room: str) -> set[int]:
        self.poll()
        return {int(f["seq"]) for f in self.frames if f.get("type") == "message" and f.get("room") == room}


@dataclass
class Pipeline:
    harness: IngressHarness
    faults: BotoFaults
    crash_rate: float = 0.0
    duplicate_rate: float = 0.0
    seed: int = 11
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    # -- clients ---------------------------------------------------------------------------------

    def member(self, user: str, room: str) -> Member:
        identity = Identity(user, user.title(), None)
        member = Member(identity, self.harness.connect(identity))
        reply = self.harness.send(
            member.connection_id, identity, json.dumps({"action": "join", "room": room})
        )
        assert reply.frame is not None and reply.frame["type"] == "joined", reply
        return member

    def send_until_acked(self, member: Member, room: str, text: str, client_msg_id: str) -> dict[str, Any]:
        """What a careful client does: send, and resend the same clientMsgId until acked."""
        body = json.dumps({"action": "sendmessage", "room": room, "text": text, "clientMsgId": client_msg_id})
        for attempt in range(30):
            if attempt:
                self.stats["client resends"] += 1
            reply = self.harness.send(member.connection_id, member.identity, body)
            assert reply.frame is not None, reply  # the ack (or the error) is the route response
            if reply.frame["type"] == "ack":
                return reply.frame
            assert reply.frame["type"] == "error" and reply.frame["code"] in ("internal", "rate_limited"), (
                reply
            )
            self.stats[f"send refused: {reply.frame['code']}"] += 1
            self.pump(batches=1)  # time passes: fan-out work proceeds meanwhile
        raise AssertionError(f"{client_msg_id} never acked")

    # -- the SQS event source --------------------------------------------------------------------

    def pump(self, batches: int | None = None) -> None:
        """Run fan-out batches until the queue is empty (or `batches` batches ran)."""
        sqs, url = self.harness.sqs, self.harness.resources.fanout_queue_url
        ran = 0
        while batches is None or ran < batches:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                if self.harness.queue_depth() == 0:
                    return
                time.sleep(0.05)  # retry jobs with a delay, or records being moved to the DLQ
                ran += 1
                continue
            ran += 1
            self._invoke(messages)

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        sqs, url = self.harness.sqs, self.harness.resources.fanout_queue_url
        records = [_record(message, self.harness.resources.fanout_queue_arn) for message in messages]
        crash_after = (
            self._random.randrange(len(records)) if self._random.random() < self.crash_rate else None
        )
        batch = records if crash_after is None else records[:crash_after]
        self.stats["fan-out invocations"] += 1
        response = fanout_handler({"Records": batch}, LambdaContext(remaining_ms=60_000)) if batch else {}
        failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
        self.stats["failed records (redelivered)"] += len(failed)
        if crash_after is not None:
            self.stats["crashed invocations"] += 1
            failed = {record["messageId"] for record in records}  # nothing was deleted
        for message in messages:
            if message["MessageId"] in failed:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            elif self._random.random() < self.duplicate_rate:
                self.stats["duplicated deliveries"] += 1
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def dead_letters(self) -> list[dict[str, Any]]:
        """The DLQ's jobs, without consuming them."""
        return peek_jobs(self.harness.sqs, self.harness.resources.fanout_dlq_url)

    def run_janitor(self) -> Any:
        return janitor_handler(
            {"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext(remaining_ms=60_000)
        )


def _record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(now_ms())),
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }
