"""Messaging: the fan-out queue and its DLQ are encrypted, TLS-only and correctly timed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from functions.chat.schema import FANOUT_VISIBILITY_TIMEOUT_SECONDS
from stacks.config import DeploymentConfig
from stacks.messaging import Messaging
from tests.infra.infra_helpers import function_id, ref_id, resources_of


def _queues(template: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(fan-out queue, DLQ, DLQ id): the queue redrives to the DLQ, the DLQ to the parked queue."""
    queues = resources_of(template, "AWS::SQS::Queue")
    (parked_id,) = [qid for qid, q in queues.items() if "RedrivePolicy" not in q["Properties"]]
    (dlq_id,) = [
        qid
        for qid, q in queues.items()
        if "RedrivePolicy" in q["Properties"]
        and ref_id(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) == parked_id
    ]
    (main_id,) = [qid for qid in queues if qid not in (parked_id, dlq_id)]
    return queues[main_id], queues[dlq_id], dlq_id


def test_a_crashed_batch_is_back_within_a_short_visibility_timeout_the_fanout_renews(
    default_json: dict[str, Any],
) -> None:
    queue, _, _ = _queues(default_json)
    fanout = default_json["Resources"][function_id(default_json, "fanout")]
    visibility = queue["Properties"]["VisibilityTimeout"]
    assert visibility == FANOUT_VISIBILITY_TIMEOUT_SECONDS <= 20  # the crash stall (was 360 s)
    # Lambda refuses an SQS event source whose visibility timeout is below the function timeout.
    assert fanout["Properties"]["Timeout"] <= visibility
    variables = fanout["Properties"]["Environment"]["Variables"]
    assert variables["FANOUT_VISIBILITY_SECONDS"] == str(visibility)  # what the lease renews by


def test_failed_jobs_go_to_the_dlq_after_max_receive_count(default_json: dict[str, Any]) -> None:
    queue, dlq, dlq_id = _queues(default_json)
    redrive = queue["Properties"]["RedrivePolicy"]
    assert ref_id(redrive["deadLetterTargetArn"]) == dlq_id
    assert redrive["maxReceiveCount"] == 5
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_every_queue_uses_the_rotating_customer_key_and_refuses_plain_http(
    default_json: dict[str, Any],
) -> None:
    keys = resources_of(default_json, "AWS::KMS::Key")
    policies = resources_of(default_json, "AWS::SQS::QueuePolicy").values()
    for q in resources_of(default_json, "AWS::SQS::Queue").values():
        key_id = ref_id(q["Properties"]["KmsMasterKeyId"])
        assert keys[key_id]["Properties"]["EnableKeyRotation"] is True
    denied = [
        statement
        for policy in policies
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denied) == 3


def _mappings(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """function logical id -> its SQS event source mapping's properties."""
    return {
        ref_id(m["Properties"]["FunctionName"]): m["Properties"]
        for m in resources_of(template, "AWS::Lambda::EventSourceMapping").values()
    }


def test_the_dlq_is_redriven_automatically_and_what_it_cannot_redrive_is_parked(
    default_json: dict[str, Any],
) -> None:
    queues = resources_of(default_json, "AWS::SQS::Queue")
    _, dlq, dlq_id = _queues(default_json)
    props = _mappings(default_json)[function_id(default_json, "redriver")]
    assert ref_id(props["EventSourceArn"]) == dlq_id
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # A dead letter the redriver keeps failing on is parked by SQS: it never loops forever.
    parked = queues[ref_id(dlq["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])]
    assert "RedrivePolicy" not in parked["Properties"]
    assert dlq["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 10
    redriver = default_json["Resources"][function_id(default_json, "redriver")]
    assert dlq["Properties"]["VisibilityTimeout"] >= redriver["Properties"]["Timeout"]
    variables = redriver["Properties"]["Environment"]["Variables"]
    assert (variables["REDRIVE_BASE_DELAY_SECONDS"], variables["REDRIVE_MAX_AGE_SECONDS"]) == ("5", "3600")


def test_the_fanout_event_source_reports_partial_batch_failures(default_json: dict[str, Any]) -> None:
    queue_id = next(
        qid
        for qid, q in resources_of(default_json, "AWS::SQS::Queue").items()
        if q is _queues(default_json)[0]
    )
    props = _mappings(default_json)[function_id(default_json, "fanout")]
    assert ref_id(props["EventSourceArn"]) == queue_id
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == 10
    assert props["MaximumBatchingWindowInSeconds"] == 0
    assert props["ScalingConfig"] == {"MaximumConcurrency": 20}


def test_max_receive_count_and_timeout_follow_the_config() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "MessagingOnly", env=cdk.Environment(region="us-east-1"))
    key = kms.Key(stack, "Key")
    Messaging(
        stack,
        "Messaging",
        config=DeploymentConfig(max_receive_count=3),
        key=key,
        visibility_timeout=cdk.Duration.seconds(20),
    )
    queue, _, _ = _queues(Template.from_stack(stack).to_json())
    assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 3
    assert queue["Properties"]["VisibilityTimeout"] == 20
