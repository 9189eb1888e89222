"""The terminal client's core (dynamowave.terminal_client) against the real local runtime.

Each test drives a `ChatClient` in-process: lines go in through a queue, printed lines are
collected; other users are plain WebSocket connections.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, cast

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.sync.client import connect as connect_sync

from dynamowave.terminal_client import (
    ChatClient,
    ChatError,
    ChatOptions,
    RoomState,
    format_message,
    is_loopback,
    moderation_frame,
    normalise_url,
    printable,
    with_token,
)
from dynamowave.testing.frames import replied
from dynamowave.testing.waits import wait_for_frame
from tests.clients.local_runtime import LocalRuntime, post_messages

WAIT = 30.0  # a first join or delivery on a loaded machine (5 engineers, 2 cores) took over 15 s


def fresh_room(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Terminal:
    """Stands in for stdin/stdout of one `dynamowave chat` session."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.output: list[str] = []
        self.changed = asyncio.Event()

    def print(self, line: str) -> None:
        self.output.append(line)
        self.changed.set()

    async def stdin(self) -> AsyncIterator[str]:
        while (line := await self.lines.get()) is not None:
            yield line

    def type(self, line: str) -> None:
        self.lines.put_nowait(line + "\n")

    async def wait_for(self, wanted: str) -> str:
        """The first printed line containing `wanted` (waits for it)."""
        async with asyncio.timeout(WAIT):
            while True:
                for line in self.output:
                    if wanted in line:
                        return line
                self.changed.clear()
                await self.changed.wait()

    def count(self, wanted: str) -> int:
        return sum(wanted in line for line in self.output)


class HeldClient(ChatClient):
    """Stays disconnected after a drop until the test releases it, so timing is the test's."""

    def __init__(self, options: ChatOptions, output: Callable[[str], None]) -> None:
        super().__init__(options, output)
        self.offline = asyncio.Event()
        self.release = asyncio.Event()

    async def _backoff(self, attempt: int, why: str) -> None:
        self.out(f"* {why}; held offline by the test")
        self.offline.set()
        await self.release.wait()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def other_user(runtime: LocalRuntime, user: str, room: str) -> ClientConnection:
    token = await asyncio.to_thread(runtime.token, user)
    ws = await connect(runtime.socket_url(token))
    await ws.send(json.dumps({"action": "join", "room": room}))
    await next_frame(ws, "joined")
    return ws


async def next_frame(ws: ClientConnection, kind: str, **fields: Any) -> dict[str, Any]:
    """The next frame of type `kind` whose fields match (earlier frames are skipped)."""
    async with asyncio.timeout(WAIT):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items()):
                return cast("dict[str, Any]", frame)


async def start(
    runtime: LocalRuntime, user: str, room: str, client_class: type[ChatClient] = ChatClient, **extra: Any
) -> tuple[ChatClient, Terminal, asyncio.Task[int]]:
    terminal = Terminal()
    options = ChatOptions(url=runtime.ws_url, room=room, user=user, **extra)
    client = client_class(options, terminal.print)
    task = asyncio.create_task(client.run(terminal.stdin()))
    await terminal.wait_for(f"* joined #{room}")
    return client, terminal, task


async def quit_cleanly(terminal: Terminal, task: asyncio.Task[int]) -> None:
    terminal.type("/quit")
    async with asyncio.timeout(WAIT):
        assert await task == 0


# ---------------------------------------------------------------------------------------------
# Against the runtime


def test_chats_both_ways_and_prints_presence_and_typing(runtime: LocalRuntime) -> None:
    room = fresh_room("terminal")

    async def scenario() -> None:
        _, terminal, task = await start(runtime, "alice", room)
        bob = await other_user(runtime, "bob", room)
        await terminal.wait_for(f"* bob joined #{room}")

        await bob.send(json.dumps({"action": "typing", "room": room}))
        await terminal.wait_for(f"* bob is typing in #{room}")
        await bob.send(
            json.dumps({"action": "sendmessage", "room": room, "text": "hi alice", "clientMsgId": "b1"})
        )
        assert await terminal.wait_for("bob: hi alice") == "[1] bob: hi alice"

        terminal.type("hello bob")
        message = await next_frame(bob, "message", user="alice")
        assert (message["user"], message["text"], message["seq"]) == ("alice", "hello bob", 2)
        assert len(message["clientMsgId"]) >= 16  # generated, URL-safe
        assert await terminal.wait_for("alice: hello bob") == "[2] alice: hello bob"

        await bob.close()
        await terminal.wait_for(f"* bob left #{room}")
        await quit_cleanly(terminal, task)
        assert terminal.count("bob: hi alice") == 1

    run(scenario)


