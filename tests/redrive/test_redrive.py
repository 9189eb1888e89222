"""`dynamowave redrive` against moto: jobs go back with a fresh attempt count, and a job that could
not be re-sent is never deleted from the dead-letter queue."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from dynamowave.cli import main
from dynamowave.local.provisioning import Resources
from dynamowave.redrive import Redriver, native_move
from dynamowave.testing.aws import moto_resources
from functions.chat.jobs import FanoutJob

FRAME = {"type": "message", "room": "general", "seq": 7, "text": "hello"}


def dead_job(index: int) -> FanoutJob:
    return FanoutJob(
        room="general",
        frame=FRAME,
        connections=(f"conn-{index}=",),
        attempt=6,
        correlation_id=f"msg-{index}",
        reason="1 recipient(s) still failing after attempt 5: LimitExceededException",
    )


def bodies(sqs: Any, queue_url: str) -> list[str]:
    found = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def in_queue(sqs: Any, queue_url: str) -> int:
    """Visible and in-flight messages: what a queue still holds."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture
def queues() -> Iterator[Resources]:
    with moto_resources("rd") as resources:
        sqs = boto3.client("sqs")
        for index in range(3):
            sqs.send_message(QueueUrl=resources.fanout_dlq_url, MessageBody=dead_job(index).to_json())
        sqs.send_message(QueueUrl=resources.fanout_dlq_url, MessageBody="{not a job")
        yield resources


def redrive(*args: str) -> int:
    return main(["redrive", "--wait-seconds", "0", *args])


def test_moves_every_job_back_with_a_fresh_attempt_count(
    queues: Resources, capsys: pytest.CaptureFixture[str]
) -> None:
    status = redrive("--queue-url", queues.fanout_queue_url, "--dlq-url", queues.fanout_dlq_url)

    assert status == 0
    assert "moved 3 job(s)" in capsys.readouterr().out
    sqs = boto3.client("sqs")
    moved = sorted((FanoutJob.from_json(body) for body in bodies(sqs, queues.fanout_queue_url)), key=str)
    assert [(job.correlation_id, job.attempt, job.reason) for job in moved] == [
        ("msg-0", 0, None),
        ("msg-1", 0, None),
        ("msg-2", 0, None),
    ]
    assert all(job.frame == FRAME and job.connections for job in moved)
    # The poison record is not a job: it stays in the DLQ for a human to look at.
    assert in_queue(sqs, queues.fanout_dlq_url) == 1


def test_never_deletes_a_job_it_could_not_send(queues: Resources, capsys: pytest.CaptureFixture[str]) -> None:
    missing = queues.fanout_queue_url + "-missing"

    status = redrive("--queue-url", missing, "--dlq-url", queues.fanout_dlq_url)

    assert status == 1
    assert "could not be re-sent" in capsys.readouterr().out
    assert in_queue(boto3.client("sqs"), queues.fanout_dlq_url) == 4


def test_entries_sqs_refuses_stay_in_the_dlq(queues: Resources) -> None:
    sqs = boto3.client("sqs")

    def refuse_the_first(parsed: dict[str, Any], **_: Any) -> None:
        # SQS accepts a batch but refuses one entry (e.g. an internal error): it reports it Failed.
        first = parsed["Successful"].pop(0)
        parsed.setdefault("Failed", []).append(
            {"Id": first["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
        )

    sqs.meta.events.register("after-call.sqs.SendMessageBatch", refuse_the_first)
    result = Redriver(
        sqs, dlq_url=queues.fanout_dlq_url, queue_url=queues.fanout_queue_url, wait_seconds=0
    ).run()

    assert (result.moved, result.failed, result.invalid, result.ok) == (2, 1, 1, False)
    assert in_queue(sqs, queues.fanout_dlq_url) == 2  # the refused job and the poison record


def test_max_limits_how_many_move(queues: Resources) -> None:
    assert (
        redrive("--queue-url", queues.fanout_queue_url, "--dlq-url", queues.fanout_dlq_url, "--max", "2") == 0
    )
    sqs = boto3.client("sqs")
    assert len(bodies(sqs, queues.fanout_queue_url)) == 2
    assert in_queue(sqs, queues.fanout_dlq_url) == 2


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert redrive() == 2
    assert "--local" in capsys.readouterr().err
    assert redrive("--queue-url", "q", "--dlq-url", "d", "--max", "0") == 2


class InfoServer:
    """What a running `dynamowave serve` answers at GET /dev/info."""

    def __init__(self, info: dict[str, Any]) -> None:
        payload = json.dumps(info).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = 200 if self.path == "/dev/info" else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("parked", [False, True])
def test_local_finds_the_runtimes_moto_and_queues(capsys: pytest.CaptureFixture[str], parked: bool) -> None:
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    info_server: InfoServer | None = None
    try:
        host, port = moto_server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="dynamowave-fanout")["QueueUrl"]
        dlq_url = sqs.create_queue(QueueName="dynamowave-fanout-dlq")["QueueUrl"]
        parked_url = sqs.create_queue(QueueName="dynamowave-fanout-parked")["QueueUrl"]
        # --parked moves what outlived auto-redrive; without it, the DLQ.
        source = parked_url if parked else dlq_url
        sqs.send_message(QueueUrl=source, MessageBody=dead_job(1).to_json())
        info_server = InfoServer(
            {
                "aws_endpoint": endpoint,
                "region": "us-east-1",
                "fanout_queue_url": queue_url,
                "fanout_dlq_url": dlq_url,
                "fanout_parked_url": parked_url,
            }
        )

        status = redrive("--local", info_server.url, "--json", *(["--parked"] if parked else []))

        assert status == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["moved"], report["failed"], report["queue_url"]) == (1, 0, queue_url)
        (body,) = bodies(sqs, queue_url)
        assert FanoutJob.from_json(body).attempt == 0
        assert in_queue(sqs, source) == 0
    finally:
        if info_server is not None:
            info_server.stop()
        moto_server.stop()


def test_local_without_a_runtime_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    server = InfoServer({})
    url = server.url
    server.stop()  # nothing listens there any more
    assert redrive("--local", url) == 2
    assert "dynamowave serve" in capsys.readouterr().err


def test_native_move_starts_an_sqs_move_task() -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq_url = "https://sqs.us-east-1.amazonaws.com/123456789012/dw-fanout-dlq"
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/dw-fanout"
    with Stubber(sqs) as stub:
        for url, name in ((dlq_url, "dw-fanout-dlq"), (queue_url, "dw-fanout")):
            stub.add_response(
                "get_queue_attributes",
                {"Attributes": {"QueueArn": f"arn:aws:sqs:us-east-1:123456789012:{name}"}},
                {"QueueUrl": url, "AttributeNames": ["QueueArn"]},
            )
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "handle-1"},
            {
                "SourceArn": "arn:aws:sqs:us-east-1:123456789012:dw-fanout-dlq",
                "DestinationArn": "arn:aws:sqs:us-east-1:123456789012:dw-fanout",
            },
        )
        assert native_move(sqs, dlq_url=dlq_url, queue_url=queue_url) == "handle-1"
        stub.assert_no_pending_responses()
