"""Shared pieces of the fuzz suite: hypothesis profiles and the moto-backed ingress harness.

Profiles are chosen with HYPOTHESIS_PROFILE: ``ci`` (default, ~100 examples per property, what
`make test` runs) or ``long`` (1,000 examples, for a soak run:
``HYPOTHESIS_PROFILE=long pytest tests/fuzz``). Deadlines are off: moto's latency varies with
the machine's load and is not what the properties are about.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.sqs.models import sqs_backends

from dynamowave.local.provisioning import Resources
from dynamowave.testing.aws import LambdaContext, configure_functions, moto_resources
from dynamowave.testing.serve import LOCAL_CREDENTIALS_ENV
from functions.chat.auth import Identity
from functions.chat.schema import ACTION_ROUTES
from functions.ingress.handler import handler
from tests.integration.events import route_event

_BASE = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
    derandomize=False,
    print_blob=True,
)
PROFILES = {
    "ci": settings(_BASE, max_examples=100),
    "long": settings(_BASE, max_examples=1000),
}


def fuzz_settings(scale: float = 1.0) -> settings:
    """The active profile, with `scale` x its example count (for the slower properties)."""
    chosen = PROFILES.get(os.environ.get("HYPOTHESIS_PROFILE", "ci"), PROFILES["ci"])
    return settings(chosen, max_examples=max(10, int(chosen.max_examples * scale)))


TABLES = ("connections", "rooms", "messages")
LIMITER_FIELDS = frozenset({"tat", "lastSeen"})
SECRET = "fuzz-secret-0123456789abcdef0123456789abcdef"
ENDPOINT = "https://fuzz123.execute-api.us-east-1.amazonaws.com/test"


def api_gateway_route(body: str | None) -> str:
    """The route API Gateway selects with `$request.body.action` (else `$default`)."""
    try:
        data = json.loads(body or "")
    except (ValueError, RecursionError):
        return "$default"
    action = data.get("action") if isinstance(data, dict) else None
    return action if isinstance(action, str) and action in ACTION_ROUTES else "$default"


@dataclass
class Reply:
    status: int
    frame: dict[str, Any] | None
    raw_body: str | None


@dataclass
class IngressHarness:
    """The real ingress handler over moto; connections are created through `$connect`."""

    resources: Resources

    @property
    def dynamodb(self) -> Any:
        return boto3.client("dynamodb", region_name="us-east-1")

    @property
    def sqs(self) -> Any:
        return boto3.client("sqs", region_name="us-east-1")

    def connect(self, identity: Identity) -> str:
        connection_id = f"{uuid.uuid4().hex[:14]}A="  # base64-ish, as API Gateway's ids are
        response = handler(route_event("$connect", connection_id, identity), LambdaContext())
        assert response == {"statusCode": 200}, response
        return connection_id

    def disconnect(self, connection_id: str) -> None:
        response = handler(route_event("$disconnect", connection_id, None), LambdaContext())
        assert response == {"statusCode": 200}, response

    def send(
        self, connection_id: str, identity: Identity, body: str | None, route: str | None = None
    ) -> Reply:
        event = route_event(route or api_gateway_route(body), connection_id, identity, body)
        if body is None:
            event.pop("body", None)
        response = handler(event, LambdaContext())
        raw = response.get("body")
        return Reply(int(response["statusCode"]), None if raw is None else json.loads(raw), raw)

    def table_items(self, logical: str) -> list[str]:
        """Every item of a table, canonical JSON, read from moto's backend (a Scan per example is
        too slow for hypothesis; this is the same data without the HTTP round trip)."""
        table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(self.resources.tables[logical])
        return sorted(json.dumps(item.to_json()["Attributes"], sort_keys=True) for item in table.all_items())

    def queue_depth(self) -> int:
        queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_queue(
            self.resources.fanout_queue_url.rsplit("/", 1)[1]
        )
        return len(queue._messages)

    def purge_queue(self) -> None:
        # Successful frames enqueue fan-out jobs that nobody consumes here; drop them.
        while self.queue_depth():
            messages = self.sqs.receive_message(
                QueueUrl=self.resources.fanout_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return
            self.sqs.delete_message_batch(
                QueueUrl=self.resources.fanout_queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages)
                ],
            )

    def snapshot(self, *, limiter: bool = False) -> dict[str, Any]:
        """Every table and the queue depth. Without `limiter`, the connections' limiter state
        (`tat`, `lastSeen`) is left out: every frame spends a token, refused or not."""
        state: dict[str, Any] = {table: self.table_items(table) for table in TABLES}
        if not limiter:
            state["connections"] = sorted(
                json.dumps(
                    {k: v for k, v in json.loads(item).items() if k not in LIMITER_FIELDS}, sort_keys=True
                )
                for item in state["connections"]
            )
        state["queued"] = self.queue_depth()
        return state


@contextmanager
def ingress_harness(**overrides: str) -> Iterator[IngressHarness]:
    """moto for the duration, the functions configured for it (module-scoped: hypothesis reuses it)."""
    with moto_resources("fuzz") as resources, pytest.MonkeyPatch.context() as patch:
        quiet = {"POWERTOOLS_METRICS_DISABLED": "true", "LOG_LEVEL": "ERROR"}
        configure_functions(
            patch,
            resources,
            management_endpoint=ENDPOINT,
            jwt_secret=SECRET,
            overrides={**LOCAL_CREDENTIALS_ENV, **quiet, **overrides},
        )
        yield IngressHarness(resources)
