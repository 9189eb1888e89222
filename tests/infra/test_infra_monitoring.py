"""Monitoring and schedules: alarms reach an encrypted topic; the janitor and warmer run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.infra.infra_helpers import api_logical_id, function_id, ref_id, resources_of

REPO = Path(__file__).resolve().parents[2]


def _alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources_of(template, "AWS::CloudWatch::Alarm").values()]


def _topic_id(template: dict[str, Any]) -> str:
    (topic_id,) = resources_of(template, "AWS::SNS::Topic")
    return topic_id


def test_only_what_outlives_auto_redrive_pages_the_parked_queue_depth_alarm(
    default_json: dict[str, Any],
) -> None:
    queues = resources_of(default_json, "AWS::SQS::Queue")
    parked = next(qid for qid, q in queues.items() if "RedrivePolicy" not in q["Properties"])
    depth = [a for a in _alarms(default_json) if a["MetricName"] == "ApproximateNumberOfMessagesVisible"]
    # The DLQ is redriven automatically: its depth alone pages nobody.
    (alarm,) = depth
    assert ref_id(alarm["Dimensions"][0]["Value"]) == parked
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["EvaluationPeriods"] == 1
    assert [ref_id(a) for a in alarm["AlarmActions"]] == [_topic_id(default_json)]


def _emf_alarm(template: dict[str, Any]) -> dict[str, Any]:
    assert not [a for a in _alarms(template) if a["MetricName"] == "DeadLettered"]  # healed by redrive
    (alarm,) = [a for a in _alarms(template) if a["MetricName"] == "DeliveriesParked"]
    return alarm


def _emitted_metric(environment: dict[str, Any]) -> dict[str, Any]:
    """The EMF line the redriver's Metrics object prints, in a process with the function's own
    environment from the template (what Lambda would give it)."""
    code = (
        "from aws_lambda_powertools.metrics import MetricUnit\n"
        "from functions.chat.observability import observability\n"
        "_, _, metrics = observability('redriver')\n"
        "metrics.add_metric(name='DeliveriesParked', unit=MetricUnit.Count, value=1)\n"
        "metrics.flush_metrics()\n"
    )
    variables = {k: v for k, v in environment.items() if isinstance(v, str)}
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": os.environ.get("PATH", ""), "POWERTOOLS_TRACE_DISABLED": "true", **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    (line,) = [json.loads(line) for line in run.stdout.splitlines() if '"_aws"' in line]
    metrics: dict[str, Any] = line
    return metrics


def test_parked_deliveries_alarm_reads_what_the_redriver_emits(default_json: dict[str, Any]) -> None:
    """The alarm selects exactly the namespace and dimension set the function publishes with the
    environment the stack gives it (one definition: functions.chat.settings.metric_dimensions)."""
    alarm = _emf_alarm(default_json)
    redriver = default_json["Resources"][function_id(default_json, "redriver")]["Properties"]
    emf = _emitted_metric(redriver["Environment"]["Variables"])
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert alarm["Namespace"] == directive["Namespace"]
    (dimension_set,) = directive["Dimensions"]
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {name: emf[name] for name in dimension_set}
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1)
    assert [ref_id(a) for a in alarm["AlarmActions"]] == [_topic_id(default_json)]


def test_each_stage_alarms_and_charts_only_its_own_metrics(
    default_json: dict[str, Any], prod_json: dict[str, Any]
) -> None:
    """dev and prod in one account must not share the dead-letter alarm or dashboard widgets."""
    from functions.chat.settings import metric_dimensions

    for template, stage in ((default_json, "dev"), (prod_json, "prod")):
        expected = [{"Name": k, "Value": v} for k, v in metric_dimensions(stage).items()]
        assert _emf_alarm(template)["Dimensions"] == expected
        (dashboard,) = resources_of(template, "AWS::CloudWatch::Dashboard").values()
        body = json.dumps(dashboard["Properties"]["DashboardBody"])
        assert f'\\"stage\\",\\"{stage}\\"' in body
        other = "prod" if stage == "dev" else "dev"
        assert f'\\"stage\\",\\"{other}\\"' not in body


def _function_alarm(template: dict[str, Any], name: str, metric: str) -> dict[str, Any]:
    fid = function_id(template, name)
    (alarm,) = [
        a
        for a in _alarms(template)
        if a["Namespace"] == "AWS/Lambda"
        and a["MetricName"] == metric
        and ref_id(a["Dimensions"][0]["Value"]) == fid
    ]
    return alarm


def test_function_errors_and_throttles_alarm(default_json: dict[str, Any]) -> None:
    for name, metric in [
        ("fanout", "Errors"),
        ("fanout", "Throttles"),
        ("ingress", "Errors"),
        ("janitor", "Errors"),
        ("redriver", "Errors"),
    ]:
        alarm = _function_alarm(default_json, name, metric)
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert [ref_id(a) for a in alarm["AlarmActions"]] == [_topic_id(default_json)]


def test_api_integration_and_execution_errors_alarm_per_api_and_stage(default_json: dict[str, Any]) -> None:
    api_id = api_logical_id(default_json, "WEBSOCKET")
    api_alarms = {
        a["MetricName"]: a
        for a in _alarms(default_json)
        if a["Namespace"] == "AWS/ApiGateway" and ref_id(a["Dimensions"][0]["Value"]) == api_id
    }
    assert set(api_alarms) == {"IntegrationError", "ExecutionError"}
    for alarm in api_alarms.values():
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert ref_id(dimensions["ApiId"]) == api_id
        assert dimensions["Stage"] == "dev"


def test_the_alarm_topic_is_encrypted_and_cloudwatch_may_use_its_key(default_json: dict[str, Any]) -> None:
    topic = default_json["Resources"][_topic_id(default_json)]["Properties"]
    key = default_json["Resources"][ref_id(topic["KmsMasterKeyId"])]["Properties"]
    assert key["EnableKeyRotation"] is True
    principals = [s["Principal"] for s in key["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals
    assert not resources_of(default_json, "AWS::SNS::Subscription")


def test_the_alarm_topic_policy_lets_cloudwatch_publish(default_json: dict[str, Any]) -> None:
    """enforce_ssl writes a topic policy that replaces SNS's default one: without an explicit
    Allow for cloudwatch.amazonaws.com, no alarm notification is ever delivered."""
    topic_id = _topic_id(default_json)
    (policy,) = resources_of(default_json, "AWS::SNS::TopicPolicy").values()
    assert [ref_id(t) for t in policy["Properties"]["Topics"]] == [topic_id]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    allows = [
        s
        for s in statements
        if s["Effect"] == "Allow" and s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    (allow,) = allows
    assert allow["Action"] == "sns:Publish"
    assert ref_id(allow["Resource"]) == topic_id
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert ":alarm:*" in json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])
    # The TLS-only Deny stays, and nothing else is allowed to anyone.
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(statements) == 2
    # Publishing to a KMS-encrypted topic also needs the key: the key policy grants CloudWatch both.
    topic = default_json["Resources"][topic_id]["Properties"]
    key = default_json["Resources"][ref_id(topic["KmsMasterKeyId"])]["Properties"]
    (key_grant,) = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(key_grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_alarm_email_subscribes_to_the_topic(prod_json: dict[str, Any]) -> None:
    (subscription,) = resources_of(prod_json, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "alarms@example.com"


def test_a_dashboard_exists(default_json: dict[str, Any]) -> None:
    (dashboard,) = resources_of(default_json, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "DynamoWave-dev"


def _rule_targets(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        rule["Properties"]["ScheduleExpression"]: rule["Properties"]["Targets"]
        for rule in resources_of(template, "AWS::Events::Rule").values()
    }


def test_the_janitor_runs_every_five_minutes_and_no_warmer_by_default(default_json: dict[str, Any]) -> None:
    rules = _rule_targets(default_json)
    assert list(rules) == ["rate(5 minutes)"]
    (target,) = rules["rate(5 minutes)"]
    assert ref_id(target["Arn"]) == function_id(default_json, "janitor")


def test_the_warmer_pings_ingress_and_authorizer(prod_json: dict[str, Any]) -> None:
    warm_targets = [
        target
        for targets in _rule_targets(prod_json).values()
        for target in targets
        if target.get("Input") == '{"warmup":true}'
    ]
    assert {ref_id(t["Arn"]) for t in warm_targets} == {
        function_id(prod_json, "ingress"),
        function_id(prod_json, "authorizer"),
    }
