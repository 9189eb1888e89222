"""Fixtures for the janitor tests: moto, the fake Management API, connections of chosen ages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from dynamowave.local.provisioning import Resources
from dynamowave.testing.aws import LambdaContext
from functions.chat import deps
from functions.chat.auth import Identity
from functions.chat.clock import now_ms
from functions.chat.jobs import FanoutJob
from functions.janitor.handler import handler
from tests.fanout.support import (  # noqa: F401  (fixtures)
    FakeManagementApi,
    aws,
    configure,
    drain,
    management_api,
)

MINUTE_MS = 60_000


@dataclass
class Site:
    resources: Resources
    api: FakeManagementApi

    def connection(
        self,
        connection_id: str,
        *,
        connected_min_ago: float,
        active_min_ago: float,
        room: str | None = "general",
    ) -> str:
        """A connection record with the given ages, optionally a member of `room`."""
        store = deps.store()
        now = now_ms()
        user = connection_id.split("-", 1)[0]
        store.put_connection(
            connection_id, user, user.title(), None, now - int(connected_min_ago * MINUTE_MS)
        )
        if room is not None:
            record = store.get_connection(connection_id)
            assert record is not None
            store.join(record, room, now)
        if active_min_ago != connected_min_ago:
            store.touch_connection(connection_id, now - int(active_min_ago * MINUTE_MS))
        return connection_id

    def run(self, context: LambdaContext | None = None) -> dict[str, Any]:
        event = {"id": "evt-1", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
        result: dict[str, Any] = handler(event, context or LambdaContext(remaining_ms=300_000))
        return result

    def queued(self) -> list[FanoutJob]:
        return [FanoutJob.from_json(body) for body in drain(self.resources.fanout_queue_url)]

    def exists(self, connection_id: str) -> bool:
        return deps.store().get_connection(connection_id) is not None


@pytest.fixture
def site_factory(
    aws: Resources,  # noqa: F811  (a fixture, imported above)
    management_api: FakeManagementApi,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    def make(**overrides: str | int) -> Site:
        configure(monkeypatch, aws, management_api.endpoint, **overrides)
        return Site(aws, management_api)

    return make


@pytest.fixture
def site(site_factory: Any) -> Site:
    return cast("Site", site_factory())


def identity(user: str) -> Identity:
    return Identity(user, user.title(), None)
