"""Least privilege: the exact statements each function's role gets, in one readable table.

The actions mirror the calls in functions/chat (store, queue, gateway, auth): a new boto3 call
there needs a line here, and tests/infra/test_access.py pins every statement.
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

from functions.chat.schema import CONNECTIONS, MESSAGES, ROOMS
from stacks.api import WebSocketApi
from stacks.functions import AUTHORIZER, FANOUT, INGRESS, JANITOR, REDRIVER, Functions

ITEM_WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")

# Table actions per function and table (logical names from functions.chat.schema).
TABLE_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    INGRESS.name: {
        # connect, touch, the join transaction, $disconnect's prune
        CONNECTIONS.logical_name: ("dynamodb:GetItem", *ITEM_WRITE),
        # counters, shard directory, presence, claims; leave; list_shards, online_users;
        # memberships and user connections (Query), `rooms` (BatchGetItem of META items)
        ROOMS.logical_name: ("dynamodb:GetItem", *ITEM_WRITE, "dynamodb:Query", "dynamodb:BatchGetItem"),
        # `rooms` reads each room's latest message with BatchGetItem; changes get and rewrite the
        # message, recovery batch-gets the changed ones
        MESSAGES.logical_name: (
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
        ),
    },
    FANOUT.name: {
        # a 410's prune: get_connection, delete_connection_item
        CONNECTIONS.logical_name: ("dynamodb:GetItem", "dynamodb:DeleteItem"),
        # shard_members, list_shards; the prune's leave transaction (Update/Delete only)
        ROOMS.logical_name: ("dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
    },
    JANITOR.name: {
        CONNECTIONS.logical_name: ("dynamodb:Scan", "dynamodb:GetItem", "dynamodb:DeleteItem"),
        # the resume cursor (get/put), list_shards, the prune's leave transaction
        ROOMS.logical_name: (
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ),
    },
}
# HTTP methods on @connections/{id} each function calls through the Management API.
CONNECTION_METHODS: dict[str, tuple[str, ...]] = {
    INGRESS.name: (),  # its replies (the ack included) are route responses, never posts
    FANOUT.name: ("POST",),
    JANITOR.name: ("GET", "DELETE"),
}
# Queues each function sends to ("queue" = fan-out queue, "dlq" = its dead-letter queue,
# "parked" = what outlived auto-redrive).
SENDS_TO: dict[str, tuple[str, ...]] = {
    INGRESS.name: ("queue",),
    FANOUT.name: ("queue", "dlq"),
    JANITOR.name: ("queue",),
    REDRIVER.name: ("queue", "parked"),
}
# What an SQS event source mapping does with its queue on the function's behalf.
EVENT_SOURCE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
# The fan-out's lease on the records it works on (functions/chat/lease.py).
LEASE_ACTIONS = ("sqs:ChangeMessageVisibility",)
# The data key as DynamoDB and SQS use it for a caller (no wildcard actions such as GenerateDataKey*).
DATA_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")


@dataclass(frozen=True)
class Resources:
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


def _statement(
    actions: Sequence[str], resources: Sequence[str], **conditions: Mapping[str, object]
) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=list(actions),
        resources=list(resources),
        conditions={key: dict(value) for key, value in conditions.items()} or None,
    )


def grant_least_privilege(scope: Construct, functions: Functions, resources: Resources) -> None:
    """Attach each function's statements to its own role (nothing else is ever granted)."""
    region = Stack.of(scope).region
    via_data_services = {
        "kms:ViaService": [f"dynamodb.{region}.amazonaws.com", f"sqs.{region}.amazonaws.com"]
    }
    queues = {"queue": resources.queue, "dlq": resources.dead_letter_queue, "parked": resources.parked_queue}

    authorizer = functions.roles[AUTHORIZER.name]
    secrets = [resources.secret, *([resources.origin_secret] if resources.origin_secret else [])]
    authorizer.add_to_principal_policy(
        _statement(["secretsmanager:GetSecretValue"], [secret.secret_arn for secret in secrets])
    )
    authorizer.add_to_principal_policy(
        _statement(
            ["kms:Decrypt"],
            [resources.secret_key.key_arn],
            StringEquals={"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"},
        )
    )

    for name in (INGRESS.name, FANOUT.name, JANITOR.name):
        role = functions.roles[name]
        for table_name, actions in TABLE_ACTIONS[name].items():
            role.add_to_principal_policy(_statement(actions, [resources.tables[table_name].table_arn]))
        role.add_to_principal_policy(
            _statement(["sqs:SendMessage"], [queues[queue].queue_arn for queue in SENDS_TO[name]])
        )
        if CONNECTION_METHODS[name]:
            role.add_to_principal_policy(
                _statement(
                    ["execute-api:ManageConnections"],
                    [resources.api.connections_arn(method) for method in CONNECTION_METHODS[name]],
                )
            )
        role.add_to_principal_policy(
            _statement(DATA_KEY_ACTIONS, [resources.data_key.key_arn], StringEquals=via_data_services)
        )

    functions.roles[FANOUT.name].add_to_principal_policy(
        _statement(EVENT_SOURCE_ACTIONS + LEASE_ACTIONS, [resources.queue.queue_arn])
    )
    redriver = functions.roles[REDRIVER.name]
    redriver.add_to_principal_policy(
        _statement(["sqs:SendMessage"], [queues[queue].queue_arn for queue in SENDS_TO[REDRIVER.name]])
    )
    redriver.add_to_principal_policy(
        _statement(EVENT_SOURCE_ACTIONS, [resources.dead_letter_queue.queue_arn])
    )
    redriver.add_to_principal_policy(
        _statement(DATA_KEY_ACTIONS, [resources.data_key.key_arn], StringEquals=via_data_services)
    )