def test_history_command_pages_back_before_the_lowest_seq(runtime: LocalRuntime) -> None:
    room = fresh_room("history")
    texts = [f"entry {n}" for n in range(1, 54)]
    text_of = dict(zip(post_messages(runtime, "archivist", room, texts), texts, strict=True))

    def seqs_printed(terminal: Terminal) -> list[int]:
        return [int(line[1 : line.index("]")]) for line in terminal.output if line.startswith("[")]

    async def scenario() -> None:
        _, terminal, task = await start(runtime, "reader", room)
        # Joining prints the last 50: seq 4..53.
        await terminal.wait_for(f"[53] archivist: {text_of[53]}")
        assert seqs_printed(terminal) == list(range(4, 54))

        terminal.type("/history 2")  # before 4: seqs 2 and 3
        await terminal.wait_for(f"[2] archivist: {text_of[2]}")
        assert seqs_printed(terminal) == [*range(4, 54), 2, 3]
        assert terminal.count(f"* history of #{room}:") == 1

        terminal.type("/history")  # before 2: seq 1, the beginning
        await terminal.wait_for(f"[1] archivist: {text_of[1]}")
        terminal.type("/history")
        await terminal.wait_for(f"* no older messages in #{room}")
        assert seqs_printed(terminal) == [*range(4, 54), 2, 3, 1]
        await quit_cleanly(terminal, task)

    run(scenario)


def test_reconnects_with_since_and_resends_queued_lines_once(runtime: LocalRuntime) -> None:
    room = fresh_room("recover")

    async def scenario() -> None:
        client, terminal, task = await start(runtime, "alice", room, client_class=HeldClient)
        assert isinstance(client, HeldClient)
        bob = await other_user(runtime, "bob", room)
        await bob.send(
            json.dumps({"action": "sendmessage", "room": room, "text": "one", "clientMsgId": "b1"})
        )
        await terminal.wait_for("[1] bob: one")

        assert client.connection is not None
        await client.connection.close()  # the network drops
        async with asyncio.timeout(WAIT):
            await client.offline.wait()
        await bob.send(
            json.dumps({"action": "sendmessage", "room": room, "text": "two", "clientMsgId": "b2"})
        )
        await next_frame(bob, "ack", clientMsgId="b2")
        terminal.type("typed during the outage")  # queued until the room is joined again
        await asyncio.sleep(0.2)
        assert terminal.count("typed during the outage") == 0

        client.release.set()
        await terminal.wait_for(f"* rejoined #{room}: 1 missed message(s)")
        await terminal.wait_for("[2] bob: two")
        resent = await next_frame(bob, "message", user="alice")
        assert (resent["user"], resent["text"], resent["seq"]) == ("alice", "typed during the outage", 3)
        await terminal.wait_for("[3] alice: typed during the outage")
        await bob.close()
        await quit_cleanly(terminal, task)
        for line in ("[1] bob: one", "[2] bob: two", "[3] alice: typed during the outage"):
            assert terminal.count(line) == 1

    run(scenario)


def test_edit_delete_and_react_commands_and_their_updates(runtime: LocalRuntime) -> None:
    room = fresh_room("lifecycle")

    async def scenario() -> None:
        _, terminal, task = await start(runtime, "alice", room)
        bob = await other_user(runtime, "bob", room)
        terminal.type("helo")
        await terminal.wait_for("[1] alice: helo")
        terminal.type("/edit 1 hello")
        await terminal.wait_for("[1] alice: hello (edited)")
        edited = await next_frame(bob, "update", seq=1)
        assert edited["text"] == "hello"
        terminal.type("/react 1 👍")
        await terminal.wait_for("[1] alice: hello (edited)  [👍 1*]")
        await bob.send(json.dumps({"action": "react", "room": room, "seq": 1, "emoji": "👍", "on": True}))
        await terminal.wait_for("[👍 2*]")
        terminal.type("/react 1 👍")  # again: takes it back
        await terminal.wait_for("  [👍 1]")
        terminal.type("/delete 1")
        await terminal.wait_for("[1] (message deleted)")
        for bad, usage in (
            ("/edit x hi", "/edit SEQ TEXT"),
            ("/react 1", "/react SEQ EMOJI"),
            ("/delete", "/delete SEQ"),
        ):
            terminal.type(bad)
            await terminal.wait_for(f"! usage: {usage}")
        terminal.type("/edit 1 back from the dead")
        await terminal.wait_for("! not_found")
        await bob.close()
        await quit_cleanly(terminal, task)

    run(scenario)


