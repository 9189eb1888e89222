"""In-process moto backend with the real tables and queues, and the functions configured for it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import boto3
import pytest

from dynamowave.local.provisioning import Resources
from dynamowave.testing.aws import configure_functions, moto_resources
from dynamowave.testing.frames import replied
from functions.chat import deps
from functions.chat.adapters.dynamodb.store import ChatStore
from functions.chat.auth import Identity
from functions.chat.domain.service import ChatService
from functions.chat.jobs import FanoutJob
from functions.chat.settings import Settings

SECRET = "integration-test-secret-0123456789abcdef"
ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/test"


@dataclass
class Recorder:
    """Stands in for the Management API's PostToConnection: records (connection, frame)."""

    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, connection_id: str, data: bytes) -> None:
        self.posts.append((connection_id, json.loads(data)))

    def to(self, connection_id: str) -> list[dict[str, Any]]:
        return [frame for target, frame in self.posts if target == connection_id]


@dataclass
class Chat:
    resources: Resources
    settings: Settings
    service: ChatService
    recorder: Recorder

    @property
    def dynamodb(self) -> Any:
        return boto3.client("dynamodb")

    @property
    def sqs(self) -> Any:
        return boto3.client("sqs")

    def connect(
        self, user: str, rooms: list[str] | None = None, name: str | None = None
    ) -> tuple[str, Identity]:
        connection_id = uuid.uuid4().hex[:16]
        identity = Identity(user, name or user.title(), None if rooms is None else tuple(rooms))
        self.service.connect(connection_id, identity)
        return connection_id, identity

    def frame(self, connection_id: str, identity: Identity, **frame: Any) -> dict[str, Any] | None:
        return self.service.handle(connection_id, identity, json.dumps(frame), "req-1").reply

    def ask(self, connection_id: str, identity: Identity, **frame: Any) -> dict[str, Any]:
        """`frame` for an action that replies."""
        return replied(self.frame(connection_id, identity, **frame))

    def drain_jobs(self) -> list[FanoutJob]:
        jobs: list[FanoutJob] = []
        while True:
            response = self.sqs.receive_message(
                QueueUrl=self.resources.fanout_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = response.get("Messages", [])
            if not messages:
                return jobs
            for message in messages:
                jobs.append(FanoutJob.from_json(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.resources.fanout_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    @contextmanager
    def recorded_calls(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """Every DynamoDB call the service makes inside the block: (operation, parameters)."""
        calls: list[tuple[str, dict[str, Any]]] = []

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            calls.append((model.name, params))

        store = self.service._store
        assert isinstance(store, ChatStore)  # the DynamoDB store: its client's calls are recorded
        client = store.client
        client.meta.events.register("provide-client-params.dynamodb.*", record)
        try:
            yield calls
        finally:
            client.meta.events.unregister("provide-client-params.dynamodb.*", record)

    def table_items(self, logical: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self.dynamodb.get_paginator("scan")
        for page in paginator.paginate(TableName=self.resources.tables[logical], ConsistentRead=True):
            items.extend(page["Items"])
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def configure_env(monkeypatch: pytest.MonkeyPatch, resources: Resources, **overrides: str) -> None:
    configure_functions(
        monkeypatch, resources, management_endpoint=ENDPOINT, jwt_secret=SECRET, overrides=overrides
    )


@pytest.fixture
def aws() -> Iterator[Resources]:
    with moto_resources("it") as resources:
        yield resources


@pytest.fixture
def chat_factory(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(**overrides: str) -> Chat:
        configure_env(monkeypatch, aws, **overrides)
        recorder = Recorder()
        settings = Settings.from_env()
        service = ChatService(deps.store(), deps.job_queue(), settings, recorder)
        return Chat(aws, settings, service, recorder)

    return make


@pytest.fixture
def chat(chat_factory: Any) -> Chat:
    return cast("Chat", chat_factory())
