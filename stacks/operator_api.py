"""OperatorApi: the operator API (docs/operator-api.md) as an API Gateway HTTP API.

Every route requires IAM authorization: API Gateway verifies the caller's SigV4 signature and
that its policy allows ``execute-api:Invoke`` on the route's ARN before the operator function
runs; unsigned or wrongly signed calls get 403 and invoke nothing. The routes are the operator
handler's own (functions/operator/handler.py ``routes()``), so a route added there is served
here and under the local ``/admin`` alike. One ``$default`` stage (no stage prefix in the path,
as under ``/admin``), throttled and access-logged like the WebSocket stage.
"""

from __future__ import annotations

import re

from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.operator.handler import routes
from stacks.api import REQUEST_LOG_FIELDS, access_log_group, log_access
from stacks.config import DeploymentConfig

DEFAULT_STAGE = "$default"
PATH_PARAMETER = re.compile(r"\{[^}]+\}")
# One JSON line per call (HTTP API $context variables): who called (the IAM principal), what,
# and how it ended.
ACCESS_LOG_FORMAT: dict[str, str] = {
    **REQUEST_LOG_FIELDS,
    "caller": "$context.identity.userArn",
    "accessKey": "$context.identity.accessKey",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "error": "$context.error.message",
    "integrationError": "$context.integrationErrorMessage",
}


class OperatorApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        operator: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=f"dynamowave-{config.stage}-operator",
            description=f"DynamoWave {config.stage}: operator API (IAM-authorized, SigV4)",
            default_authorizer=authorizers.HttpIamAuthorizer(),
            create_default_stage=False,
        )
        # Payload format 2.0, which the handler's APIGatewayHttpResolver reads.
        integration = integrations.HttpLambdaIntegration("Operator", operator)
        self.routes: dict[str, apigwv2.HttpRoute] = {}
        for method, path in routes():
            (route,) = self.api.add_routes(
                path=path, methods=[apigwv2.HttpMethod[method]], integration=integration
            )
            self.routes[f"{method} {path}"] = route

        self.access_logs = access_log_group(self, config)
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name=DEFAULT_STAGE,
            auto_deploy=True,
            detailed_metrics_enabled=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.operator_throttle_rate_limit,
                burst_limit=config.operator_throttle_burst_limit,
            ),
        )
        log_access(self.stage, self.access_logs, ACCESS_LOG_FORMAT)
        self.url = self.stage.url  # https://{apiId}.execute-api.{region}.{suffix}/
        # What an operator's role or user needs: execute-api:Invoke on each route (docs/deploy.md,
        # moderating a deployed stage). Attach it, or copy it with fewer routes.
        self.invoke_policy = iam.ManagedPolicy(
            self,
            "InvokePolicy",
            description=f"DynamoWave {config.stage}: call every route of the operator API",
            statements=[
                iam.PolicyStatement(
                    actions=["execute-api:Invoke"],
                    resources=[self.route_arn(method, path) for method, path in routes()],
                )
            ],
        )

    def route_arn(self, method: str, path: str) -> str:
        """The execute-api:Invoke resource of one route, any value of its path parameters."""
        return self.api.arn_for_execute_api(method, PATH_PARAMETER.sub("*", path), DEFAULT_STAGE)