def test_reconnect_recovers_changes_made_while_offline(runtime: LocalRuntime) -> None:
    room = fresh_room("recover-changes")

    async def scenario() -> None:
        client, terminal, task = await start(runtime, "alice", room, client_class=HeldClient)
        assert isinstance(client, HeldClient)
        bob = await other_user(runtime, "bob", room)
        for text, cmid in (("one", "b1"), ("two", "b2")):
            await bob.send(
                json.dumps({"action": "sendmessage", "room": room, "text": text, "clientMsgId": cmid})
            )
            # Each send its ack first: two frames in flight are two concurrent invocations, which
            # may take their seqs in either order (docs/local-runtime.md, "What differs").
            await next_frame(bob, "ack", clientMsgId=cmid)
        await terminal.wait_for("[2] bob: two")
        assert client.connection is not None
        await client.connection.close()
        async with asyncio.timeout(WAIT):
            await client.offline.wait()
        await bob.send(json.dumps({"action": "edit", "room": room, "seq": 1, "text": "one, edited"}))
        await next_frame(bob, "changed", seq=1)
        await bob.send(json.dumps({"action": "delete", "room": room, "seq": 2}))
        await next_frame(bob, "changed", seq=2)
        client.release.set()
        await terminal.wait_for(f"* rejoined #{room}")
        await terminal.wait_for("[1] bob: one, edited (edited)")
        await terminal.wait_for("[2] (message deleted)")
        await bob.close()
        await quit_cleanly(terminal, task)

    run(scenario)


def test_join_switch_and_leave_rooms(runtime: LocalRuntime) -> None:
    first, second = fresh_room("first"), fresh_room("second")

    async def scenario() -> None:
        _, terminal, task = await start(runtime, "alice", first)
        terminal.type(f"/join {second}")
        await terminal.wait_for(f"* joined #{second}")
        terminal.type("in the second room")
        await terminal.wait_for("[1] alice: in the second room")

        bob = await other_user(runtime, "bob", first)
        await bob.send(
            json.dumps({"action": "sendmessage", "room": first, "text": "psst", "clientMsgId": "p"})
        )
        # Messages of a room other than the current one carry the room name.
        await terminal.wait_for(f"#{first} [1] bob: psst")

        # /rooms is the server's list (v2): every room of the user, newest activity first,
        # with unread counts (one's own messages count until /read).
        terminal.type("/rooms")
        await terminal.wait_for("* your rooms (newest activity first):")
        assert await terminal.wait_for(f"#{first}  ") == f"   #{first}  1 unread  (seq 1)  bob: psst"
        assert (
            await terminal.wait_for(f"*#{second}  ")
            == f"  *#{second}  1 unread  (seq 1)  alice: in the second room"
        )
        assert terminal.output.index(f"   #{first}  1 unread  (seq 1)  bob: psst") < terminal.output.index(
            f"  *#{second}  1 unread  (seq 1)  alice: in the second room"
        )
        terminal.type("/read")
        assert await terminal.wait_for("read up to") == f"* #{second} read up to 1 (0 unread)"
        terminal.type("/leave")
        await terminal.wait_for(f"* now talking in #{first}")
        terminal.type("/who")
        assert await terminal.wait_for("* online in") == f"* online in #{first}: alice, bob"
        terminal.type("/help")
        await terminal.wait_for("/history [N]")
        terminal.type("/nonsense")
        await terminal.wait_for("! unknown command /nonsense")
        await bob.close()
        await quit_cleanly(terminal, task)

    run(scenario)


def test_dm_opens_the_pairs_room_and_the_other_user_is_invited(runtime: LocalRuntime) -> None:
    bob_id = fresh_room("bob")  # a user of this test only

    async def scenario() -> None:
        _, terminal, task = await start(runtime, "alice", fresh_room("home"))
        bob = await other_user(runtime, bob_id, fresh_room("elsewhere"))
        terminal.type(f"/dm {bob_id}")
        await terminal.wait_for(f"* joined @{bob_id}")
        invited = await next_frame(bob, "invited")
        assert (invited["kind"], invited["from"]) == ("dm", "alice")
        await bob.send(json.dumps({"action": "join", "room": invited["room"]}))
        await next_frame(bob, "joined", room=invited["room"])
        terminal.type("hello in private")  # the DM is the current room now
        message = await next_frame(bob, "message", room=invited["room"])
        assert message["text"] == "hello in private"
        await bob.send(json.dumps({"action": "read", "room": invited["room"], "seq": message["seq"]}))
        await terminal.wait_for(f"* {bob_id} has seen @{bob_id} up to {message['seq']}")
        terminal.type("/dm alice")
        await terminal.wait_for("! usage: /dm USER")
        await bob.close()
        await quit_cleanly(terminal, task)

    run(scenario)


