"""The runtime answers its own functions' PostToConnection calls in process, as its endpoint would."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from dynamowave.local.management_api import GONE, OK, Answer, InProcessPosts, PostAuthority
from dynamowave.local.sigv4 import LocalCredentials, SigV4Verifier
from functions.chat.adapters.management_client import SignedPoster
from functions.chat.domain.ports import Gone, Refused
from tests.ports import closed_port


class RecordingApi:
    """Stands in for `ManagementApiEmulator`: answers every post with `answer`, records what it sends.
    Without faults (`faultless`) posts are accepted on the caller's thread and sent on the loop;
    with faults the loop decides the answer (`deliver`), as over HTTP."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.answer = OK
        self.faultless = True
        verifier = SigV4Verifier([LocalCredentials("a", "b", None, "test")], region="us-east-1")
        self.authority = PostAuthority(
            verifier, region="us-east-1", account_id="123456789012", api_id="local", stage="local"
        )

    def authenticate(self, method: str, url: str, headers: Any, body: bytes) -> Answer | None:
        return self.authority.check(method, url, headers, body)

    def answers_at_once(self) -> bool:
        return self.faultless

    def accept(self, connection_id: str, data: bytes) -> Answer:
        return self.answer

    async def send_accepted(self, connection_id: str, data: bytes) -> None:
        self.posts.append((connection_id, data))

    async def deliver(self, connection_id: str, data: bytes) -> Answer:
        if self.answer is OK:
            self.posts.append((connection_id, data))
        return self.answer


def _eventually(check: Any) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, "the loop never sent the accepted frames"
        time.sleep(0.01)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


@pytest.fixture
def endpoint() -> str:
    # Nothing listens there: a post that took the HTTP path would fail to connect.
    return f"http://127.0.0.1:{closed_port()}/local"


@pytest.fixture
def shortcut(loop: asyncio.AbstractEventLoop, endpoint: str) -> Iterator[tuple[InProcessPosts, RecordingApi]]:
    api = RecordingApi()

    async def build() -> InProcessPosts:  # on the loop's thread, as the runtime builds it
        return InProcessPosts(cast(Any, api), endpoint, loop)

    posts = asyncio.run_coroutine_threadsafe(build(), loop).result(timeout=5)
    posts.install()
    yield posts, api
    posts.uninstall()


def _client(endpoint: str, secret: str = "b") -> Any:
    session = boto3.session.Session(
        aws_access_key_id="a", aws_secret_access_key=secret, region_name="us-east-1"
    )
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=1)
    return session, session.client("apigatewaymanagementapi", endpoint_url=endpoint, config=config)


def test_posts_to_the_runtimes_endpoint_are_answered_in_process(
    shortcut: tuple[InProcessPosts, RecordingApi], endpoint: str
) -> None:
    _, api = shortcut
    session, client = _client(endpoint)
    client.post_to_connection(ConnectionId="Ab3dEfGhIAMCJ-Q=", Data=b"by boto3")
    poster = SignedPoster(client, session.get_credentials(), pool_size=1, connect_timeout=1, read_timeout=1)
    poster.post("Zz9=", b"by the poster")
    _eventually(lambda: len(api.posts) == 2)
    assert api.posts == [("Ab3dEfGhIAMCJ-Q=", b"by boto3"), ("Zz9=", b"by the poster")]  # in order
    api.faultless = False  # with faults configured the loop answers, and the frame goes out too
    client.post_to_connection(ConnectionId="late=", Data=b"third")
    assert api.posts[-1] == ("late=", b"third")


def test_the_endpoints_answers_reach_the_caller_as_aws_errors(
    shortcut: tuple[InProcessPosts, RecordingApi], endpoint: str
) -> None:
    _, api = shortcut
    api.answer = GONE
    session, client = _client(endpoint)
    with pytest.raises(ClientError) as error:
        client.post_to_connection(ConnectionId="gone=", Data=b"x")
    assert error.value.response["Error"]["Code"] == "GoneException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    api.faultless = False
    api.answer = Answer(429, "LimitExceededException", "Rate exceeded")
    with pytest.raises(client.exceptions.LimitExceededException):
        client.post_to_connection(ConnectionId="busy=", Data=b"x")
    api.answer = GONE
    with pytest.raises(Gone):
        SignedPoster(client, session.get_credentials(), pool_size=1, connect_timeout=1, read_timeout=1).post(
            "g=", b"x"
        )


def test_posts_answered_in_process_are_authenticated_first(
    shortcut: tuple[InProcessPosts, RecordingApi], endpoint: str
) -> None:
    _, api = shortcut
    session, client = _client(endpoint, secret="wrong")
    with pytest.raises(ClientError) as error:
        client.post_to_connection(ConnectionId="Ab3dEfGhIAMCJ-Q=", Data=b"x")
    assert error.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    poster = SignedPoster(client, session.get_credentials(), pool_size=1, connect_timeout=1, read_timeout=1)
    with pytest.raises(Refused):
        poster.post("Zz9=", b"x")
    time.sleep(0.2)
    assert api.posts == []


def test_other_endpoints_and_uninstalled_runtimes_take_the_network(
    shortcut: tuple[InProcessPosts, RecordingApi], endpoint: str
) -> None:
    posts, api = shortcut
    _, elsewhere = _client(f"http://127.0.0.1:{closed_port()}/local")
    with pytest.raises(EndpointConnectionError):
        elsewhere.post_to_connection(ConnectionId="a=", Data=b"x")
    posts.uninstall()
    _, after = _client(endpoint)
    with pytest.raises(EndpointConnectionError):
        after.post_to_connection(ConnectionId="a=", Data=b"x")
    assert api.posts == []
