"""The operator API on AWS (stacks/operator_api.py): an IAM-authorized HTTP API whose routes are
the operator handler's, one Lambda behind it, a throttled and access-logged $default stage, its
alarms, the operator's invoke policy and the OperatorApiUrl output."""

from __future__ import annotations

import json
from typing import Any

from functions.operator.handler import routes
from tests.infra.infra_helpers import api_logical_id, api_resources, function_id, ref_id, resources_of

HTTP = "HTTP"


def _routes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        route["Properties"]["RouteKey"]: route["Properties"]
        for route in api_resources(template, "AWS::ApiGatewayV2::Route", HTTP).values()
    }


def test_the_routes_are_the_handlers_and_each_requires_iam(default_json: dict[str, Any]) -> None:
    served = _routes(default_json)
    assert set(served) == {f"{method} {path}" for method, path in routes()}
    assert "POST /rooms/{room}/messages" in served and "DELETE /users/{user}/connections" in served
    for key, route in served.items():
        assert route["AuthorizationType"] == "AWS_IAM", key


def test_every_route_invokes_the_operator_function_with_payload_v2(default_json: dict[str, Any]) -> None:
    operator = function_id(default_json, "operator")
    integrations = api_resources(default_json, "AWS::ApiGatewayV2::Integration", HTTP)
    assert integrations
    for integration in integrations.values():
        props = integration["Properties"]
        assert (props["IntegrationType"], props["PayloadFormatVersion"]) == ("AWS_PROXY", "2.0")
        assert ref_id(props["IntegrationUri"]) == operator
    for route in _routes(default_json).values():
        assert ref_id(route["Target"]["Fn::Join"][1][1]) in integrations


def test_only_the_operator_api_may_invoke_the_operator_function(default_json: dict[str, Any]) -> None:
    operator, api = function_id(default_json, "operator"), api_logical_id(default_json, HTTP)
    permissions = [
        p["Properties"]
        for p in resources_of(default_json, "AWS::Lambda::Permission").values()
        if ref_id(p["Properties"]["FunctionName"]) == operator
    ]
    assert len(permissions) == len(routes())
    for permission in permissions:
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert {"Ref": api} in permission["SourceArn"]["Fn::Join"][1]


def test_the_default_stage_is_throttled_logged_and_measured(
    default_json: dict[str, Any], prod_json: dict[str, Any]
) -> None:
    (stage,) = api_resources(default_json, "AWS::ApiGatewayV2::Stage", HTTP).values()
    props = stage["Properties"]
    assert (props["StageName"], props["AutoDeploy"]) == ("$default", True)
    settings = props["DefaultRouteSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (100, 200)
    assert settings["DetailedMetricsEnabled"] is True
    log_group_id = ref_id(props["AccessLogSettings"]["DestinationArn"])
    log_group = default_json["Resources"][log_group_id]
    assert (log_group["Type"], log_group["Properties"]["RetentionInDays"]) == ("AWS::Logs::LogGroup", 30)
    assert log_group["DeletionPolicy"] == "Delete"
    access_format = json.loads(props["AccessLogSettings"]["Format"])
    assert {
        "$context.requestId",
        "$context.routeKey",
        "$context.status",
        "$context.identity.userArn",
        "$context.integrationErrorMessage",
    } <= set(access_format.values())
    (prod_stage,) = api_resources(prod_json, "AWS::ApiGatewayV2::Stage", HTTP).values()
    prod_logs = ref_id(prod_stage["Properties"]["AccessLogSettings"]["DestinationArn"])
    assert prod_json["Resources"][prod_logs]["DeletionPolicy"] == "Retain"


def test_the_invoke_policy_names_each_route_on_the_default_stage(default_json: dict[str, Any]) -> None:
    api = api_logical_id(default_json, HTTP)
    (policy,) = resources_of(default_json, "AWS::IAM::ManagedPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "execute-api:Invoke")
    tails = set()
    for resource in statement["Resource"]:
        parts = resource["Fn::Join"][1]
        assert parts[0] == "arn:aws:execute-api:us-east-1:" and {"Ref": api} in parts
        tails.add(parts[-1])
    assert "/$default/POST/rooms/*/messages" in tails and "/$default/DELETE/rooms/*/bans/*" in tails
    assert len(tails) == len(routes())
    assert (
        "Roles" not in policy["Properties"] and "Users" not in policy["Properties"]
    )  # the operator attaches it


def test_the_operator_api_is_alarmed_like_the_websocket_api(default_json: dict[str, Any]) -> None:
    api, operator = api_logical_id(default_json, HTTP), function_id(default_json, "operator")
    alarms = [a["Properties"] for a in resources_of(default_json, "AWS::CloudWatch::Alarm").values()]
    (server_errors,) = [a for a in alarms if a["MetricName"] == "5xx"]
    dimensions = {d["Name"]: d["Value"] for d in server_errors["Dimensions"]}
    assert ref_id(dimensions["ApiId"]) == api and dimensions["Stage"] == "$default"
    assert (server_errors["Threshold"], server_errors["Statistic"], server_errors["Period"]) == (
        1,
        "Sum",
        300,
    )
    function_alarms = {
        a["MetricName"]
        for a in alarms
        if a["Namespace"] == "AWS/Lambda" and ref_id(a["Dimensions"][0]["Value"]) == operator
    }
    assert function_alarms == {"Errors", "Throttles"}
    for alarm in [server_errors]:
        assert alarm["AlarmActions"] and alarm["OKActions"]


def test_outputs_give_the_operator_api_url_and_its_policy(default_json: dict[str, Any]) -> None:
    outputs = default_json["Outputs"]
    url = outputs["OperatorApiUrl"]["Value"]["Fn::Join"][1]
    assert url[0] == "https://" and ref_id(url[1]) == api_logical_id(default_json, HTTP)
    assert url[2] == ".execute-api.us-east-1." and url[-1] == "/"  # $default: no stage in the path
    (policy_id,) = resources_of(default_json, "AWS::IAM::ManagedPolicy")
    assert ref_id(outputs["OperatorInvokePolicyArn"]["Value"]) == policy_id
