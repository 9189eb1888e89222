"""The bench connects as the clients do: a 5xx handshake is tried again, a 4xx is final."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

from dynamowave.bench import clients
from dynamowave.bench.clients import Room

Hook = Callable[[ServerConnection, Request], Response | None]


def refusing(statuses: list[HTTPStatus]) -> tuple[list[int], Hook]:
    """A handshake hook answering `statuses` in turn, then accepting; counts the attempts."""
    attempts: list[int] = []

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        attempts.append(1)
        if len(attempts) <= len(statuses):
            return connection.respond(statuses[len(attempts) - 1], "refused\n")
        return None

    return attempts, process_request


async def connect_once(statuses: list[HTTPStatus]) -> tuple[Room, list[int]]:
    attempts, hook = refusing(statuses)

    async def echo(connection: ServerConnection) -> None:
        await connection.wait_closed()

    server: Server
    async with serve(echo, "127.0.0.1", 0, process_request=hook) as server:
        port = server.sockets[0].getsockname()[1]
        room = Room(f"ws://127.0.0.1:{port}", lambda index: f"token-{index}", "bench")
        try:
            for member in await room.connect(1):
                await member.ws.close()
        finally:
            attempts_seen.extend(attempts)
    return room, attempts


attempts_seen: list[int] = []  # the handshakes of the last `connect_once`, also when it raised


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "reconnect_delay", lambda attempt: 0.0)
    attempts_seen.clear()


def test_a_handshake_refused_with_a_5xx_is_tried_again_and_counted() -> None:
    room, attempts = asyncio.run(connect_once([HTTPStatus.INTERNAL_SERVER_ERROR, HTTPStatus.BAD_GATEWAY]))
    assert (len(attempts), room.handshake_retries) == (3, 2)


def test_a_4xx_is_final_and_a_5xx_is_given_up_after_the_last_attempt() -> None:
    with pytest.raises(InvalidStatus):
        asyncio.run(connect_once([HTTPStatus.FORBIDDEN]))
    assert len(attempts_seen) == 1
    attempts_seen.clear()
    with pytest.raises(InvalidStatus):
        asyncio.run(connect_once([HTTPStatus.INTERNAL_SERVER_ERROR] * clients.HANDSHAKE_ATTEMPTS))
    assert len(attempts_seen) == clients.HANDSHAKE_ATTEMPTS
