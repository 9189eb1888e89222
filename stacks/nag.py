"""cdk-nag: the AwsSolutions and Serverless packs run on every synth (reports into cdk.out), and
every finding accepted here names the resource, the rule and why the rule does not fit.

A finding that is not suppressed below fails `make synth` and tests/infra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import App, Aspects
from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions, RegexAppliesTo, ServerlessChecks
from constructs import IConstruct

from functions.chat.schema import ACTION_ROUTES

if TYPE_CHECKING:
    from stacks.stack import DynamoWaveStack

NAG_PACK_PREFIXES = ("AwsSolutions-", "Serverless-")


def apply_nag_packs(app: App) -> None:
    for pack in (
        AwsSolutionsChecks(reports=True, verbose=True),
        ServerlessChecks(reports=True, verbose=True),
    ):
        Aspects.of(app).add(pack)


def _suppress(construct: IConstruct, rule: str, reason: str, *applies_to: str | RegexAppliesTo) -> None:
    NagSuppressions.add_resource_suppressions(
        construct,
        [NagPackSuppression(id=rule, reason=reason, applies_to=list(applies_to) or None)],
        apply_to_children=True,
    )


XRAY_REASON = (
    "Only the X-Ray statement has Resource '*': xray:PutTraceSegments and xray:PutTelemetryRecords "
    "support no resource-level permissions (active tracing needs them). Every data statement names "
    "its table, queue, key or secret ARN."
)
CONNECTIONS_REASON = (
    "execute-api:ManageConnections is scoped to this API, this stage and one HTTP method on "
    "@connections; the trailing '*' is the connection id, which API Gateway assigns at connect time."
)
CONNECTIONS_ARN = RegexAppliesTo(
    # The partition is a literal ("aws") with @aws-cdk/core:enablePartitionLiterals and a known region.
    regex=r"/^Resource::arn:(<AWS::Partition>|aws):execute-api:.*\/@connections\/\*$/g"
)
OPERATOR_ROUTES_REASON = (
    "The operator's policy names each operator API route by method and path on the $default stage; "
    "each '*' stands for one path parameter (a room, a user, a seq), which the operator chooses per call."
)
OPERATOR_ROUTE_ARN = RegexAppliesTo(
    regex=r"/^Resource::arn:(<AWS::Partition>|aws):execute-api:.*\/\$default\/.*$/g"
)
NO_ROUTE_AUTHORIZER = (
    "WebSocket APIs accept an authorizer on $connect only; this route runs on a connection the "
    "$connect REQUEST authorizer (JWT) already admitted, and the ingress reads the user id from that "
    "authorizer's context, never from the frame."
)


def suppress_justified_findings(stack: DynamoWaveStack) -> None:
    functions = stack.functions
    for role in functions.roles.values():
        _suppress(role, "AwsSolutions-IAM5", XRAY_REASON, "Resource::*")
        _suppress(role, "AwsSolutions-IAM5", CONNECTIONS_REASON, CONNECTIONS_ARN)

    _suppress(
        functions.authorizer,
        "Serverless-LambdaDLQ",
        "Invoked synchronously by API Gateway on $connect: there is no asynchronous event to dead-letter "
        "(a failure refuses the handshake).",
    )
    _suppress(
        functions.ingress,
        "Serverless-LambdaDLQ",
        "Invoked synchronously by API Gateway for every route: the client gets the error; there is no "
        "asynchronous event to dead-letter.",
    )
    _suppress(
        functions.operator,
        "Serverless-LambdaDLQ",
        "Invoked synchronously by the operator HTTP API: the caller gets the status and error body; "
        "there is no asynchronous event to dead-letter.",
    )
    _suppress(
        functions.fanout,
        "Serverless-LambdaDLQ",
        "Invoked by an SQS event source mapping, not asynchronously: failed jobs reach the fan-out DLQ "
        "through the queue's redrive policy (maxReceiveCount), which is alarmed.",
    )
    _suppress(
        stack.fanout_source,
        "Serverless-LambdaEventSourceMappingDestination",
        "On-failure destinations exist for stream and Kafka sources only; for SQS the queue's redrive "
        "policy is the failure destination (the alarmed fan-out DLQ).",
    )
    janitor_reason = (
        "The janitor's only asynchronous caller is its schedule, whose event carries no data: a failed run "
        "is repeated by the next tick, resumes from its cursor, and raises the JanitorErrors alarm; "
        "DynamoDB TTL is the backstop."
    )
    _suppress(functions.janitor, "Serverless-LambdaDLQ", janitor_reason)
    _suppress(functions.janitor, "Serverless-LambdaAsyncFailureDestination", janitor_reason)
    _suppress(stack.schedules.janitor_rule, "Serverless-EventBusDLQ", janitor_reason)
    if stack.schedules.warmer_rule is not None:
        _suppress(
            stack.schedules.warmer_rule,
            "Serverless-EventBusDLQ",
            "Warm-up pings carry no data; a missed ping costs one cold start, not a message.",
        )

    _suppress(
        stack.messaging.parked_queue,
        "Serverless-SQSRedrivePolicy",
        "This is the last stop (the DLQ's redrive target, for what outlived auto-redrive); its messages "
        "are alarmed, inspected and redriven by an operator (dynamowave redrive --parked), not "
        "dead-lettered again.",
    )
    _suppress(
        functions.redriver,
        "Serverless-LambdaDLQ",
        "Invoked by the DLQ's SQS event source mapping, not asynchronously: a dead letter it fails on "
        "returns to the DLQ, whose redrive policy parks it after 10 receives (alarmed).",
    )
    _suppress(
        stack.redrive_source,
        "Serverless-LambdaEventSourceMappingDestination",
        "On-failure destinations exist for stream and Kafka sources only; for SQS the DLQ's redrive "
        "policy is the failure destination (the alarmed parked queue).",
    )
    _suppress(
        stack.secret.secret,
        "AwsSolutions-SMG4",
        "HS256 signing key for chat tokens: rotating it on a schedule would invalidate every token in "
        "flight at once, and Secrets Manager has no rotation template for it. Rotate deliberately with "
        "put-secret-value (docs/deploy.md).",
    )
    for route_key in ("$disconnect", "$default", *ACTION_ROUTES):
        route = stack.api.api.node.find_child(f"{route_key}-Route")
        _suppress(route, "AwsSolutions-APIG4", NO_ROUTE_AUTHORIZER)

    if stack.monitoring.email_subscription is not None:
        _suppress(
            stack.monitoring.email_subscription,
            "Serverless-SNSRedrivePolicy",
            "An e-mail copy of an alarm state change: an undeliverable e-mail loses no data, the alarm's "
            "state and history stay in CloudWatch.",
        )
    if stack.edge is not None:
        _suppress(
            stack.edge.origin_secret,
            "AwsSolutions-SMG4",
            "The origin header value lives in CloudFront's origin configuration; Secrets Manager cannot "
            "update the distribution, so a scheduled rotation would lock every client out until the "
            "next deploy. It guards only the path around CloudFront; tokens still decide who connects.",
        )
        distribution = stack.edge.distribution
        _suppress(
            distribution,
            "AwsSolutions-CFR1",
            "A chat service open to any country; the WAF web ACL blocks anonymising and low-reputation "
            "IPs, and tokens decide who may connect.",
        )
        _suppress(
            distribution,
            "AwsSolutions-CFR3",
            "Every viewer request here is one WebSocket upgrade, which the API stage's access log already "
            "records (source IP, user, status); WAF keeps sampled requests and metrics per rule.",
        )
        _suppress(
            distribution,
            "AwsSolutions-CFR4",
            "The distribution uses the default *.cloudfront.net certificate, whose security policy "
            "CloudFront fixes; a custom domain with an ACM certificate (TLSv1.2_2021) is a deployment choice "
            "outside this stack.",
        )

    _suppress(
        stack.operator_api.invoke_policy, "AwsSolutions-IAM5", OPERATOR_ROUTES_REASON, OPERATOR_ROUTE_ARN
    )

    logging_role = stack.api.node.try_find_child("ApiGatewayCloudWatchRole")
    if logging_role is not None:
        _suppress(
            logging_role,
            "AwsSolutions-IAM4",
            "API Gateway's account-level CloudWatch role: AWS documents this managed policy for it, and "
            "API Gateway (not our code) writes the stage's access and execution logs with it.",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
        )
