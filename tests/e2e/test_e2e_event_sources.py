"""The SQS event source mapping and the janitor schedule, against stub handlers.

The stub server's fan-out queue has a 1 s visibility timeout and maxReceiveCount 3.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from dynamowave.testing.waits import wait_until as shared_wait_until
from tests.e2e.conftest import Server

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float = 15.0) -> T:
    return shared_wait_until(predicate, timeout)


def send(server: Server, **body: Any) -> str:
    """Enqueue a job for the stub fan-out; returns its tag."""
    tag = uuid.uuid4().hex
    sqs = server.boto3_client("sqs")
    sqs.send_message(
        QueueUrl=server.info()["fanout_queue_url"],
        MessageBody=json.dumps({"tag": tag, **body}),
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
    )
    return tag


def deliveries(server: Server, tag: str) -> list[dict[str, Any]]:
    """Every record with this tag the stub fan-out was invoked with, in order."""
    found = []
    for invocation in server.events("fanout"):
        for record in invocation["event"]["Records"]:
            if json.loads(record["body"])["tag"] == tag:
                found.append(record)
    return found


def at_least(server: Server, tag: str, count: int) -> list[dict[str, Any]] | None:
    found = deliveries(server, tag)
    return found if len(found) >= count else None


def dead_letters(server: Server) -> list[str]:
    sqs = server.boto3_client("sqs")
    url = server.info()["fanout_dlq_url"]
    tags: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
        if not messages:
            return tags
        for message in messages:
            tags.append(json.loads(message["Body"])["tag"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_record_has_the_lambda_sqs_event_shape(stub_server: Server) -> None:
    tag = send(stub_server)
    record = wait_until(lambda: deliveries(stub_server, tag))[0]
    info = stub_server.info()
    assert record["eventSource"] == "aws:sqs"
    assert record["awsRegion"] == "us-east-1"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:dynamowave-fanout"
    assert record["messageId"] and record["receiptHandle"]
    assert json.loads(record["body"])["tag"] == tag
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert "SentTimestamp" in record["attributes"]
    assert record["messageAttributes"]["kind"]["stringValue"] == "test"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert len(record["md5OfBody"]) == 32
    assert info["fanout_queue_url"].endswith("dynamowave-fanout")


def test_successful_record_is_deleted_and_delivered_once(stub_server: Server) -> None:
    tag = send(stub_server)
    wait_until(lambda: deliveries(stub_server, tag))
    time.sleep(2.5)  # two visibility timeouts: a record left behind would reappear
    assert len(deliveries(stub_server, tag)) == 1


def test_batch_item_failure_is_retried_then_dead_lettered_alone(stub_server: Server) -> None:
    failing = send(stub_server, fail=True)
    fine = send(stub_server)
    records = wait_until(lambda: at_least(stub_server, failing, 3))
    assert [r["attributes"]["ApproximateReceiveCount"] for r in records] == ["1", "2", "3"]
    assert len({r["messageId"] for r in records}) == 1
    assert wait_until(lambda: failing in dead_letters(stub_server))
    assert len(deliveries(stub_server, failing)) == 3
    assert len(deliveries(stub_server, fine)) == 1


def test_raising_invocation_leaves_the_whole_batch(stub_server: Server) -> None:
    crash = send(stub_server, **{"raise": True})
    records = wait_until(lambda: at_least(stub_server, crash, 2))
    assert records[1]["attributes"]["ApproximateReceiveCount"] == "2"
    assert wait_until(lambda: crash in dead_letters(stub_server))


def test_sqs_duplicate_fault_redelivers_a_processed_record_once(stub_server: Server) -> None:
    stub_server.http("PUT", "/dev/faults", {"sqs_duplicate_rate": 1.0})
    try:
        tag = send(stub_server)
        records = wait_until(lambda: at_least(stub_server, tag, 2))
    finally:
        stub_server.http("PUT", "/dev/faults", {})
    assert records[0]["messageId"] == records[1]["messageId"]
    time.sleep(2.5)
    assert len(deliveries(stub_server, tag)) == 2


def test_fanout_crash_fault_redelivers_the_batch(stub_server: Server) -> None:
    stub_server.http("PUT", "/dev/faults", {"fanout_crash_rate": 1.0, "seed": 1})
    try:
        tag = send(stub_server)
        time.sleep(0.6)  # received and crashed at once; visible again only after 1 s
        assert deliveries(stub_server, tag) == []  # a batch of one crashes before its first record
    finally:
        stub_server.http("PUT", "/dev/faults", {})
    record = wait_until(lambda: deliveries(stub_server, tag))[0]
    assert int(record["attributes"]["ApproximateReceiveCount"]) >= 2


def test_janitor_runs_on_demand_and_on_schedule_with_an_eventbridge_event(stub_server: Server) -> None:
    status, body = stub_server.http("POST", "/dev/janitor")
    assert status == 200 and body["ok"] is True and body["result"] == {"pruned": 0}
    event = stub_server.events("janitor")[-1]["event"]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/dynamowave-janitor"]
    before = len(stub_server.events("janitor"))
    wait_until(lambda: len(stub_server.events("janitor")) > before, timeout=5)
