"""Least privilege: the exact statements each function's role gets, from one readable table
(`stacks.grants`, which `dynamowave serve --iam` enforces locally too).

The actions mirror the calls in functions/chat (store, queue, gateway, auth): a new boto3 call
there needs a line in the table, and tests/infra/test_infra_access.py pins every statement.
TransactWriteItems and SendMessageBatch have no IAM actions of their own: they are authorised
per item by PutItem/UpdateItem/DeleteItem (no transaction here uses a ConditionCheck) and by
SendMessage. tests/iam derives what each function calls from the code and fails on any excess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.chat.schema import FUNCTIONS
from stacks.api import WebSocketApi
from stacks.functions import Functions
from stacks.grants import EVENT_SOURCE_ACTIONS, LEASE_ACTIONS, grants

# The data key as DynamoDB and SQS use it for a caller (no wildcard actions such as GenerateDataKey*).
DATA_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")


@dataclass(frozen=True)
class StackResources:
    tables: dict[str, dynamodb.TableV2]
    data_key: kms.IKey
    queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue
    parked_queue: sqs.IQueue
    secret: secretsmanager.ISecret
    secret_key: kms.IKey
    api: WebSocketApi
    # edge=true: the header value CloudFront sends (under secret_key too); None without an edge.
    origin_secret: secretsmanager.ISecret | None = None
    # The message review function the ingress invokes; None: no review, no grant.
    review_function_arn: str | None = None


def _statement(
    actions: Sequence[str], resources: Sequence[str], **conditions: Mapping[str, object]
) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=list(actions),
        resources=list(resources),
        conditions={key: dict(value) for key, value in conditions.items()} or None,
    )


def grant_least_privilege(scope: Construct, functions: Functions, resources: StackResources) -> None:
    """Attach each function's statements (`stacks.grants`) to its own role (nothing else is ever
    granted)."""
    region = Stack.of(scope).region
    via_data_services = {
        "kms:ViaService": [f"dynamodb.{region}.amazonaws.com", f"sqs.{region}.amazonaws.com"]
    }
    queues = {"queue": resources.queue, "dlq": resources.dead_letter_queue, "parked": resources.parked_queue}
    secrets = {"jwt": resources.secret, "origin": resources.origin_secret}
    invocable = {"review": resources.review_function_arn}

    for spec in FUNCTIONS:
        granted = grants(spec.name)
        role = functions.roles[spec.name]
        for table_name, actions in granted.tables.items():
            role.add_to_principal_policy(_statement(actions, [resources.tables[table_name].table_arn]))
        if granted.sends_to:
            role.add_to_principal_policy(
                _statement(["sqs:SendMessage"], [queues[queue].queue_arn for queue in granted.sends_to])
            )
        if granted.consumes:
            actions = EVENT_SOURCE_ACTIONS + (LEASE_ACTIONS if granted.leases else ())
            role.add_to_principal_policy(_statement(actions, [queues[granted.consumes].queue_arn]))
        if granted.connection_methods:
            role.add_to_principal_policy(
                _statement(
                    ["execute-api:ManageConnections"],
                    [resources.api.connections_arn(method) for method in granted.connection_methods],
                )
            )
        if granted.data_key:
            role.add_to_principal_policy(
                _statement(DATA_KEY_ACTIONS, [resources.data_key.key_arn], StringEquals=via_data_services)
            )
        readable = [secret for name in granted.secrets if (secret := secrets[name]) is not None]
        if readable:
            role.add_to_principal_policy(
                _statement(["secretsmanager:GetSecretValue"], [secret.secret_arn for secret in readable])
            )
            # Every secret is under the secret key (stacks.secrets).
            role.add_to_principal_policy(
                _statement(
                    ["kms:Decrypt"],
                    [resources.secret_key.key_arn],
                    StringEquals={"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"},
                )
            )
        arns = [arn for name in granted.invokes if (arn := invocable[name])]
        if arns:
            role.add_to_principal_policy(_statement(["lambda:InvokeFunction"], arns))
