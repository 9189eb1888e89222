"""`dynamowave serve --iam`: each function's AWS calls checked against what the stack grants it.

The grants are the stack's own table (`stacks.grants`, which `stacks.access` turns into the
roles' statements), applied to the local resources' ARNs. Each function signs with credentials
of its own (`function_credentials`, given in its environment as Lambda gives a role's), so a
request names its principal exactly as on AWS: the access key in its SigV4 ``Authorization``.
`IamEnforcer`, a botocore ``before-send`` handler installed for every session, refuses a call
outside the principal's grants with ``AccessDeniedException`` before it is sent; the Management
API applies the same check to ``execute-api:ManageConnections`` (`ManagementApi`).
Decisions are evaluated in process and cached per (principal, action, resource).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders

from dynamowave.compat.botocore_hooks import add_builtin_handler
from dynamowave.local.management_api import BytesBody
from dynamowave.local.sigv4 import LocalCredentials


def function_credentials(name: str) -> LocalCredentials:
    """A function's own credentials (its role's, on AWS): the access key names the principal."""
    return LocalCredentials(f"ASIALOCAL{name.upper()}", f"local-{name}-secret", f"local-{name}-token", name)


@dataclass(frozen=True)
class Statement:
    actions: frozenset[str]
    resources: tuple[str, ...]  # ARN patterns (``*`` wildcards, as IAM matches them)


@dataclass(frozen=True)
class Call:
    """One authorisation decision's subject: who asked to do what to which resource."""

    function: str
    action: str
    resource: str

    def to_json(self) -> dict[str, str]:
        return {"function": self.function, "action": self.action, "resource": self.resource}


class Policies:
    """Each principal's Allow statements; anything not allowed is denied (IAM's default).

    `revoke` takes grants away while the runtime runs (``PUT /dev/iam``), so a test can prove a
    grant is needed by watching the real code fail without it; every denial is kept (`denials`)."""

    MAX_DENIALS: Final = 1000

    def __init__(self, statements: Mapping[str, list[Statement]], region: str, account_id: str) -> None:
        self._statements = {name: tuple(s) for name, s in statements.items()}
        self.region = region
        self.account_id = account_id
        self._lock = threading.Lock()
        self._revoked: tuple[Call, ...] = ()  # resource: an ARN pattern
        self._denials: list[Call] = []
        self._decide = lru_cache(maxsize=4096)(self._evaluate)

    def governs(self, principal: str) -> bool:
        return principal in self._statements

    def allows(self, principal: str, action: str, resource: str) -> bool:
        return self._decide(principal, action, resource)

    def _evaluate(self, principal: str, action: str, resource: str) -> bool:
        if any(
            r.function == principal and r.action == action and fnmatchcase(resource, r.resource)
            for r in self._revoked
        ):
            return False
        return any(
            action in statement.actions and any(fnmatchcase(resource, p) for p in statement.resources)
            for statement in self._statements.get(principal, ())
        )

    def granted(self) -> list[Call]:
        """Every (function, action, resource pattern) the statements allow."""
        return [
            Call(name, action, resource)
            for name, statements in self._statements.items()
            for statement in statements
            for action in sorted(statement.actions)
            for resource in statement.resources
        ]

    @property
    def revoked(self) -> tuple[Call, ...]:
        return self._revoked

    def revoke(self, calls: Iterable[Call]) -> None:
        """Deny these from now on, on top of the statements (replaces any earlier revocation)."""
        with self._lock:
            self._revoked = tuple(calls)
            self._decide.cache_clear()

    def record(self, calls: Iterable[Call]) -> None:
        """Denials decided elsewhere (a fan-out worker process's own copy of these policies)."""
        with self._lock:
            room = self.MAX_DENIALS - len(self._denials)
            self._denials.extend(list(calls)[: max(0, room)])

    def denials(self) -> list[Call]:
        with self._lock:
            return list(self._denials)

    def deny(self, principal: str, action: str, resource: str) -> str:
        """Records a refused call; returns AWS's AccessDeniedException message for it."""
        with self._lock:
            if len(self._denials) < self.MAX_DENIALS:
                self._denials.append(Call(principal, action, resource))
        return (
            f"User: arn:aws:sts::{self.account_id}:assumed-role/dynamowave-{principal}/{principal} is not "
            f"authorized to perform: {action} on resource: {resource} because no identity-based policy "
            f"allows the {action} action"
        )


