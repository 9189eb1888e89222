"""Monitoring and schedules: alarms reach an encrypted topic; the janitor and warmer run."""

from __future__ import annotations

from typing import Any

from tests.infra.infra_helpers import function_id, ref_id, resources_of


def _alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources_of(template, "AWS::CloudWatch::Alarm").values()]


def _topic_id(template: dict[str, Any]) -> str:
    (topic_id,) = resources_of(template, "AWS::SNS::Topic")
    return topic_id


def test_the_dlq_depth_alarm_fires_on_the_first_message(default_json: dict[str, Any]) -> None:
    queues = resources_of(default_json, "AWS::SQS::Queue")
    dlq = next(qid for qid, q in queues.items() if "RedrivePolicy" not in q["Properties"])
    (alarm,) = [
        a
        for a in _alarms(default_json)
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and ref_id(a["Dimensions"][0]["Value"]) == dlq
    ]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["EvaluationPeriods"] == 1
    assert [ref_id(a) for a in alarm["AlarmActions"]] == [_topic_id(default_json)]


def test_dead_lettered_deliveries_alarm_reads_the_fanouts_emf_metric(default_json: dict[str, Any]) -> None:
    from functions.chat.settings import METRICS_NAMESPACE, METRICS_SERVICE

    (alarm,) = [a for a in _alarms(default_json) if a["MetricName"] == "DeadLettered"]
    # The same namespace and dimension the functions publish under (functions/chat/observability.py).
    assert alarm["Namespace"] == METRICS_NAMESPACE
    assert alarm["Dimensions"] == [{"Name": "service", "Value": METRICS_SERVICE}]
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1)
    assert [ref_id(a) for a in alarm["AlarmActions"]] == [_topic_id(default_json)]


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
    ]:
        alarm = _function_alarm(default_json, name, metric)
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert [ref_id(a) for a in alarm["AlarmActions"]] == [_topic_id(default_json)]


def test_api_integration_and_execution_errors_alarm_per_api_and_stage(default_json: dict[str, Any]) -> None:
    (api_id,) = resources_of(default_json, "AWS::ApiGatewayV2::Api")
    api_alarms = {a["MetricName"]: a for a in _alarms(default_json) if a["Namespace"] == "AWS/ApiGateway"}
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
