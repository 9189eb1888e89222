"""Table and queue definitions: the one place the CDK stack and the local runtime both read.

Three tables (see docs/data-model.md for every access pattern and its cost):

* ``connections``: one item per WebSocket connection, keyed by ``connectionId``.
* ``rooms``: everything room-scoped except messages, in one table with a generic ``pk``/``sk``:
  the room's seq counter and member count (``ROOM#r`` / ``META``), per-user presence counters
  (``ROOM#r`` / ``USER#u``), sharded memberships (``ROOM#r#S#shard`` / the connection id), the shard
  directory (``ROOM#r#SHARDS`` / ``shard``), idempotency records (``IDEM#user#room#clientMsgId`` /
  ``IDEM``), bans (``ROOM#r`` / ``BAN#u``), the change log (``ROOM#r#CHANGES`` / ...),
  the janitor's resume cursor (``JANITOR`` / ``CURSOR``) and, per user, durable
  memberships (``USER#u`` / ``ROOM#r``) and live connections (``USER#u`` / ``CONN#id``).
* ``messages``: the room's history keyed by (``room``, ``seq``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KeyType = Literal["S", "N"]


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: KeyType


@dataclass(frozen=True)
class TableDefinition:
    """A DynamoDB table: ``logical_name`` names the CDK construct and the local table's suffix."""

    logical_name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None
    ttl_attribute: str | None
    description: str

    def physical_name(self, prefix: str) -> str:
        """The table name the local runtime uses (CDK lets CloudFormation name the real ones)."""
        return f"{prefix}-{self.logical_name}"


CONNECTIONS = TableDefinition(
    logical_name="connections",
    partition_key=KeyAttribute("connectionId", "S"),
    sort_key=None,
    ttl_attribute="ttl",
    description="Live WebSocket connections: user, display name, allowed rooms, joined rooms, "
    "connectedAt, lastSeen, rate-limit state, TTL backstop.",
)

ROOMS = TableDefinition(
    logical_name="rooms",
    partition_key=KeyAttribute("pk", "S"),
    sort_key=KeyAttribute("sk", "S"),
    ttl_attribute="ttl",
    description="Room counters, presence, sharded memberships, shard directory, idempotency records, "
    "janitor cursor, user memberships and connections.",
)

MESSAGES = TableDefinition(
    logical_name="messages",
    partition_key=KeyAttribute("room", "S"),
    sort_key=KeyAttribute("seq", "N"),
    ttl_attribute="ttl",
    description="Room history keyed by (room, seq).",
)

TABLES: tuple[TableDefinition, ...] = (CONNECTIONS, ROOMS, MESSAGES)


@dataclass(frozen=True)
class QueueDefinition:
    logical_name: str
    description: str

    def physical_name(self, prefix: str) -> str:
        return f"{prefix}-{self.logical_name}"


FANOUT_QUEUE = QueueDefinition("fanout", "Fan-out jobs: one per membership shard of a room, or a retry list.")
FANOUT_DLQ = QueueDefinition(
    "fanout-dlq",
    "Fan-out jobs that failed maxReceiveCount times or ran out of attempts; the redriver's source.",
)
FANOUT_PARKED = QueueDefinition(
    "fanout-parked",
    "Dead letters that outlived auto-redrive (REDRIVE_MAX_AGE_SECONDS) or are not jobs: alarmed.",
)
# The DLQ's own redrive policy: a dead letter the redriver fails on this often is parked as is.
REDRIVER_MAX_RECEIVE_COUNT = 10

# The fan-out queue's visibility timeout, and the fan-out function's timeout (Lambda refuses an
# SQS event source whose visibility timeout is below the function's timeout). Short on purpose:
# it bounds how long a crashed invocation's batch stays invisible; a live invocation renews it
# for the records it is still working on (functions/chat/lease.py). AWS's "6 x the function
# timeout" guards against premature receives when invocations are throttled; here such a record
# at worst reaches the DLQ early, and the redriver puts it back (docs/fanout.md, "Crash bound").
FANOUT_VISIBILITY_TIMEOUT_SECONDS = 15
FANOUT_TIMEOUT_SECONDS = FANOUT_VISIBILITY_TIMEOUT_SECONDS


# The Lambda functions, as the stack deploys them (stacks/functions.py) and the local runtime runs
# them (dynamowave/local/config.py): one definition, so a function times out at the same point in
# both places (an ingress call that outlives its 10 s fails there, well before API Gateway's 29 s
# integration timeout).
@dataclass(frozen=True)
class FunctionDefinition:
    name: str
    description: str
    memory_mb: int
    timeout_seconds: int

    @property
    def handler(self) -> str:
        return f"functions.{self.name}.handler.handler"


AUTHORIZER_FUNCTION = FunctionDefinition(
    "authorizer", "REQUEST authorizer for $connect (JWT from ?token=)", 256, 5
)
INGRESS_FUNCTION = FunctionDefinition(
    "ingress", "Every WebSocket route: connect, disconnect, chat actions", 512, 10
)
# More memory buys CPU and network for the bounded pool of PostToConnection calls.
FANOUT_FUNCTION = FunctionDefinition(
    "fanout", "Delivers fan-out jobs from SQS to room members", 1024, FANOUT_TIMEOUT_SECONDS
)
JANITOR_FUNCTION = FunctionDefinition(
    "janitor", "Prunes idle and expired connections on a schedule", 512, 300
)
REDRIVER_FUNCTION = FunctionDefinition(
    "redriver",
    "Redrives the fan-out's dead letters with growing delays, parks what outlives them",
    256,
    30,
)
# The operator API's routes (stacks/operator_api.py), invoked synchronously by its HTTP API.
OPERATOR_FUNCTION = FunctionDefinition(
    "operator",
    "Operator API: publish, delete, members, bans, events, disconnect, history, presence",
    512,
    10,
)
FUNCTIONS: tuple[FunctionDefinition, ...] = (
    AUTHORIZER_FUNCTION,
    INGRESS_FUNCTION,
    FANOUT_FUNCTION,
    JANITOR_FUNCTION,
    REDRIVER_FUNCTION,
    OPERATOR_FUNCTION,
)

# Route keys of the WebSocket API (route selection expression: $request.body.action).
ROUTE_SELECTION_EXPRESSION = "$request.body.action"
ACTION_ROUTES: tuple[str, ...] = (
    "join",
    "leave",
    "sendmessage",
    "history",
    "typing",
    "ping",
    "rooms",
    "read",
    "dm",
    "edit",
    "delete",
    "react",
    "kick",
    "ban",
    "unban",
    "mute",
    "unmute",
)
SYSTEM_ROUTES: tuple[str, ...] = ("$connect", "$disconnect", "$default")
# Routes whose Lambda reply is sent back to the caller as a route response (two-way routes).
TWO_WAY_ROUTES: tuple[str, ...] = ("$default", *ACTION_ROUTES)
# The REQUEST authorizer's identity source: a missing token is refused with 401 before the
# authorizer runs, exactly as API Gateway does.
AUTHORIZER_IDENTITY_SOURCE = "route.request.querystring.token"
TOKEN_QUERY_PARAMETER = "token"
# edge=true: CloudFront adds this header (a Secrets Manager value) to every request it sends the
# API, and the authorizer refuses a handshake without it, so the execute-api URL cannot be used
# to go around CloudFront and WAF. Header names are case-insensitive.
ORIGIN_HEADER = "X-DynamoWave-Origin-Verify"
