"""Functions: authorizer, ingress, fanout, janitor, redriver and operator, one role and one log
group each.

Every function runs the same asset (the ``functions`` package, see :mod:`stacks.bundling`) with
the AWS-managed Powertools layer, on arm64 with X-Ray active tracing. Permissions are not granted
here: :mod:`stacks.access` adds exactly the statements each function needs once the tables,
queues, secret and API exist.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from functions.chat.schema import (
    AUTHORIZER_FUNCTION,
    FANOUT_FUNCTION,
    FUNCTIONS,
    INGRESS_FUNCTION,
    JANITOR_FUNCTION,
    OPERATOR_FUNCTION,
    REDRIVER_FUNCTION,
)
from functions.chat.settings import ENV, METRICS_NAMESPACE, METRICS_SERVICE
from stacks.bundling import functions_code
from stacks.config import DeploymentConfig

# The newest Python runtime both aws-cdk-lib and the Powertools layer support.
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
# The functions' EMF metrics are published under this namespace and service dimension.
SERVICE_NAME = METRICS_SERVICE


def powertools_layer_arn(scope: Construct, version: int | None) -> str:
    """The AWS-managed Powertools v3 layer ARN for RUNTIME/ARCHITECTURE in the stack's region;
    ``None`` reads the newest one at deploy time from Powertools' public SSM parameter."""
    if version is None:
        return ssm.StringParameter.value_for_string_parameter(
            scope, f"/aws/service/powertools/python/{ARCHITECTURE.name}/{RUNTIME.name}/latest"
        )
    stack = Stack.of(scope)
    runtime = RUNTIME.name.replace(".", "")  # python3.14 -> python314
    return (
        f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{runtime}-{ARCHITECTURE.name}:{version}"
    )


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        environments: Mapping[str, Mapping[str, str]],
    ) -> None:
        """``environments`` maps a function name to the resource variables it reads."""
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        code = functions_code()
        layer = lambda_.LayerVersion.from_layer_version_arn(
            self, "PowertoolsLayer", powertools_layer_arn(self, config.powertools_layer_version)
        )
        reserved = {
            INGRESS_FUNCTION.name: config.ingress_reserved_concurrency,
            FANOUT_FUNCTION.name: config.fanout_reserved_concurrency,
        }
        self.functions: dict[str, lambda_.Function] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        self.roles: dict[str, iam.Role] = {}
        for spec in FUNCTIONS:
            prefix = spec.name.capitalize()
            log_group = logs.LogGroup(
                self,
                f"{prefix}Logs",
                retention=logs.RetentionDays[config.log_retention],
                removal_policy=removal,
            )
            # A role per function with no managed policies: logging, tracing and data access are
            # all explicit statements (see stacks.access).
            role = iam.Role(
                self,
                f"{prefix}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"DynamoWave {config.stage} {spec.name} function",
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                )
            )
            environment = {
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                # The stage dimension of every custom metric (functions.chat.settings.metric_dimensions).
                ENV.STAGE: config.stage,
                "LOG_LEVEL": "INFO",
                **config.function_environment,
                **environments.get(spec.name, {}),
            }
            function = lambda_.Function(
                self,
                prefix,
                description=f"DynamoWave {config.stage}: {spec.description}",
                code=code,
                handler=spec.handler,
                runtime=RUNTIME,
                architecture=ARCHITECTURE,
                layers=[layer],
                memory_size=spec.memory_mb,
                timeout=Duration.seconds(spec.timeout_seconds),
                tracing=lambda_.Tracing.ACTIVE,
                log_group=log_group,
                role=role,
                environment=environment,
                reserved_concurrent_executions=reserved.get(spec.name),
                # Chat traffic is synchronous (API Gateway) or comes from SQS, whose redrive policy
                # owns retries; the only asynchronous caller is EventBridge (the janitor's schedule).
                retry_attempts=0 if spec.name == JANITOR_FUNCTION.name else None,
            )
            self.functions[spec.name] = function
            self.log_groups[spec.name] = log_group
            self.roles[spec.name] = role

    def __getitem__(self, name: str) -> lambda_.Function:
        return self.functions[name]

    @property
    def authorizer(self) -> lambda_.Function:
        return self.functions[AUTHORIZER_FUNCTION.name]

    @property
    def ingress(self) -> lambda_.Function:
        return self.functions[INGRESS_FUNCTION.name]

    @property
    def fanout(self) -> lambda_.Function:
        return self.functions[FANOUT_FUNCTION.name]

    @property
    def janitor(self) -> lambda_.Function:
        return self.functions[JANITOR_FUNCTION.name]

    @property
    def redriver(self) -> lambda_.Function:
        return self.functions[REDRIVER_FUNCTION.name]

    @property
    def operator(self) -> lambda_.Function:
        return self.functions[OPERATOR_FUNCTION.name]
