"""Moderation against `dynamowave serve` over real WebSockets (docs/protocol.md, "Moderation"):
a moderator's ban takes effect on a live connection, a mute refuses a live connection's send,
a kick reaches both devices of a user; and the operator API's mute routes (client and CLI)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Server, start_server
from tests.e2e.test_e2e_chat import chat, run, unique
from tests.e2e.test_e2e_operator_api import admin, admin_cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(tmp_path_factory.mktemp("moderation"), "--janitor-interval", "0")
    yield server
    server.stop()


def test_a_moderators_ban_takes_effect_on_a_live_connection(server: Server) -> None:
    room, eve_id, mia_id = unique("club"), unique("eve"), unique("mia")

    async def scenario() -> None:
        async with (
            chat(server, mia_id, mod=[room]) as mia,
            chat(server, eve_id) as eve,
            chat(server, unique("ann")) as ann,
        ):
            await eve.join(room)
            await ann.join(room)
            await mia.send(action="ban", room=room, user=eve_id, seconds=3600, reason="spam")
            assert await mia.expect("moderated", room=room) == {
                "type": "moderated",
                "room": room,
                "user": eve_id,
                "op": "ban",
            }
            banned = await eve.expect("banned", room=room)
            assert (banned["by"], banned["reason"]) == (mia_id, "spam")
            await ann.expect("presence", room=room, user=eve_id, event="leave")
            await eve.send(action="sendmessage", room=room, text="still here?", clientMsgId="x1")
            assert (await eve.expect("error", clientMsgId="x1"))["code"] == "not_member"
            await eve.send(action="join", room=room)
            refused = await eve.expect("error", action="join")
            assert refused["code"] == "banned" and "until" in refused["message"]
            # A reconnect is refused too: the ban is the user's, not the connection's.
            async with chat(server, eve_id) as again:
                await again.send(action="join", room=room)
                assert (await again.expect("error", action="join"))["code"] == "banned"
            # Ann (no `mod` claim) cannot lift it; Mia can.
            await ann.send(action="unban", room=room, user=eve_id)
            assert (await ann.expect("error", action="unban"))["code"] == "forbidden"
            await mia.send(action="unban", room=room, user=eve_id)
            await mia.expect("moderated", op="unban")
            await eve.join(room)

    run(scenario())


def test_a_mute_refuses_a_live_connections_send_and_nothing_is_delivered(server: Server) -> None:
    room, bob_id, mia_id = unique("club"), unique("bob"), unique("mia")

    async def scenario() -> None:
        async with chat(server, mia_id, mod="*") as mia, chat(server, bob_id) as bob:
            await mia.join(room)
            await bob.join(room)
            await mia.send(action="mute", room=room, user=bob_id)
            await mia.expect("moderated", op="mute")
            await bob.send(action="sendmessage", room=room, text="spam", clientMsgId="s1")
            refused = await bob.expect("error", clientMsgId="s1")
            assert (refused["code"], refused["action"]) == ("muted", "sendmessage")
            await bob.send(action="typing", room=room)
            assert (await bob.expect("error", action="typing"))["code"] == "muted"
            assert [f for f in await mia.drain(1.0) if f["type"] in ("message", "typing")] == []
            await mia.send(action="history", room=room)
            assert (await mia.expect("history", room=room))["messages"] == []
            await mia.send(action="unmute", room=room, user=bob_id)
            await mia.expect("moderated", op="unmute")
            await bob.say(room, "sorry")
            message = await mia.expect("message", room=room)
            assert message["text"] == "sorry"

    run(scenario())


def test_a_kick_reaches_both_devices_of_the_user(server: Server) -> None:
    room, bob_id, mia_id = unique("club"), unique("bob"), unique("mia")

    async def scenario() -> None:
        async with (
            chat(server, mia_id, mod=[room]) as mia,
            chat(server, bob_id) as phone,
            chat(server, bob_id) as laptop,
        ):
            await mia.join(room)
            await phone.join(room)
            await laptop.join(room)
            await mia.send(action="kick", room=room, user=bob_id, reason="off topic")
            await mia.expect("moderated", op="kick")
            for device in (phone, laptop):
                kicked = await device.expect("kicked", room=room)
                assert (kicked["by"], kicked["reason"]) == (mia_id, "off topic")
            await mia.expect("presence", room=room, user=bob_id, event="leave")
            await phone.send(action="rooms")
            assert (await phone.expect("rooms"))["rooms"] == []
            await laptop.join(room)  # a kick is not a ban

    run(scenario())


def test_operator_mute_and_unmute_with_the_client_and_the_cli(server: Server) -> None:
    room, bob_id = unique("club"), unique("bob")
    cli = admin_cli(server)

    async def scenario() -> None:
        async with chat(server, bob_id) as bob:
            await bob.join(room)
            assert admin(server).mute(room, bob_id, seconds=600) == {"muted": True, "seconds": 600}
            await bob.send(action="sendmessage", room=room, text="hi", clientMsgId="c1")
            assert (await bob.expect("error", clientMsgId="c1"))["code"] == "muted"
            assert admin(server).unmute(room, bob_id) == {"unmuted": True}
            await bob.say(room, "hi again", "c2")
            muted = cli("mute", room, bob_id)
            assert muted.returncode == 0, muted.stderr
            assert json.loads(muted.stdout) == {"muted": True, "seconds": None}
            await bob.send(action="sendmessage", room=room, text="hi", clientMsgId="c3")
            assert (await bob.expect("error", clientMsgId="c3"))["code"] == "muted"
            unmuted = cli("unmute", room, bob_id)
            assert json.loads(unmuted.stdout) == {"unmuted": True}
            refused = cli("mute", room, bob_id, "--seconds", "0")
            assert refused.returncode == 2 and "400 bad_request" in refused.stderr
            await bob.say(room, "and again", "c4")

    run(scenario())
