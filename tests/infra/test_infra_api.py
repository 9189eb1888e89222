"""Api: routes, the $connect-only authorizer, route responses, throttled and logged stage."""

from __future__ import annotations

import json
from typing import Any

from functions.chat.schema import (
    ACTION_ROUTES,
    AUTHORIZER_IDENTITY_SOURCE,
    ROUTE_SELECTION_EXPRESSION,
    SYSTEM_ROUTES,
    TWO_WAY_ROUTES,
)
from tests.infra.infra_helpers import api_resources, function_id, ref_id, resources_of


def _routes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        route["Properties"]["RouteKey"]: {"id": rid, **route["Properties"]}
        for rid, route in api_resources(template, "AWS::ApiGatewayV2::Route", "WEBSOCKET").items()
    }


def test_protocol_v1_routes_exist_and_select_on_the_action_field(default_json: dict[str, Any]) -> None:
    (api,) = [
        a
        for a in resources_of(default_json, "AWS::ApiGatewayV2::Api").values()
        if "RouteSelectionExpression" in a["Properties"]
    ]
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert (
        api["Properties"]["RouteSelectionExpression"] == ROUTE_SELECTION_EXPRESSION == "$request.body.action"
    )
    assert set(_routes(default_json)) == {*SYSTEM_ROUTES, *ACTION_ROUTES}


def test_every_route_targets_the_ingress_function(default_json: dict[str, Any]) -> None:
    ingress = function_id(default_json, "ingress")
    integrations = api_resources(default_json, "AWS::ApiGatewayV2::Integration", "WEBSOCKET")
    for route in _routes(default_json).values():
        integration = integrations[ref_id(route["Target"]["Fn::Join"][1][1])]
        assert integration["Properties"]["IntegrationType"] == "AWS_PROXY"
        uri = json.dumps(integration["Properties"]["IntegrationUri"])
        assert ingress in uri


def test_the_authorizer_runs_on_connect_only_with_the_token_query_parameter(
    default_json: dict[str, Any],
) -> None:
    (authorizer_id, authorizer), *_ = resources_of(default_json, "AWS::ApiGatewayV2::Authorizer").items()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "REQUEST"
    assert props["IdentitySource"] == [AUTHORIZER_IDENTITY_SOURCE] == ["route.request.querystring.token"]
    assert function_id(default_json, "authorizer") in json.dumps(props["AuthorizerUri"])
    for key, route in _routes(default_json).items():
        if key == "$connect":
            assert route["AuthorizationType"] == "CUSTOM"
            assert ref_id(route["AuthorizerId"]) == authorizer_id
        else:
            assert route["AuthorizationType"] == "NONE"
            assert "AuthorizerId" not in route


def test_two_way_routes_send_the_ingress_reply_back(default_json: dict[str, Any]) -> None:
    routes = _routes(default_json)
    responses = {
        ref_id(r["Properties"]["RouteId"]): r["Properties"]
        for r in resources_of(default_json, "AWS::ApiGatewayV2::RouteResponse").values()
    }
    # The ack is sendmessage's route response (docs/protocol.md): it must be a two-way route.
    assert "sendmessage" in TWO_WAY_ROUTES and routes["sendmessage"]["id"] in responses
    for key, route in routes.items():
        if key in TWO_WAY_ROUTES:
            assert route["RouteResponseSelectionExpression"] == "$default"
            assert responses[route["id"]]["RouteResponseKey"] == "$default"
        else:
            assert route["id"] not in responses


def test_the_stage_is_throttled_logged_and_measured(default_json: dict[str, Any]) -> None:
    (stage,) = api_resources(default_json, "AWS::ApiGatewayV2::Stage", "WEBSOCKET").values()
    props = stage["Properties"]
    assert props["StageName"] == "dev"
    assert props["AutoDeploy"] is True
    settings = props["DefaultRouteSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (1000, 2000)
    assert settings["DetailedMetricsEnabled"] is True
    assert settings["DataTraceEnabled"] is False  # never log message payloads
    log_group = default_json["Resources"][ref_id(props["AccessLogSettings"]["DestinationArn"])]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == 30
    access_format = json.loads(props["AccessLogSettings"]["Format"])
    assert {"$context.requestId", "$context.connectionId", "$context.routeKey", "$context.status"} <= set(
        access_format.values()
    )


def test_the_stage_waits_for_the_account_logging_role(default_json: dict[str, Any]) -> None:
    (account_id, account), *_ = resources_of(default_json, "AWS::ApiGateway::Account").items()
    assert account["DeletionPolicy"] == "Retain"
    role = default_json["Resources"][ref_id(account["Properties"]["CloudWatchRoleArn"])]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"
    }
    (stage,) = api_resources(default_json, "AWS::ApiGatewayV2::Stage", "WEBSOCKET").values()
    assert account_id in stage["DependsOn"]


def test_outputs_give_the_urls_secret_and_dlq(default_json: dict[str, Any]) -> None:
    outputs = default_json["Outputs"]
    assert {"WebSocketUrl", "ManagementApiUrl", "JwtSecretArn", "DeadLetterQueueUrl"} <= set(outputs)
    wss = json.dumps(outputs["WebSocketUrl"]["Value"])
    assert "wss://" in wss and "/dev" in wss
    management = outputs["ManagementApiUrl"]["Value"]["Fn::Join"][1]
    assert management[0] == "https://" and management[-1] == "/dev"
    assert "CloudFrontUrl" not in outputs
