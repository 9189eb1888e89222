"""Messaging: the fan-out queue and its DLQ are encrypted, TLS-only and correctly timed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from functions.chat.schema import VISIBILITY_TIMEOUT_FACTOR
from stacks.config import DeploymentConfig
from stacks.messaging import Messaging
from tests.infra.infra_helpers import function_id, ref_id, resources_of


def _queues(template: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    queues = resources_of(template, "AWS::SQS::Queue")
    (main_id,) = [qid for qid, q in queues.items() if "RedrivePolicy" in q["Properties"]]
    (dlq_id,) = [qid for qid in queues if qid != main_id]
    return queues[main_id], queues[dlq_id], dlq_id


def test_visibility_timeout_is_at_least_six_times_the_fanout_timeout(default_json: dict[str, Any]) -> None:
    queue, _, _ = _queues(default_json)
    fanout = default_json["Resources"][function_id(default_json, "fanout")]
    assert VISIBILITY_TIMEOUT_FACTOR >= 6
    assert (
        queue["Properties"]["VisibilityTimeout"]
        >= VISIBILITY_TIMEOUT_FACTOR * fanout["Properties"]["Timeout"]
    )


def test_failed_jobs_go_to_the_dlq_after_max_receive_count(default_json: dict[str, Any]) -> None:
    queue, dlq, dlq_id = _queues(default_json)
    redrive = queue["Properties"]["RedrivePolicy"]
    assert ref_id(redrive["deadLetterTargetArn"]) == dlq_id
    assert redrive["maxReceiveCount"] == 5
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_both_queues_use_the_rotating_customer_key_and_refuse_plain_http(
    default_json: dict[str, Any],
) -> None:
    keys = resources_of(default_json, "AWS::KMS::Key")
    policies = resources_of(default_json, "AWS::SQS::QueuePolicy").values()
    queue, dlq, _ = _queues(default_json)
    for q in (queue, dlq):
        key_id = ref_id(q["Properties"]["KmsMasterKeyId"])
        assert keys[key_id]["Properties"]["EnableKeyRotation"] is True
    denied = [
        statement
        for policy in policies
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denied) == 2


def test_the_fanout_event_source_reports_partial_batch_failures(default_json: dict[str, Any]) -> None:
    (mapping,) = resources_of(default_json, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    queue_ids = [
        qid
        for qid, q in resources_of(default_json, "AWS::SQS::Queue").items()
        if "RedrivePolicy" in q["Properties"]
    ]
    assert ref_id(props["EventSourceArn"]) == queue_ids[0]
    assert ref_id(props["FunctionName"]) == function_id(default_json, "fanout")
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
        fanout_timeout=cdk.Duration.seconds(20),
    )
    queue, _, _ = _queues(Template.from_stack(stack).to_json())
    assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 3
    assert queue["Properties"]["VisibilityTimeout"] == 20 * VISIBILITY_TIMEOUT_FACTOR
