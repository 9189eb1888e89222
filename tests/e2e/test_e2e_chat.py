"""docs/protocol.md end to end: real handlers under `dynamowave serve`, real WebSocket clients.

One test per row of the protocol's tables and per guarantee. Every test uses its own users and
rooms, so tests never see each other's frames.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dynamowave.testing.waits import wait_until as shared_wait_until
from tests.e2e.conftest import Server, start_server

T = TypeVar("T")
Frame = dict[str, Any]


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 90))


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Client:
    """A chat client that buffers frames, so a test can wait for the one it wants."""

    def __init__(self, ws: Any, user: str) -> None:
        self.ws = ws
        self.user = user
        self.buffer: list[Frame] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def expect(self, type_: str, timeout: float = 15, **fields: Any) -> Frame:
        def matches(frame: Frame) -> bool:
            return frame.get("type") == type_ and all(frame.get(k) == v for k, v in fields.items())

        for index, frame in enumerate(self.buffer):
            if matches(frame):
                return self.buffer.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.user}: no {type_} {fields} frame; got {self.buffer}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError:
                continue
            received: Frame = json.loads(raw)
            if matches(received):
                return received
            self.buffer.append(received)

    async def drain(self, seconds: float) -> list[Frame]:
        """Every frame that arrives within `seconds` (for 'must not receive' checks)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.buffer.append(json.loads(await asyncio.wait_for(self.ws.recv(), remaining)))
            except (TimeoutError, ConnectionClosed):
                break
        frames, self.buffer = self.buffer, []
        return frames

    async def join(self, room: str, **extra: Any) -> Frame:
        await self.send(action="join", room=room, **extra)
        return await self.expect("joined", room=room)

    async def say(self, room: str, text: str, client_msg_id: str | None = None) -> Frame:
        cmid = client_msg_id or uuid.uuid4().hex
        await self.send(action="sendmessage", room=room, text=text, clientMsgId=cmid)
        return await self.expect("ack", clientMsgId=cmid)


@asynccontextmanager
async def chat(server: Server, user: str, **token: Any) -> AsyncIterator[Client]:
    async with websockets.connect(server.url(server.token(user, **token)), max_size=None) as ws:
        yield Client(ws, user)


async def connect_with_id(server: Server, user: str) -> tuple[Any, Client, str]:
    before = set(server.http("GET", "/dev/connections")[1]["connections"])
    ws = await websockets.connect(server.url(server.token(user)), max_size=None)
    after = set(server.http("GET", "/dev/connections")[1]["connections"])
    (connection,) = after - before
    return ws, Client(ws, user), connection


def records_mentioning(server: Server, value: str) -> list[dict[str, Any]]:
    """Every item in every table that mentions `value` anywhere (schema-agnostic)."""
    dynamodb = server.boto3_client("dynamodb")
    found: list[dict[str, Any]] = []
    for table in server.info()["tables"].values():
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            found.extend(item for item in page["Items"] if value in json.dumps(item))
    return found


def connection_record(server: Server, connection: str) -> dict[str, Any] | None:
    dynamodb = server.boto3_client("dynamodb")
    table = server.info()["tables"]["connections"]
    item = dynamodb.get_item(TableName=table, Key={"connectionId": {"S": connection}}, ConsistentRead=True)
    return cast("dict[str, Any] | None", item.get("Item"))


def wait_until(predicate: Callable[[], T | None], timeout: float = 20.0) -> T:
    return shared_wait_until(predicate, timeout, interval=0.1)


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(
        tmp_path_factory.mktemp("chat"),
        "--visibility-timeout",
        "2",
        "--janitor-interval",
        "0",
        "--env",
        "SHARD_SIZE=2",  # rooms of 3+ connections span several shards, i.e. several fan-out jobs
    )
    yield server
    server.stop()


# ----- client frames: one test per row ----------------------------------------------------------


