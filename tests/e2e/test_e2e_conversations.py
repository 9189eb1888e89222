"""v2 users and conversations end to end: real WebSocket clients against `dynamowave serve`
with the real handlers (docs/protocol.md, "v2: users and conversations")."""

from __future__ import annotations

from typing import Any, cast

import pytest
import websockets

from functions.chat.auth import mint_token
from tests.e2e.conftest import SECRET, Server, start_server
from tests.e2e.test_e2e_chat import Client, chat, run, unique


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(tmp_path_factory.mktemp("conversations"), "--visibility-timeout", "2")
    yield server
    server.stop()


async def rooms(client: Client) -> list[dict[str, Any]]:
    await client.send(action="rooms")
    reply = await client.expect("rooms")
    return cast("list[dict[str, Any]]", reply["rooms"])


def test_two_devices_share_membership_unread_counts_and_read_markers(server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def scenario() -> None:
        async with chat(server, alice) as phone, chat(server, alice) as laptop, chat(server, bob) as other:
            await phone.join(room)
            await other.join(room)
            for n in range(3):
                await other.say(room, f"news {n}")
            # The laptop never joined: the membership is the user's, so it lists the room.
            [entry] = await rooms(laptop)
            assert (entry["room"], entry["seq"], entry["read"], entry["unread"]) == (room, 3, 0, 3)
            assert entry["last"]["text"] == "news 2"
            await laptop.send(action="read", room=room, seq=2)
            assert await laptop.expect("read", room=room) == {
                "type": "read",
                "room": room,
                "seq": 2,
                "unread": 1,
            }
            # The phone follows the laptop's marker without asking.
            assert await phone.expect("read", room=room) == {
                "type": "read",
                "room": room,
                "seq": 2,
                "unread": 1,
            }
            [entry] = await rooms(phone)
            assert entry["unread"] == 1
            # Leaving on one device unsubscribes the other, which is told.
            await laptop.send(action="leave", room=room)
            await laptop.expect("left", room=room)
            await phone.expect("left", room=room)
            await other.say(room, "anyone?")
            assert not [f for f in await phone.drain(1.5) if f.get("text") == "anyone?"]
            assert await rooms(phone) == []

    run(scenario())


def test_a_reconnect_finds_its_rooms_and_recovers_what_it_missed(server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def scenario() -> None:
        async with chat(server, alice) as first:
            await first.join(room)
        async with chat(server, bob) as other:
            await other.join(room)
            await other.say(room, "while you were away")
        async with chat(server, alice) as again:
            [entry] = await rooms(again)
            assert (entry["room"], entry["unread"]) == (room, 1)
            joined = await again.join(room, since=entry["read"])
            assert [m["text"] for m in joined["messages"]] == ["while you were away"]
            assert joined["read"] == 0

    run(scenario())


def test_dm_invite_reaches_a_connection_that_never_joined_and_receipts_come_back(server: Server) -> None:
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")

    async def scenario() -> None:
        async with chat(server, alice) as a, chat(server, bob) as b, chat(server, carol) as c:
            await a.send(action="dm", user=bob)
            opened = await a.expect("joined")
            room = opened["room"]
            assert (opened["kind"], opened["with"]) == ("dm", bob)
            invited = await b.expect("invited", room=room)
            assert invited == {"type": "invited", "room": room, "kind": "dm", "from": alice}
            joined = await b.join(room)
            assert (joined["kind"], joined["with"]) == ("dm", alice)
            await a.say(room, "hi bob")
            message = await b.expect("message", room=room)
            await b.send(action="read", room=room, seq=message["seq"])
            await b.expect("read", room=room)
            receipt = await a.expect("receipt", room=room)
            assert receipt == {"type": "receipt", "room": room, "user": bob, "seq": message["seq"]}
            [entry] = await rooms(b)
            assert (entry["kind"], entry["with"], entry["unread"]) == ("dm", alice, 0)
            # A third user is refused, and cannot post into it either.
            await c.send(action="join", room=room)
            refused = await c.expect("error", room=room)
            assert refused["code"] == "forbidden"

    run(scenario())


def test_dm_false_claim_forbids_direct_messages(server: Server) -> None:
    guest, alice = unique("guest"), unique("alice")
    token = mint_token(SECRET, guest, dm=False)

    async def scenario() -> None:
        async with websockets.connect(server.url(token)) as ws:
            client = Client(ws, guest)
            await client.send(action="dm", user=alice)
            refused = await client.expect("error", action="dm")
            assert refused["code"] == "forbidden"
            assert await rooms(client) == []

    run(scenario())