def local_policies(
    *,
    region: str,
    account_id: str,
    api_id: str,
    stage: str,
    tables: Mapping[str, str],
    queue_arns: Mapping[str, str],
    function_arns: Mapping[str, str],
    functions: Iterable[str],
) -> Policies:
    """The stack's grants (`stacks.grants`) on the local resources: ``tables`` maps logical to
    physical names, ``queue_arns`` "queue"/"dlq"/"parked" to ARNs, ``function_arns`` an invoked
    function ("review") to its ARN. Only functions the grant table names are governed (the
    reviewer is the user's code: the stack does not deploy it)."""
    from stacks.grants import EVENT_SOURCE_ACTIONS, GRANTS, LEASE_ACTIONS

    def table_arn(logical: str) -> str:
        return f"arn:aws:dynamodb:{region}:{account_id}:table/{tables[logical]}"

    statements: dict[str, list[Statement]] = {}
    for name in functions:
        if name not in GRANTS:
            continue
        grants = GRANTS[name]
        granted = [
            Statement(frozenset(actions), (table_arn(logical),)) for logical, actions in grants.tables.items()
        ]
        if grants.sends_to:
            granted.append(
                Statement(frozenset({"sqs:SendMessage"}), tuple(queue_arns[q] for q in grants.sends_to))
            )
        if grants.consumes:
            actions = EVENT_SOURCE_ACTIONS + (LEASE_ACTIONS if grants.leases else ())
            granted.append(Statement(frozenset(actions), (queue_arns[grants.consumes],)))
        if grants.connection_methods:
            granted.append(
                Statement(
                    frozenset({"execute-api:ManageConnections"}),
                    tuple(
                        f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/{method}/@connections/*"
                        for method in grants.connection_methods
                    ),
                )
            )
        if grants.secrets:
            # No secret exists locally (the authorizer is given the secret itself): any name.
            granted.append(
                Statement(
                    frozenset({"secretsmanager:GetSecretValue"}),
                    (f"arn:aws:secretsmanager:{region}:{account_id}:secret:*",),
                )
            )
        invoked = tuple(function_arns[f] for f in grants.invokes if f in function_arns)
        if invoked:
            granted.append(Statement(frozenset({"lambda:InvokeFunction"}), invoked))
        statements[name] = granted
    return Policies(statements, region, account_id)


def principal_of(headers: Any) -> str:
    """The access key that signed a request (its SigV4 Credential), or ""."""
    authorization = headers.get("Authorization") or ""
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    marker = "Credential="
    start = authorization.find(marker)
    if start < 0:
        return ""
    return str(authorization[start + len(marker) :].split("/", 1)[0])


def requested(request: AWSPreparedRequest, *, region: str, account_id: str) -> list[tuple[str, str]]:
    """(action, resource ARN) pairs a request needs, for the services the functions call."""
    target = request.headers.get("X-Amz-Target") or ""
    if isinstance(target, bytes):
        target = target.decode()
    body: dict[str, Any] = {}
    if request.body:
        raw = request.body if isinstance(request.body, bytes | str) else b""
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            parsed = {}
        body = parsed if isinstance(parsed, dict) else {}
    service, _, operation = str(target).rpartition(".")
    if service.startswith("DynamoDB_"):
        return _dynamodb(operation, body, region, account_id)
    if service == "AmazonSQS":
        queue = str(body.get("QueueUrl", "")).rstrip("/").rsplit("/", 1)[-1]
        # A batch is authorized by its single action (SendMessage, DeleteMessage, ChangeMessageVisibility).
        action = f"sqs:{operation.removesuffix('Batch')}"
        return [(action, f"arn:aws:sqs:{region}:{account_id}:{queue}")]
    if service == "secretsmanager":
        secret = str(body.get("SecretId", ""))
        arn = (
            secret
            if secret.startswith("arn:")
            else f"arn:aws:secretsmanager:{region}:{account_id}:secret:{secret}"
        )
        return [(f"secretsmanager:{operation}", arn)]
    path = urlsplit(request.url).path
    if path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
        name = unquote(path.split("/")[3])
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{account_id}:function:{name}"
        return [("lambda:InvokeFunction", arn)]
    return []


def _dynamodb(operation: str, body: dict[str, Any], region: str, account_id: str) -> list[tuple[str, str]]:
    def arn(table: str) -> str:
        return f"arn:aws:dynamodb:{region}:{account_id}:table/{table}"

    if operation == "TransactWriteItems":  # authorised per item (IAM has no action of its own)
        kinds = {
            "Put": "PutItem",
            "Update": "UpdateItem",
            "Delete": "DeleteItem",
            "ConditionCheck": "ConditionCheckItem",
        }
        pairs = []
        for item in body.get("TransactItems", []):
            for kind, detail in item.items():
                pairs.append((f"dynamodb:{kinds.get(kind, kind)}", arn(str(detail.get("TableName", "")))))
        return pairs
    if operation == "TransactGetItems":
        return [
            ("dynamodb:GetItem", arn(str(i.get("Get", {}).get("TableName", ""))))
            for i in body.get("TransactItems", [])
        ]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        pairs = []
        for table, requests in body.get("RequestItems", {}).items():
            if operation == "BatchGetItem":
                pairs.append(("dynamodb:BatchGetItem", arn(table)))
                continue
            for write in requests:
                pairs.append(
                    ("dynamodb:PutItem" if "PutRequest" in write else "dynamodb:DeleteItem", arn(table))
                )
        return pairs
    return [(f"dynamodb:{operation}", arn(str(body.get("TableName", ""))))]


def denied_response(request: AWSPreparedRequest, message: str) -> AWSResponse:
    """AccessDeniedException in the request's protocol (json: ``__type``; rest-json: the header)."""
    target = request.headers.get("X-Amz-Target") or ""
    status = 400 if str(target).startswith(("DynamoDB_", "b'DynamoDB_")) else 403
    body = json.dumps({"__type": "AccessDeniedException", "message": message, "Message": message}).encode()
    headers = HTTPHeaders.from_dict(
        {"x-amzn-ErrorType": "AccessDeniedException", "Content-Type": "application/x-amz-json-1.0"}
    )
    return AWSResponse(request.url, status, headers, BytesBody(body))


class IamEnforcer:
    """botocore ``before-send`` for every session: a governed principal's call outside its grants
    is answered AccessDeniedException without being sent (the runtime's own calls pass)."""

    EVENT: Final = "before-send"

    def __init__(self, policies: Policies, principals: Mapping[str, str]) -> None:
        self.policies = policies
        self._principals = dict(principals)  # access key -> function
        self._remove: Callable[[], None] | None = None

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        principal = self._principals.get(principal_of(request.headers))
        if principal is None or not self.policies.governs(principal):
            return None
        for action, resource in requested(
            request, region=self.policies.region, account_id=self.policies.account_id
        ):
            if not self.policies.allows(principal, action, resource):
                return denied_response(request, self.policies.deny(principal, action, resource))
        return None

    def install(self) -> None:
        self._remove = add_builtin_handler(self.EVENT, self)

    def uninstall(self) -> None:
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()
