"""What each function's role may do, as data: `stacks.access` turns it into IAM statements on
the stack's resources, and the local runtime (`dynamowave serve --iam`) enforces the same table
on the functions' calls (dynamowave/local/iam.py). No CDK import here, so the runtime can read it
without aws_cdk.

A function's row names resources by role, never by ARN: tables by their logical names
(`functions.chat.schema`), queues as "queue" (the fan-out queue), "dlq" (its dead-letter queue)
and "parked" (what outlived auto-redrive), secrets as "jwt" and "origin" (the edge's header,
granted only when the stack has an edge), invoked functions as "review" (the message review
function, granted only when one is configured). A function with no row has no grant at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from functions.chat.schema import CONNECTIONS, MESSAGES, ROOMS

ITEM_WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
# Messages are stored, rewritten by the lifecycle (never deleted), queried and batch-read.
MESSAGE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
)
# What an SQS event source mapping does with its queue on the function's behalf.
EVENT_SOURCE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
# A lease on the records a function works on (functions/chat/lease.py).
LEASE_ACTIONS = ("sqs:ChangeMessageVisibility",)
QUEUES: Final = ("queue", "dlq", "parked")
SECRETS: Final = ("jwt", "origin")
INVOCABLE: Final = ("review",)


@dataclass(frozen=True)
class Grants:
    """One function's grants: every AWS call its code makes, and nothing else."""

    # logical table name -> the DynamoDB actions on it
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sends_to: tuple[str, ...] = ()  # queues it sends to (SendMessage, SendMessageBatch)
    consumes: str | None = None  # the queue its event source mapping reads
    leases: bool = False  # renews the visibility of the records it consumes (LEASE_ACTIONS)
    connection_methods: tuple[str, ...] = ()  # HTTP methods on @connections/{id}
    secrets: tuple[str, ...] = ()  # secrets it reads (GetSecretValue)
    invokes: tuple[str, ...] = ()  # functions it invokes synchronously (lambda:InvokeFunction)

    @property
    def data_key(self) -> bool:
        """Whether it needs the data key: DynamoDB and SQS encrypt with it on its behalf."""
        return bool(self.tables or self.sends_to or self.consumes)


GRANTS: Final[Mapping[str, Grants]] = {
    # The JWT secret (and behind the edge, the origin header's secret).
    "authorizer": Grants(secrets=SECRETS),
    "ingress": Grants(
        tables={
            # connect, touch, the join transaction, $disconnect's prune
            CONNECTIONS.logical_name: ("dynamodb:GetItem", *ITEM_WRITE),
            # counters, shard directory, presence, claims; leave; list_shards, online_users;
            # memberships and user connections (Query), `rooms` (BatchGetItem of META items),
            # a join's ban and mute items (BatchGetItem)
            ROOMS.logical_name: ("dynamodb:GetItem", *ITEM_WRITE, "dynamodb:Query", "dynamodb:BatchGetItem"),
            # `rooms` reads each room's latest message with BatchGetItem; changes get and rewrite
            # the message, recovery batch-gets the changed ones
            MESSAGES.logical_name: MESSAGE_ACTIONS,
        },
        sends_to=("queue",),
        # Its replies (the ack included) are route responses, never posts: no @connections.
        invokes=("review",),
    ),
    "fanout": Grants(
        tables={
            # a 410's prune: get_connection, delete_connection_item
            CONNECTIONS.logical_name: ("dynamodb:GetItem", "dynamodb:DeleteItem"),
            # shard_members, list_shards; the prune's leave transaction (Update/Delete only)
            ROOMS.logical_name: ("dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        },
        sends_to=("queue", "dlq"),
        consumes="queue",
        leases=True,
        connection_methods=("POST",),
    ),
    "janitor": Grants(
        tables={
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
        sends_to=("queue",),
        connection_methods=("GET", "DELETE"),
    ),
    # Puts each dead letter back on the fan-out queue with a delay, or parks it.
    "redriver": Grants(sends_to=("queue", "parked"), consumes="dlq"),
    # The operator API's routes (functions/chat/domain/operator.py), over the same chat service.
    "operator": Grants(
        tables={
            # end_membership (remove, ban): get_connection, the leave transaction's unsubscribe;
            # a mute stamped on the user's connections
            CONNECTIONS.logical_name: ("dynamodb:GetItem", "dynamodb:UpdateItem"),
            # counters, claims, bans, mutes, memberships, presence and user connections (Query),
            # the leave transaction, `rooms` (BatchGetItem of META items)
            ROOMS.logical_name: ("dynamodb:GetItem", *ITEM_WRITE, "dynamodb:Query", "dynamodb:BatchGetItem"),
            # publish (store_message), the lifecycle delete (get, rewrite), history (Query),
            # `rooms` (BatchGetItem of latest messages)
            MESSAGES.logical_name: MESSAGE_ACTIONS,
        },
        sends_to=("queue",),  # fan-out and user-addressed jobs
        connection_methods=("DELETE",),  # disconnect a user: DeleteConnection on each connection
    ),
}


def grants(function: str) -> Grants:
    """A function's grants (none for a function the table does not name)."""
    return GRANTS.get(function, Grants())
