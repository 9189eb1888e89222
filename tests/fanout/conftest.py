"""Fixtures for the fan-out tests: moto, the fake Management API, and a deployment to drive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import boto3
import pytest

from dynamowave.local.provisioning import Resources
from dynamowave.testing.aws import LambdaContext
from functions.chat import deps
from functions.chat.auth import Identity
from functions.chat.domain.service import ChatService
from functions.chat.jobs import FanoutJob
from functions.fanout.handler import handler
from tests.fanout.support import (  # noqa: F401  (fixtures)
    FakeManagementApi,
    aws,
    configure,
    drain,
    management_api,
    sqs_event,
)


@dataclass
class Deployment:
    """The chat service and the fan-out function, wired to moto and the fake Management API."""

    resources: Resources
    api: FakeManagementApi
    counter: int = 0

    @property
    def service(self) -> ChatService:
        return deps.chat_service(self.api.endpoint)

    def connect(self, user: str, *, batch: bool = False) -> tuple[str, Identity]:
        self.counter += 1
        connection_id = f"{user}-{self.counter}="
        identity = Identity(user, user.title(), None)
        self.service.connect(connection_id, identity, batch=batch)
        return connection_id, identity

    def frame(self, connection_id: str, identity: Identity, **frame: Any) -> dict[str, Any] | None:
        return self.service.handle(connection_id, identity, json.dumps(frame), "req-1").reply

    def member(self, user: str, room: str = "general", *, batch: bool = False) -> str:
        connection_id, identity = self.connect(user, batch=batch)
        reply = self.frame(connection_id, identity, action="join", room=room)
        assert reply is not None and reply["type"] == "joined", reply
        return connection_id

    def send(self, connection_id: str, text: str, room: str = "general") -> None:
        user = connection_id.split("-", 1)[0]
        self.counter += 1
        reply = self.frame(
            connection_id,
            Identity(user, user.title(), None),
            action="sendmessage",
            room=room,
            text=text,
            clientMsgId=f"m{self.counter}-{len(text)}",
        )
        assert reply is not None and reply["type"] == "ack", reply  # the route response

    def queued(self) -> list[str]:
        return drain(self.resources.fanout_queue_url)

    def dead_letters(self) -> list[FanoutJob]:
        return [FanoutJob.from_json(body) for body in drain(self.resources.fanout_dlq_url)]

    def fanout(self, bodies: list[str], context: LambdaContext | None = None) -> dict[str, Any]:
        event = sqs_event(bodies, self.resources.fanout_queue_arn)
        response: dict[str, Any] = handler(event, context or LambdaContext())
        return response

    def pump(self, rounds: int = 10) -> int:
        """Runs the fan-out on every queued job (10 per invocation) until the queue is empty;
        returns how many rounds it took. Failed records would stay: the tests assert none fail."""
        for round_number in range(1, rounds + 1):
            bodies = self.queued()
            if not bodies:
                return round_number - 1
            for start in range(0, len(bodies), 10):
                response = self.fanout(bodies[start : start + 10])
                assert response == {"batchItemFailures": []}
        raise AssertionError("the queue never emptied")

    def messages_to(self, connection_id: str) -> list[dict[str, Any]]:
        return [f for f in self.api.delivered_to(connection_id) if f["type"] == "message"]

    @property
    def sqs(self) -> Any:
        return boto3.client("sqs")


@pytest.fixture
def deployment_factory(
    aws: Resources,  # noqa: F811  (a fixture, imported above)
    management_api: FakeManagementApi,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    def make(**overrides: str | int) -> Deployment:
        configure(monkeypatch, aws, management_api.endpoint, **overrides)
        return Deployment(aws, management_api)

    yield make


@pytest.fixture
def deployment(deployment_factory: Any) -> Deployment:
    return cast("Deployment", deployment_factory())