def test_join_replies_joined_with_seq_members_and_messages(chat_server: Server) -> None:
    room, alice = unique("room"), unique("alice")

    async def scenario() -> Frame:
        async with chat(chat_server, alice) as client:
            return await client.join(room)

    joined = run(scenario())
    assert isinstance(joined.pop("epoch"), str)  # tests/integration/test_epoch.py
    assert joined == {
        "type": "joined",
        "room": room,
        "seq": 0,
        "rev": 0,
        "read": 0,
        "kind": "room",
        "members": [alice],
        "messages": [],
        "more": False,
    }


def test_leave_replies_left(chat_server: Server) -> None:
    room, alice = unique("room"), unique("alice")

    async def scenario() -> tuple[Frame, Frame]:
        async with chat(chat_server, alice) as client:
            await client.join(room)
            await client.send(action="leave", room=room)
            left = await client.expect("left")
            await client.send(action="sendmessage", room=room, text="hi", clientMsgId="m1")
            return left, await client.expect("error")

    left, error = run(scenario())
    assert left == {"type": "left", "room": room}
    assert error["code"] == "not_member"


def test_sendmessage_acks_and_fans_out_to_everyone_including_sender(chat_server: Server) -> None:
    room = unique("room")
    users = [unique(u) for u in ("alice", "bob", "carol")]

    async def scenario() -> tuple[Frame, list[Frame]]:
        async with (
            chat(chat_server, users[0], name="Alice") as a,
            chat(chat_server, users[1]) as b,
            chat(chat_server, users[2]) as c,
        ):
            for client in (a, b, c):
                await client.join(room)
            ack = await a.say(room, "héllo 👋", client_msg_id="cm-1")
            return ack, [await client.expect("message", room=room, seq=ack["seq"]) for client in (a, b, c)]

    ack, messages = run(scenario())
    assert set(ack) == {"type", "room", "clientMsgId", "id", "seq"}
    assert (ack["room"], ack["clientMsgId"], ack["seq"]) == (room, "cm-1", 1)
    for message in messages:
        assert message["id"] == ack["id"]
        assert (message["user"], message["name"], message["text"]) == (users[0], "Alice", "héllo 👋")
        assert message["clientMsgId"] == "cm-1"
        assert isinstance(message["ts"], int)


def test_history_pages_backwards_in_ascending_order(chat_server: Server) -> None:
    room, alice = unique("room"), unique("alice")

    async def scenario() -> list[Frame]:
        async with chat(chat_server, alice) as client:
            await client.join(room)
            for n in range(1, 6):
                await client.say(room, f"m{n}")
            pages = []
            for request in ({"limit": 2}, {"limit": 2, "before": 4}, {"limit": 2, "before": 2}, {}):
                await client.send(action="history", room=room, **request)
                pages.append(await client.expect("history", room=room))
            return pages

    pages = run(scenario())
    seqs = [[m["seq"] for m in page["messages"]] for page in pages]
    assert seqs == [[4, 5], [2, 3], [1], [1, 2, 3, 4, 5]]
    assert [page["more"] for page in pages] == [True, True, False, False]
    assert [m["text"] for m in pages[3]["messages"]] == ["m1", "m2", "m3", "m4", "m5"]


