"""The DynamoWave stack: a thin composition of one construct per concern."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Stack
from constructs import Construct

from functions.chat.schema import CONNECTIONS, FANOUT_VISIBILITY_TIMEOUT_SECONDS, MESSAGES, ROOMS
from functions.chat.settings import ENV, FUNCTION_RESOURCES
from stacks.access import StackResources, grant_least_privilege
from stacks.api import WebSocketApi
from stacks.config import DeploymentConfig
from stacks.edge import Edge
from stacks.functions import Functions
from stacks.messaging import Messaging
from stacks.monitoring import MonitoredResources, Monitoring
from stacks.operator_api import OperatorApi
from stacks.schedules import Schedules
from stacks.secrets import JwtSecret
from stacks.storage import Storage


class DynamoWaveStack(Stack):
    def __init__(self, scope: Construct, *, config: DeploymentConfig) -> None:
        super().__init__(
            scope,
            config.stack_name,
            # An explicit region: customer-managed keys on TableV2 and the edge's WAF need one.
            env=Environment(account=config.account, region=config.region),
            description=f"DynamoWave serverless WebSocket chat ({config.stage})",
        )
        self.config = config
        self.storage = Storage(self, "Storage", config=config)
        self.messaging = Messaging(
            self,
            "Messaging",
            config=config,
            key=self.storage.key,
            visibility_timeout=Duration.seconds(FANOUT_VISIBILITY_TIMEOUT_SECONDS),
        )
        self.secret = JwtSecret(self, "JwtSecret", config=config)

        # Each function's resource variables, from the one definition the local runtime also uses.
        resources = {
            ENV.CONNECTIONS_TABLE: self.storage.table(CONNECTIONS).table_name,
            ENV.ROOMS_TABLE: self.storage.table(ROOMS).table_name,
            ENV.MESSAGES_TABLE: self.storage.table(MESSAGES).table_name,
            ENV.FANOUT_QUEUE_URL: self.messaging.queue.queue_url,
            ENV.FANOUT_DLQ_URL: self.messaging.dead_letter_queue.queue_url,
            ENV.FANOUT_PARKED_URL: self.messaging.parked_queue.queue_url,
            ENV.JWT_SECRET_ARN: self.secret.secret.secret_arn,
            ENV.FANOUT_VISIBILITY_SECONDS: str(FANOUT_VISIBILITY_TIMEOUT_SECONDS),
            ENV.REDRIVE_BASE_DELAY_SECONDS: str(config.redrive_base_delay_seconds),
            ENV.REDRIVE_MAX_AGE_SECONDS: str(config.redrive_max_age_seconds),
        }
        if config.review_function_arn:  # reviewFunctionArn: the ingress invokes it (and may)
            resources[ENV.REVIEW_FUNCTION_ARN] = config.review_function_arn
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            environments={
                name: {variable: resources[variable] for variable in variables if variable in resources}
                for name, variables in FUNCTION_RESOURCES.items()
            },
        )
        self.api = WebSocketApi(
            self,
            "WebSocket",
            config=config,
            ingress=self.functions.ingress,
            authorizer=self.functions.authorizer,
        )
        self.operator_api = OperatorApi(self, "OperatorApi", config=config, operator=self.functions.operator)
        for name, variables in FUNCTION_RESOURCES.items():
            if ENV.MANAGEMENT_API_ENDPOINT in variables:  # known once the API exists
                self.functions[name].add_environment(
                    ENV.MANAGEMENT_API_ENDPOINT, self.api.management_endpoint
                )
        self.edge = (
            Edge(
                self,
                "Edge",
                config=config,
                api_domain_name=self.api.domain_name,
                secret_key=self.secret.key,
            )
            if config.edge
            else None
        )
        if self.edge is not None:
            # The authorizer refuses handshakes that did not come through CloudFront.
            self.functions.authorizer.add_environment(
                ENV.ORIGIN_SECRET_ARN, self.edge.origin_secret.secret_arn
            )

        grant_least_privilege(
            self,
            self.functions,
            StackResources(
                tables=self.storage.tables,
                data_key=self.storage.key,
                queue=self.messaging.queue,
                dead_letter_queue=self.messaging.dead_letter_queue,
                parked_queue=self.messaging.parked_queue,
                secret=self.secret.secret,
                secret_key=self.secret.key,
                api=self.api,
                origin_secret=None if self.edge is None else self.edge.origin_secret,
                review_function_arn=config.review_function_arn,
            ),
        )
        self.fanout_source = self.functions.fanout.add_event_source_mapping(
            "FanoutJobs",
            event_source_arn=self.messaging.queue.queue_arn,
            batch_size=config.fanout_batch_size,
            max_batching_window=Duration.seconds(config.fanout_max_batching_window_seconds),
            max_concurrency=config.fanout_max_concurrency,
            # Failed records go back to the queue alone; the rest of the batch is deleted.
            report_batch_item_failures=True,
        )
        # Auto-redrive: every dead letter goes to the redriver, which puts it back with a growing
        # delay or parks it (functions/chat/domain/redrive.py).
        self.redrive_source = self.functions.redriver.add_event_source_mapping(
            "DeadLetters",
            event_source_arn=self.messaging.dead_letter_queue.queue_arn,
            batch_size=10,
            max_concurrency=2,
            report_batch_item_failures=True,
        )
        self.schedules = Schedules(
            self,
            "Schedules",
            config=config,
            janitor=self.functions.janitor,
            warm=(self.functions.ingress, self.functions.authorizer),
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            resources=MonitoredResources(
                api_id=self.api.api.api_id,
                stage=config.stage,
                ingress=self.functions.ingress,
                fanout=self.functions.fanout,
                janitor=self.functions.janitor,
                authorizer=self.functions.authorizer,
                redriver=self.functions.redriver,
                operator=self.functions.operator,
                operator_api=self.operator_api.stage,
                queue=self.messaging.queue,
                dead_letter_queue=self.messaging.dead_letter_queue,
                parked_queue=self.messaging.parked_queue,
            ),
        )
        self._outputs()

    def _outputs(self) -> None:
        CfnOutput(self, "WebSocketUrl", value=self.api.url, description="wss:// URL for clients (?token=JWT)")
        CfnOutput(
            self,
            "ManagementApiUrl",
            value=self.api.management_endpoint,
            description="API Gateway Management API endpoint (@connections)",
        )
        CfnOutput(
            self,
            "OperatorApiUrl",
            value=self.operator_api.url,
            description="Operator API (SigV4): dynamowave admin ... --url URL (docs/operator-api.md)",
        )
        CfnOutput(
            self,
            "OperatorInvokePolicyArn",
            value=self.operator_api.invoke_policy.managed_policy_arn,
            description="Managed policy allowing execute-api:Invoke on every operator API route",
        )
        CfnOutput(
            self,
            "JwtSecretArn",
            value=self.secret.secret.secret_arn,
            description="Secrets Manager secret that signs tokens: dynamowave token USER --secret-arn ARN",
        )
        CfnOutput(
            self,
            "DeadLetterQueueUrl",
            value=self.messaging.dead_letter_queue.queue_url,
            description="Fan-out dead-letter queue (redriven automatically)",
        )
        CfnOutput(
            self,
            "ParkedQueueUrl",
            value=self.messaging.parked_queue.queue_url,
            description="Dead letters that outlived auto-redrive (alarmed; dynamowave redrive --parked)",
        )
        CfnOutput(
            self, "FanoutQueueUrl", value=self.messaging.queue.queue_url, description="Fan-out job queue"
        )
        CfnOutput(
            self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn, description="Alarm notifications"
        )
        CfnOutput(
            self,
            "DashboardName",
            value=self.monitoring.dashboard.dashboard_name,
            description="CloudWatch dashboard",
        )
        if self.edge is not None:
            CfnOutput(
                self,
                "CloudFrontUrl",
                value=self.edge.url,
                description="wss:// URL through CloudFront and WAF",
            )
