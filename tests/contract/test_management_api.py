"""One contract for the Management API port (functions/chat/domain/ports.py `ManagementApi`), run
against the functions' own adapter (`ManagementClient`: boto3 plus the SigV4-signed poster) talking
to the local runtime's Management API over real WebSocket connections, and against the in-memory
fake the domain tests use: what the fan-out and the janitor may rely on, whichever stands behind it.
(moto's own Management API accepts every id and never answers 410, so it is no reference here.)"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from dynamowave.testing.waits import wait_until
from functions.chat.adapters.management_client import ManagementClient, SignedPoster
from functions.chat.adapters.memory import MAX_POST_BYTES, InMemoryManagementApi
from functions.chat.domain.ports import Gone, ManagementApi, Refused
from tests.e2e.conftest import STUBS, Server, start_server

UNKNOWN = "Ab3dEfGhIAMCJ-Q="  # shaped like an API Gateway id, never handed out


class WebSocketClients:
    def __init__(self, server: Server) -> None:
        self._server = server
        self._sockets: dict[str, ClientConnection] = {}
        self._opened = contextlib.ExitStack()

    def open(self) -> str:
        ws = self._opened.enter_context(connect(self._server.url("allow-amy"), open_timeout=10))
        ws.send(json.dumps({"op": "echo"}))  # the stub ingress answers with its event
        connection_id = str(json.loads(ws.recv(timeout=10))["event"]["requestContext"]["connectionId"])
        self._sockets[connection_id] = ws
        return connection_id

    def received(self, connection_id: str, count: int) -> list[bytes]:
        ws = self._sockets[connection_id]
        frames: list[bytes] = []
        for _ in range(count):
            frame = ws.recv(timeout=10)
            frames.append(frame.encode("utf-8") if isinstance(frame, str) else frame)
        return frames

    def nothing_more(self, connection_id: str) -> bool:
        try:
            self._sockets[connection_id].recv(timeout=0.3)
        except TimeoutError:
            return True
        except ConnectionClosed:
            return True
        return False

    def leave(self, connection_id: str) -> None:
        self._sockets.pop(connection_id).close()

    def close_all(self) -> None:
        self._opened.close()


class FakeClients:
    def __init__(self, api: InMemoryManagementApi) -> None:
        self._api = api
        self._next = 0

    def open(self) -> str:
        self._next += 1
        connection_id = f"conn{self._next:011d}="
        self._api.open(connection_id)
        return connection_id

    def received(self, connection_id: str, count: int) -> list[bytes]:
        frames = self._api.frames[connection_id]
        assert len(frames) >= count, frames
        taken, self._api.frames[connection_id] = frames[:count], frames[count:]
        return taken

    def nothing_more(self, connection_id: str) -> bool:
        return not self._api.frames.get(connection_id)

    def leave(self, connection_id: str) -> None:
        self._api.close(connection_id)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(Path(tmp_path_factory.mktemp("management-contract")), *STUBS)
    yield running
    running.stop()


def _adapter(server: Server) -> ManagementClient:
    """Built as `functions.chat.deps.management_api` builds it, for the runtime's endpoint."""
    session = boto3.session.Session(region_name="us-east-1")
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=3, read_timeout=5)
    client = session.client("apigatewaymanagementapi", endpoint_url=server.management_endpoint, config=config)
    credentials = session.get_credentials()
    assert credentials is not None
    return ManagementClient(
        client, SignedPoster(client, credentials, pool_size=2, connect_timeout=3, read_timeout=5)
    )


class Api:
    def __init__(self, api: ManagementApi, clients: WebSocketClients | FakeClients) -> None:
        self.api = api
        self.clients = clients


@pytest.fixture(params=["local-runtime", "memory"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "memory":
        fake = InMemoryManagementApi()
        yield Api(fake, FakeClients(fake))
        return
    server: Server = request.getfixturevalue("server")
    clients = WebSocketClients(server)
    yield Api(_adapter(server), clients)
    clients.close_all()


def test_a_post_reaches_the_connection_byte_for_byte_in_order(api: Api) -> None:
    connection = api.clients.open()
    frames = [b'{"type":"message","text":"caf\xc3\xa9 \xf0\x9f\x8e\x89"}', b'{"n":2}', b"not json at all"]
    for frame in frames:
        api.api.post(connection, frame)
    assert api.clients.received(connection, 3) == frames


def test_the_payload_limit_is_128_kb_and_a_refused_post_delivers_nothing(api: Api) -> None:
    connection = api.clients.open()
    with pytest.raises(Refused):
        api.api.post(connection, b"x" * (MAX_POST_BYTES + 1))
    largest = b"y" * MAX_POST_BYTES
    api.api.post(connection, largest)
    assert api.clients.received(connection, 1) == [largest]
    assert api.clients.nothing_more(connection)


def test_get_names_the_connection_its_times_and_its_source(api: Api) -> None:
    before = time.time() - 5
    connection = api.clients.open()
    info = api.api.get(connection)
    assert info.source_ip == "127.0.0.1"
    # The janitor reads both times as ISO text (functions/chat/domain/janitor.py).
    connected = datetime.fromisoformat(info.connected_at).timestamp()
    active = datetime.fromisoformat(info.last_active_at).timestamp()
    assert before <= connected <= active <= time.time() + 5


def test_an_unknown_connection_is_gone_for_every_call(api: Api) -> None:
    with pytest.raises(Gone):
        api.api.post(UNKNOWN, b"{}")
    with pytest.raises(Gone):
        api.api.get(UNKNOWN)
    with pytest.raises(Gone):
        api.api.delete(UNKNOWN)


def test_a_connection_whose_client_left_is_gone(api: Api) -> None:
    connection = api.clients.open()
    api.clients.leave(connection)

    def gone() -> bool:
        try:
            api.api.post(connection, b"{}")
        except Gone:
            return True
        return False

    wait_until(gone, 10)
    with pytest.raises(Gone):
        api.api.get(connection)


def test_delete_disconnects_and_the_connection_is_then_gone(api: Api) -> None:
    connection, bystander = api.clients.open(), api.clients.open()
    api.api.delete(connection)
    with pytest.raises(Gone):
        api.api.post(connection, b"{}")
    with pytest.raises(Gone):
        api.api.get(connection)
    with pytest.raises(Gone):
        api.api.delete(connection)
    api.api.post(bystander, b'{"still":"here"}')
    assert api.clients.received(bystander, 1) == [b'{"still":"here"}']