def test_typing_reaches_the_others_only(chat_server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def scenario() -> tuple[Frame, list[Frame]]:
        async with chat(chat_server, alice) as a, chat(chat_server, bob) as b:
            await a.join(room)
            await b.join(room)
            await a.send(action="typing", room=room)
            typing = await b.expect("typing", room=room)
            # bob's typing after alice's: once bob sees his own round trip end at alice, alice's
            # own typing would have arrived before it if it had been sent to her.
            await b.send(action="typing", room=room)
            await a.expect("typing", room=room, user=bob)
            return typing, [f for f in await a.drain(0.5) if f.get("type") == "typing" and f["user"] == alice]

    typing, own = run(scenario())
    assert typing == {"type": "typing", "room": room, "user": alice}
    assert own == []


def test_ping_replies_pong_with_a_timestamp(chat_server: Server) -> None:
    async def scenario() -> Frame:
        async with chat(chat_server, unique("alice")) as client:
            await client.send(action="ping")
            return await client.expect("pong")

    pong = run(scenario())
    assert set(pong) == {"type", "ts"}
    assert abs(pong["ts"] - time.time() * 1000) < 60_000


def test_presence_join_and_leave(chat_server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def scenario() -> tuple[Frame, Frame, Frame]:
        async with chat(chat_server, alice) as a:
            await a.join(room)
            async with chat(chat_server, bob) as b:
                joined = await b.join(room)
                presence_join = await a.expect("presence", user=bob)
                await b.send(action="leave", room=room)
                await b.expect("left")
                presence_leave = await a.expect("presence", user=bob)
            return joined, presence_join, presence_leave

    joined, presence_join, presence_leave = run(scenario())
    assert sorted(joined["members"]) == sorted([alice, bob])
    assert presence_join == {"type": "presence", "room": room, "user": bob, "event": "join"}
    assert presence_leave == {"type": "presence", "room": room, "user": bob, "event": "leave"}


def test_presence_leave_on_abrupt_disconnect(chat_server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def scenario() -> Frame:
        async with chat(chat_server, alice) as a:
            await a.join(room)
            ws = await websockets.connect(chat_server.url(chat_server.token(bob)))
            b = Client(ws, bob)
            await b.join(room)
            await a.expect("presence", user=bob, event="join")
            ws.transport.abort()  # no close frame: the network dropped
            return await a.expect("presence", user=bob, event="leave")

    assert run(scenario())["room"] == room


def test_presence_counts_users_not_connections(chat_server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def scenario() -> list[Frame]:
        async with chat(chat_server, alice) as a:
            await a.join(room)
            async with chat(chat_server, bob) as b1:
                await b1.join(room)
                await a.expect("presence", user=bob, event="join")
                async with chat(chat_server, bob) as b2:
                    await b2.join(room)
                # bob's second connection left; his first is still in the room
                await b1.say(room, "still here")
                await a.expect("message", room=room)
                frames = a.buffer + await a.drain(0.5)
                return [f for f in frames if f.get("type") == "presence" and f["user"] == bob]

    assert run(scenario()) == []


# ----- error codes ------------------------------------------------------------------------------


async def first_error(client: Client, raw: str) -> Frame:
    await client.ws.send(raw)
    return await client.expect("error")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("this is not json", "bad_request"),
        (json.dumps({"action": "join"}), "bad_request"),
        (json.dumps({"action": "join", "room": "bad room!"}), "bad_request"),
        (
            json.dumps({"action": "sendmessage", "room": "r", "text": "x", "clientMsgId": "bad id!"}),
            "bad_request",
        ),
        (json.dumps({"action": "dance"}), "unknown_action"),
        (
            json.dumps({"action": "sendmessage", "room": "nowhere", "text": "x", "clientMsgId": "a1"}),
            "not_member",
        ),
        (json.dumps({"action": "history", "room": "nowhere"}), "not_member"),
        (json.dumps({"action": "typing", "room": "nowhere"}), "not_member"),
        (
            json.dumps({"action": "sendmessage", "room": "r", "text": "x" * 4001, "clientMsgId": "a2"}),
            "too_large",
        ),
    ],
)
def test_refused_frames_get_error_codes_and_the_connection_stays_open(
    chat_server: Server, raw: str, code: str
) -> None:
    async def scenario() -> Frame:
        async with chat(chat_server, unique("alice")) as client:
            error = await first_error(client, raw)
            await client.send(action="ping")
            await client.expect("pong")
            return error

    error = run(scenario())
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


def test_forbidden_room_not_in_token(chat_server: Server) -> None:
    async def scenario() -> tuple[Frame, Frame]:
        async with chat(chat_server, unique("alice"), rooms=["lobby"]) as client:
            allowed = await client.join("lobby")
            return allowed, await first_error(client, json.dumps({"action": "join", "room": "secret"}))

    allowed, error = run(scenario())
    assert allowed["type"] == "joined"
    assert (error["code"], error.get("room"), error.get("action")) == ("forbidden", "secret", "join")


def test_internal_error_when_the_connection_record_is_missing(chat_server: Server) -> None:
    async def scenario() -> Frame:
        ws, client, connection = await connect_with_id(chat_server, unique("alice"))
        async with ws:
            dynamodb = chat_server.boto3_client("dynamodb")
            table = chat_server.info()["tables"]["connections"]
            dynamodb.delete_item(TableName=table, Key={"connectionId": {"S": connection}})
            await client.send(action="ping")
            return await client.expect("error")

    assert run(scenario())["code"] == "internal"


# ----- guarantees -------------------------------------------------------------------------------


def test_refused_handshakes_leave_no_record(chat_server: Server) -> None:
    user = unique("mallory")

    async def attempt(url: str) -> int:
        try:
            async with websockets.connect(url):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    from functions.chat.auth import mint_token

    expired = mint_token(
        "e2e-test-secret-0123456789abcdef0123456789", user, ttl_seconds=1, now=time.time() - 60
    )
    wrong_key = mint_token("another-secret-0123456789abcdef0123456789", user)
    statuses = [
        run(attempt(chat_server.url())),
        run(attempt(chat_server.url("not.a.jwt"))),
        run(attempt(chat_server.url(expired))),
        run(attempt(chat_server.url(wrong_key))),
    ]
    assert statuses[0] == 401
    assert all(status in (401, 403) for status in statuses[1:])
    assert records_mentioning(chat_server, user) == []


def test_seq_strictly_increasing_without_gaps_under_concurrent_senders(chat_server: Server) -> None:
    room = unique("room")

    async def scenario() -> tuple[list[int], list[int]]:
        async with chat(chat_server, unique("alice")) as a, chat(chat_server, unique("bob")) as b:
            await a.join(room)
            await b.join(room)

            async def burst(client: Client, tag: str) -> list[int]:
                ids = [f"{tag}{n}" for n in range(6)]
                for cmid in ids:  # pipelined: no waiting between sends
                    await client.send(action="sendmessage", room=room, text=cmid, clientMsgId=cmid)
                return [(await client.expect("ack", clientMsgId=cmid))["seq"] for cmid in ids]

            acked = await asyncio.gather(burst(a, "a"), burst(b, "b"))
            received = [(await a.expect("message", room=room, seq=seq))["seq"] for seq in range(1, 13)]
            return acked[0] + acked[1], received

    acked, received = run(scenario())
    assert sorted(acked) == list(range(1, 13))
    assert received == list(range(1, 13))


def test_idempotent_resend_same_ack_and_one_delivery(chat_server: Server) -> None:
    room = unique("room")

    async def scenario() -> tuple[Frame, Frame, list[Frame], Frame]:
        async with chat(chat_server, unique("alice")) as a, chat(chat_server, unique("bob")) as b:
            await a.join(room)
            await b.join(room)
            first = await a.say(room, "once", client_msg_id="same-id")
            second = await a.say(room, "once", client_msg_id="same-id")
            await b.expect("message", seq=first["seq"])
            marker = await a.say(room, "marker")
            await b.expect("message", seq=marker["seq"])
            duplicates = [f for f in b.buffer if f.get("type") == "message" and f["clientMsgId"] == "same-id"]
            await a.send(action="history", room=room)
            return first, second, duplicates, await a.expect("history")

    first, second, duplicates, history = run(scenario())
    assert (second["id"], second["seq"]) == (first["id"], first["seq"])
    assert duplicates == []
    assert [m["clientMsgId"] for m in history["messages"]].count("same-id") == 1


def test_recovery_with_since_after_reconnect(chat_server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def scenario() -> tuple[int, Frame]:
        async with chat(chat_server, bob) as b:
            await b.join(room)
            async with chat(chat_server, alice) as a:
                await a.join(room)
                last_seen = (await b.say(room, "before"))["seq"]
                await a.expect("message", seq=last_seen)
            for n in range(3):
                await b.say(room, f"missed {n}")
            async with chat(chat_server, alice) as a:
                return last_seen, await a.join(room, since=last_seen)

    last_seen, joined = run(scenario())
    assert [m["seq"] for m in joined["messages"]] == [last_seen + 1, last_seen + 2, last_seen + 3]
    assert [m["text"] for m in joined["messages"]] == ["missed 0", "missed 1", "missed 2"]
    assert joined["more"] is False
    assert joined["seq"] == last_seen + 3


def test_oversize_frame_closes_1009_and_fragmented_large_text_is_too_large(chat_server: Server) -> None:
    async def scenario() -> tuple[int | None, Frame]:
        async with chat(chat_server, unique("alice")) as client:
            frame = json.dumps(
                {"action": "sendmessage", "room": "r", "text": "x" * 60_000, "clientMsgId": "big"}
            )
            await client.ws.send([frame[i : i + 30_000] for i in range(0, len(frame), 30_000)])
            too_large = await client.expect("error")
        async with chat(chat_server, unique("alice")) as client:
            await client.ws.send("x" * 40_000)
            try:
                await asyncio.wait_for(client.ws.recv(), 15)
            except ConnectionClosed as exc:
                return (exc.rcvd.code if exc.rcvd else None), too_large
        raise AssertionError("not closed")

    code, too_large = run(scenario())
    assert code == 1009
    assert too_large["code"] == "too_large"


def test_boto3_management_client_gets_gone_for_unknown_connection(chat_server: Server) -> None:
    client = chat_server.boto3_client("apigatewaymanagementapi")
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="Ab3dEfGhIAMCJ-Q=", Data=b"{}")


def test_stale_connection_is_removed_on_410_during_fanout(chat_server: Server) -> None:
    room, alice, ghost = unique("room"), unique("alice"), unique("ghost")

    async def scenario() -> str:
        async with chat(chat_server, alice) as a:
            await a.join(room)
            _ws, g, connection = await connect_with_id(chat_server, ghost)
            await g.join(room)
            await a.expect("presence", user=ghost, event="join")
            status, _ = chat_server.http("POST", f"/dev/connections/{connection}/drop")
            assert status == 204
            assert connection_record(chat_server, connection) is not None  # stale: no $disconnect ran
            ack = await a.say(room, "anyone there?")
            await a.expect("message", seq=ack["seq"])
            await a.expect("presence", user=ghost, event="leave")
            return connection

    connection = run(scenario())
    wait_until(lambda: connection_record(chat_server, connection) is None)


# ----- limits that need their own settings --------------------------------------------------------


@pytest.fixture(scope="module")
def short_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(
        tmp_path_factory.mktemp("short"),
        "--idle-timeout",
        "3",
        "--janitor-interval",
        "0",
        "--rate-limit",
        "1",
        "--rate-burst",
        "3",
    )
    yield server
    server.stop()


def test_rate_limited_error_per_connection(short_server: Server) -> None:
    async def scenario() -> list[Frame]:
        async with chat(short_server, unique("alice")) as client:
            for _ in range(8):
                await client.send(action="ping")
            return await client.drain(1.5)

    frames = run(scenario())
    codes = [f.get("code") for f in frames if f.get("type") == "error"]
    assert "rate_limited" in codes
    assert any(f.get("type") == "pong" for f in frames)


def test_idle_timeout_closes_1001_and_runs_disconnect(short_server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def keep_alive(client: Client) -> None:
        while True:  # any frame counts as activity for the idle timeout
            await asyncio.sleep(0.5)
            await client.send(action="ping")

    async def scenario() -> tuple[int | None, Frame]:
        async with chat(short_server, alice) as a:
            await a.join(room)
            alive = asyncio.create_task(keep_alive(a))
            try:
                async with websockets.connect(
                    short_server.url(short_server.token(bob)), ping_interval=None
                ) as ws:
                    b = Client(ws, bob)
                    await b.join(room)
                    await a.expect("presence", user=bob, event="join")
                    try:
                        while True:
                            await asyncio.wait_for(ws.recv(), 10)
                    except ConnectionClosed as exc:
                        code = exc.rcvd.code if exc.rcvd else None
                return code, await a.expect("presence", user=bob, event="leave")
            finally:
                alive.cancel()

    code, presence = run(scenario())
    assert code == 1001
    assert presence["room"] == room


def assert_the_janitor_prunes_a_dropped_connection(server: Server, idle_timeout: float) -> None:
    """A connection dropped behind the runtime's back: the janitor's GetConnection answers 410
    (over HTTP, at the runtime's Management API endpoint) and its records go."""

    async def scenario() -> str:
        user = unique("ghost")
        _ws, client, connection = await connect_with_id(server, user)
        await client.join(unique("room"))
        # Wait for the fan-out of our own presence: dropped earlier, its 410 would prune us first.
        await client.expect("presence", user=user, event="join")
        server.http("POST", f"/dev/connections/{connection}/drop")
        return connection

    connection = run(scenario())
    assert connection_record(server, connection) is not None
    time.sleep(idle_timeout + 0.5)
    status, body = server.http("POST", "/dev/janitor")
    assert status == 200 and body["ok"], body
    assert connection_record(server, connection) is None


def test_janitor_prunes_a_connection_dropped_behind_the_runtimes_back(short_server: Server) -> None:
    assert_the_janitor_prunes_a_dropped_connection(short_server, idle_timeout=3)


@pytest.fixture(scope="module")
def throttled_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(
        tmp_path_factory.mktemp("throttled"),
        "--throttle-rate",
        "1",
        "--throttle-burst",
        "4",
        "--janitor-interval",
        "0",
    )
    yield server
    server.stop()


def test_stage_throttling_answers_too_many_requests(throttled_server: Server) -> None:
    async def scenario() -> list[Frame]:
        async with chat(throttled_server, unique("alice")) as client:
            for _ in range(6):
                await client.send(action="ping")
            frames = []
            for _ in range(6):
                frames.append(json.loads(await asyncio.wait_for(client.ws.recv(), 15)))
            return frames

    frames = run(scenario())
    throttled = [f for f in frames if f.get("message") == "Too Many Requests"]
    assert throttled
    assert all(set(f) == {"message", "connectionId", "requestId"} for f in throttled)
    assert any(f.get("type") == "pong" for f in frames)


# ----- at-least-once delivery under injected faults ----------------------------------------------


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("faulty")
    faults = workdir / "faults.json"
    faults.write_text(
        json.dumps(
            {
                "post_to_connection": {
                    "throttle_rate": 0.2,
                    "error_rate": 0.05,
                    "gone_rate": 0.0,
                    "latency_ms": 5,
                },
                "fanout_crash_rate": 0.1,
                "sqs_duplicate_rate": 0.1,
                "seed": 11,
            }
        )
    )
    server = start_server(
        workdir, "--faults", str(faults), "--visibility-timeout", "2", "--janitor-interval", "0"
    )
    yield server
    server.stop()


def test_every_message_arrives_at_least_once_despite_faults(faulty_server: Server) -> None:
    room = unique("room")
    count = 12

    async def collect(client: Client, seen: set[int]) -> None:
        while len(seen) < count:
            frame = json.loads(await client.ws.recv())
            if frame.get("type") == "message" and frame["room"] == room:
                seen.add(frame["seq"])

    async def scenario() -> tuple[set[int], set[int]]:
        async with chat(faulty_server, unique("alice")) as a, chat(faulty_server, unique("bob")) as b:
            await a.join(room)  # joined is a route response: no Management API call to fault
            await b.join(room)
            for n in range(count):
                await a.send(action="sendmessage", room=room, text=f"m{n}", clientMsgId=f"m{n}")
            seen_a: set[int] = set()
            seen_b: set[int] = set()
            await asyncio.wait_for(asyncio.gather(collect(a, seen_a), collect(b, seen_b)), 60)
            return seen_a, seen_b

    seen_a, seen_b = run(scenario())
    assert seen_a == seen_b == set(range(1, count + 1))
    injected = faulty_server.info()["injected_faults"]
    assert injected["throttle"] > 0 and injected["fanout_crash"] + injected["sqs_duplicate"] > 0, injected