def test_error_frames_are_printed_and_the_session_goes_on(runtime: LocalRuntime) -> None:
    room = fresh_room("errors")

    async def scenario() -> None:
        _, terminal, task = await start(runtime, "alice", room)
        terminal.type("x" * 4001)  # over the 4000-character limit
        line = await terminal.wait_for("! too_large")
        assert "action sendmessage" in line and f"room {room}" in line
        await terminal.wait_for("! not sent: xxxx")
        terminal.type("short enough")
        await terminal.wait_for("[1] alice: short enough")
        await quit_cleanly(terminal, task)

    run(scenario)


def test_control_characters_in_messages_cannot_drive_the_terminal(runtime: LocalRuntime) -> None:
    room = fresh_room("ansi")
    post_messages(runtime, "mallory", room, ["\x1b[2J\x1b]0;owned\x07wiped"])

    async def scenario() -> None:
        _, terminal, task = await start(runtime, "alice", room)
        line = await terminal.wait_for("mallory:")
        assert "\x1b" not in line and "\x07" not in line
        assert line == "[1] mallory: \\x1b[2J\\x1b]0;owned\\x07wiped"
        await quit_cleanly(terminal, task)

    run(scenario)


def test_since_option_prints_only_later_messages(runtime: LocalRuntime) -> None:
    room = fresh_room("since")
    texts = ["a", "b", "c"]
    text_of = dict(zip(post_messages(runtime, "archivist", room, texts), texts, strict=True))

    async def scenario() -> None:
        _, terminal, task = await start(runtime, "reader", room, since=2)
        await terminal.wait_for(f"[3] archivist: {text_of[3]}")
        assert terminal.count(f"archivist: {text_of[1]}") == terminal.count(f"archivist: {text_of[2]}") == 0
        await quit_cleanly(terminal, task)

    run(scenario)


def test_end_of_input_exits_once_sent_lines_are_acknowledged(runtime: LocalRuntime) -> None:
    room = fresh_room("eof")

    async def scenario() -> None:
        _, terminal, task = await start(runtime, "alice", room)
        terminal.type("last words")
        terminal.lines.put_nowait(None)  # end of input
        async with asyncio.timeout(WAIT):
            assert await task == 0

    run(scenario)
    token = runtime.token("checker")
    with connect_sync(runtime.socket_url(token)) as ws:
        ws.send(json.dumps({"action": "join", "room": room, "since": 0}))
        joined = wait_for_frame(ws, lambda f: f.get("type") == "joined")
    assert [m["text"] for m in joined["messages"]] == ["last words"]


def test_refused_token_is_a_clear_fatal_error(runtime: LocalRuntime) -> None:
    async def scenario() -> None:
        options = ChatOptions(url=runtime.ws_url, room="general", token="not-a-jwt")
        with pytest.raises(ChatError, match=r"HTTP 403.*rejected"):
            await ChatClient(options, print).run(Terminal().stdin())

    run(scenario)


# ---------------------------------------------------------------------------------------------
# Pure helpers


def test_urls_are_normalised_and_carry_the_token() -> None:
    assert normalise_url("ws://127.0.0.1:8765") == "ws://127.0.0.1:8765/"
    assert normalise_url("https://abc.execute-api.us-east-1.amazonaws.com/prod") == (
        "wss://abc.execute-api.us-east-1.amazonaws.com/prod"
    )
    assert normalise_url("ws://h:1/?token=old&x=1") == "ws://h:1/?x=1"
    assert with_token("wss://h/prod", "a.b-c_d") == "wss://h/prod?token=a.b-c_d"
    for bad in ("ftp://h/", "127.0.0.1:8765", "ws://", "ws://h:99999/"):
        with pytest.raises(ChatError):
            normalise_url(bad)


def test_loopback_detection() -> None:
    assert (
        is_loopback("ws://127.0.0.1:1/") and is_loopback("ws://localhost/") and is_loopback("ws://[::1]:2/")
    )
    assert not is_loopback("wss://abc.execute-api.us-east-1.amazonaws.com/prod")
    assert not is_loopback("ws://10.0.0.5:8765/")


