"""Monitoring: an encrypted SNS topic, the alarms that say the pipeline is losing or failing
deliveries, and one dashboard that shows the whole path (API -> ingress -> queue -> fanout)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.chat.settings import METRICS_NAMESPACE, metric_dimensions
from stacks.config import DeploymentConfig

FIVE_MINUTES = Duration.minutes(5)
ONE_MINUTE = Duration.minutes(1)
# Custom metrics the functions emit (Powertools EMF, dimensions metric_dimensions(stage)).
EMF_METRICS = ("DeadLettered", "Redriven", "DeliveriesParked", "Gone", "Retries")


@dataclass(frozen=True)
class MonitoredResources:
    api_id: str
    stage: str
    ingress: lambda_.IFunction
    fanout: lambda_.IFunction
    janitor: lambda_.IFunction
    authorizer: lambda_.IFunction
    redriver: lambda_.IFunction
    operator: lambda_.IFunction
    operator_api: apigwv2.HttpStage  # the operator API's $default stage
    queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue
    parked_queue: sqs.IQueue


class Monitoring(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, resources: MonitoredResources
    ) -> None:
        super().__init__(scope, construct_id)
        self._resources = resources
        # The functions of this stage emit with exactly these dimensions (functions/chat/observability.py).
        self._emf_dimensions = metric_dimensions(config.stage)
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"DynamoWave {config.stage}: alarm notifications",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # CloudWatch publishes to an encrypted topic only if its service principal may use the key
        # (the AWS-managed aws/sns key cannot grant that): the statement AWS documents for alarms.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" means this key
            )
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"DynamoWave {config.stage} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        # enforce_ssl writes a topic policy, which replaces SNS's default one: without this Allow
        # no alarm could publish (its notifications would fail silently). Only this account's
        # alarms may use it.
        stack = Stack.of(self)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
                    },
                },
            )
        )
        self.email_subscription: sns.Subscription | None = None
        if config.alarm_email:
            self.email_subscription = sns.Subscription(
                self,
                "AlarmEmail",
                topic=self.topic,
                protocol=sns.SubscriptionProtocol.EMAIL,
                endpoint=config.alarm_email,
            )

        api_dimensions = {"ApiId": resources.api_id, "Stage": resources.stage}
        self.alarms: dict[str, cloudwatch.Alarm] = {
            # Dead letters are redriven automatically; only what outlives auto-redrive pages.
            "ParkedQueueDepth": self._alarm(
                "ParkedQueueDepth",
                resources.parked_queue.metric_approximate_number_of_messages_visible(
                    period=ONE_MINUTE, statistic="Maximum"
                ),
                threshold=0,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                description="Deliveries outlived auto-redrive (redriveMaxAge) or were poison records. "
                "Fix the cause, then dynamowave redrive --parked.",
            ),
            "RedriverErrors": self._function_alarm(
                "RedriverErrors", resources.redriver.metric_errors(period=FIVE_MINUTES)
            ),
            "FanoutBacklog": self._alarm(
                "FanoutBacklog",
                resources.queue.metric_approximate_age_of_oldest_message(
                    period=ONE_MINUTE, statistic="Maximum"
                ),
                threshold=60,
                evaluation_periods=5,
                description="The oldest fan-out job waited over a minute for 5 minutes: delivery is behind.",
            ),
            "FanoutErrors": self._function_alarm(
                "FanoutErrors", resources.fanout.metric_errors(period=FIVE_MINUTES)
            ),
            "FanoutThrottles": self._function_alarm(
                "FanoutThrottles", resources.fanout.metric_throttles(period=FIVE_MINUTES)
            ),
            "IngressErrors": self._function_alarm(
                "IngressErrors", resources.ingress.metric_errors(period=FIVE_MINUTES)
            ),
            "IngressThrottles": self._function_alarm(
                "IngressThrottles", resources.ingress.metric_throttles(period=FIVE_MINUTES)
            ),
            "JanitorErrors": self._function_alarm(
                "JanitorErrors", resources.janitor.metric_errors(period=FIVE_MINUTES)
            ),
            # The redriver's own EMF count: fires within the minute a dead letter is parked, before
            # the parked queue's depth metric (sampled) catches up.
            "DeliveriesParked": self._alarm(
                "DeliveriesParked",
                cloudwatch.Metric(
                    namespace=METRICS_NAMESPACE,
                    metric_name="DeliveriesParked",
                    dimensions_map=self._emf_dimensions,
                    statistic="Sum",
                    period=ONE_MINUTE,
                ),
                threshold=1,
                description="The redriver parked dead letters that outlived auto-redrive (EMF DeliveriesParked). "
                "The reason is in each parked message; fix the cause, then dynamowave redrive --parked.",
            ),
            "ApiIntegrationErrors": self._alarm(
                "ApiIntegrationErrors",
                self._api_metric("IntegrationError", api_dimensions),
                threshold=10,
                description="API Gateway got 10+ error responses from the ingress integration in 5 minutes.",
            ),
            "ApiExecutionErrors": self._alarm(
                "ApiExecutionErrors",
                self._api_metric("ExecutionError", api_dimensions),
                threshold=1,
                description="API Gateway failed to call an integration or authorizer (its 5xx).",
            ),
            # The operator API, alarmed as the WebSocket API: its function's failures and
            # throttles, and any 5xx its stage answered (a failed or timed-out integration, or
            # the handler's own `internal`). 4xx are the caller's (unsigned, refused, throttled).
            "OperatorErrors": self._function_alarm(
                "OperatorErrors", resources.operator.metric_errors(period=FIVE_MINUTES)
            ),
            "OperatorThrottles": self._function_alarm(
                "OperatorThrottles", resources.operator.metric_throttles(period=FIVE_MINUTES)
            ),
            "OperatorApiServerErrors": self._alarm(
                "OperatorApiServerErrors",
                resources.operator_api.metric_server_error(period=FIVE_MINUTES, statistic="Sum"),
                threshold=1,
                description="The operator API answered 5xx in the last 5 minutes (its access log has "
                "the route, the caller and the integration error).",
            ),
        }
        self.dashboard = self._dashboard(config, api_dimensions)

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=comparison,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        action = cw_actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        return alarm

    def _function_alarm(self, name: str, metric: cloudwatch.Metric) -> cloudwatch.Alarm:
        return self._alarm(
            name,
            metric,
            threshold=1,
            description=f"{name}: any unhandled error or throttle of this function in 5 minutes "
            "(frame-level errors are answered to clients and are not Lambda errors).",
        )

    @staticmethod
    def _api_metric(name: str, dimensions: dict[str, str]) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=name,
            dimensions_map=dimensions,
            period=FIVE_MINUTES,
            statistic="Sum",
        )

    def _dashboard(self, config: DeploymentConfig, api_dimensions: dict[str, str]) -> cloudwatch.Dashboard:
        r = self._resources
        functions = (r.authorizer, r.ingress, r.fanout, r.janitor, r.redriver, r.operator)
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"DynamoWave-{config.stage}")
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=24, height=3
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API: connections and messages",
                left=[self._api_metric(name, api_dimensions) for name in ("ConnectCount", "MessageCount")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API: errors",
                left=[
                    self._api_metric(name, api_dimensions)
                    for name in ("ClientError", "IntegrationError", "ExecutionError")
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API: integration latency (p99)",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/ApiGateway",
                        metric_name="IntegrationLatency",
                        dimensions_map=api_dimensions,
                        statistic="p99",
                        period=ONE_MINUTE,
                    )
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda: invocations",
                left=[f.metric_invocations(period=ONE_MINUTE) for f in functions],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Lambda: errors and throttles",
                left=[f.metric_errors(period=ONE_MINUTE) for f in functions],
                right=[f.metric_throttles(period=ONE_MINUTE) for f in functions],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Lambda: duration p99",
                left=[f.metric_duration(period=ONE_MINUTE, statistic="p99") for f in functions],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Lambda: concurrency",
                left=[
                    f.metric("ConcurrentExecutions", period=ONE_MINUTE, statistic="Maximum")
                    for f in functions
                ],
                width=6,
            ),
        )
        operator_api = r.operator_api
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Operator API: calls, 4xx, 5xx",
                left=[operator_api.metric_count(period=ONE_MINUTE, statistic="Sum")],
                right=[
                    operator_api.metric_client_error(period=ONE_MINUTE, statistic="Sum"),
                    operator_api.metric_server_error(period=ONE_MINUTE, statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Operator API: latency and integration latency (p99)",
                left=[
                    operator_api.metric_latency(period=ONE_MINUTE, statistic="p99"),
                    operator_api.metric_integration_latency(period=ONE_MINUTE, statistic="p99"),
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Fan-out queue",
                left=[
                    r.queue.metric_approximate_number_of_messages_visible(period=ONE_MINUTE),
                    r.queue.metric_number_of_messages_sent(period=ONE_MINUTE),
                ],
                right=[r.queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queue (auto-redriven) and parked queue (alarmed) depth",
                left=[
                    r.dead_letter_queue.metric_approximate_number_of_messages_visible(period=ONE_MINUTE),
                    r.parked_queue.metric_approximate_number_of_messages_visible(period=ONE_MINUTE),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Delivery (EMF): dead-lettered, redriven, parked, gone, retries",
                left=[
                    cloudwatch.Metric(
                        namespace=METRICS_NAMESPACE,
                        metric_name=name,
                        dimensions_map=self._emf_dimensions,
                        statistic="Sum",
                        period=ONE_MINUTE,
                    )
                    for name in EMF_METRICS
                ],
                width=8,
            ),
        )
        return dashboard
