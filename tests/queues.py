"""SQS helpers shared by the suites that inspect the dead-letter queue."""

from __future__ import annotations

import json
from typing import Any


def peek_jobs(sqs: Any, queue_url: str, *, visibility_timeout: int = 30) -> list[dict[str, Any]]:
    """Every job on the queue, without consuming them: received, then made visible again."""
    jobs: list[dict[str, Any]] = []
    handles: list[str] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility_timeout,
        ).get("Messages", [])
        if not batch:
            break
        jobs.extend(json.loads(m["Body"]) for m in batch)
        handles.extend(m["ReceiptHandle"] for m in batch)
    for handle in handles:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return jobs