def test_message_formatting() -> None:
    message = {"room": "r", "seq": 7, "user": "bob", "text": "two\nlines"}
    assert format_message(message) == "[7] bob: two\n         lines"
    assert format_message(message, show_room=True).startswith("#r [7] bob: two")
    assert printable("tab\there \x1b[31m \x7f é 👋") == "tab\there \\x1b[31m \\x7f é 👋"


def test_updates_apply_only_when_newer() -> None:
    room = RoomState("r")
    assert room.apply({"seq": 1, "rev": 3, "text": "b"})
    assert not room.apply({"seq": 1, "rev": 2, "text": "a"})  # late, older: ignored
    assert not room.apply({"seq": 1, "rev": 3, "text": "b"})  # repeated
    assert room.versions[1]["text"] == "b"


def test_recovery_mark_stops_at_the_first_hole() -> None:
    room = RoomState("r", seen={4, 5, 6, 8})
    assert room.recovery_mark() == 6  # 7 was not delivered yet: recover from 6, not 8
    assert room.join_frame() == {"action": "join", "room": "r"}
    room.ever_joined = True
    room.rev = 12
    assert room.join_frame() == {"action": "join", "room": "r", "since": 6, "rev": 12}
    assert RoomState("r", since=3).join_frame() == {"action": "join", "room": "r", "since": 3}
    assert RoomState("r", latest=9).recovery_mark() == 9


def test_moderation_commands_kick_ban_and_mute_and_the_target_sees_why(runtime: LocalRuntime) -> None:
    room = fresh_room("moderated")

    async def scenario() -> None:
        token = await asyncio.to_thread(runtime.token, "mia", mod=room)
        _, mod, mod_task = await start(runtime, "mia", room, token=token)
        _, carol, carol_task = await start(runtime, "carol", room)
        carol.type("/kick mia")  # carol moderates nothing
        await carol.wait_for("! forbidden")
        phone = await other_user(runtime, "bob", room)
        laptop = await other_user(runtime, "bob", room)
        mod.type("/kick bob off topic")
        await mod.wait_for(f"* bob kicked from #{room}")
        for device in (phone, laptop):
            kicked = await next_frame(device, "kicked", room=room)
            assert (kicked["by"], kicked["reason"]) == ("mia", "off topic")
        await phone.send(json.dumps({"action": "join", "room": room}))
        await next_frame(phone, "joined", room=room)
        mod.type("/mute bob 10m")
        await mod.wait_for(f"* bob muted in #{room}")
        await phone.send(
            json.dumps({"action": "sendmessage", "room": room, "text": "spam", "clientMsgId": "s1"})
        )
        assert (await next_frame(phone, "error", action="sendmessage"))["code"] == "muted"
        mod.type("/unmute bob")
        await mod.wait_for(f"* bob unmuted in #{room}")
        mod.type("/ban carol 1h spamming")
        await mod.wait_for(f"* carol banned from #{room}")
        await carol.wait_for(f"* you were banned from #{room} by mia: spamming")
        mod.type("/unban carol")
        await mod.wait_for(f"* carol unbanned in #{room}")
        for bad in ("/kick", "/ban b!d", "/mute bob forever", "/unban"):
            mod.type(bad)
        await mod.wait_for("! usage: /unban USER")
        assert mod.count("! usage: /kick USER") == 1 and mod.count("! usage: /mute USER") == 1
        assert mod.count("! usage: /ban USER") == 1
        await phone.close()
        await laptop.close()
        await quit_cleanly(mod, mod_task)
        await quit_cleanly(carol, carol_task)

    run(scenario)


def test_moderation_command_arguments() -> None:
    assert moderation_frame("ban", "r", "eve 10m spam and more") == {
        "action": "ban",
        "room": "r",
        "user": "eve",
        "seconds": 600,
        "reason": "spam and more",
    }
    assert moderation_frame("ban", "r", "eve") == {"action": "ban", "room": "r", "user": "eve"}
    assert replied(moderation_frame("ban", "r", "eve 90 x"))["seconds"] == 90
    assert moderation_frame("mute", "r", "eve 2h") == {
        "action": "mute",
        "room": "r",
        "user": "eve",
        "seconds": 7200,
    }
    assert replied(moderation_frame("mute", "r", "eve 1d"))["seconds"] == 86400
    assert moderation_frame("kick", "r", "eve 10m late") == {
        "action": "kick",
        "room": "r",
        "user": "eve",
        "reason": "10m late",
    }
    assert moderation_frame("mute", "r", "eve forever") is None
    assert moderation_frame("unmute", "r", "eve now") is None
    assert moderation_frame("kick", "r", "") is None
    assert moderation_frame("unban", "r", "e ve") is None
