"""The conformance rows: one small function per client-observable row of docs/protocol.md (v1).

A new row is one more ``@row`` function here (or in a module imported by `load_rows`), using
``ctx`` for connections, rooms of this run only, and tokens. Rows run in definition order.
"""

from __future__ import annotations

import asyncio
import secrets

from dynamowave.check.probe import CheckFailed, Frame, Match, handshake_status
from dynamowave.check.probe import frame as f
from dynamowave.check.runner import OTHER_USERS, SECRET, CheckContext, row
from functions.chat.auth import mint_token

# How long a row waits to be sure a frame does NOT arrive.
QUIET_SECONDS = 1.0
# Frames a client may send per second before `rate_limited` (defaults 10/s, burst 20).
FLOOD_FRAMES = 60


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def error(code: str, **fields: object) -> Match:
    return f("error", code=code, **fields)


# --- Connecting -------------------------------------------------------------------------------


@row("handshake without a token is refused with 401")
async def _no_token(ctx: CheckContext) -> None:
    status = await handshake_status(ctx.url, None, proxy=ctx.proxy)
    check(status == 401, f"expected HTTP 401, got {status}")


@row("handshake with a malformed token is refused with 403")
async def _malformed_token(ctx: CheckContext) -> None:
    status = await handshake_status(ctx.url, "not-a-jwt", proxy=ctx.proxy)
    check(status == 403, f"expected HTTP 403, got {status}")


@row("handshake with a wrongly signed token is refused with 403")
async def _wrong_signature(ctx: CheckContext) -> None:
    forged = mint_token(secrets.token_urlsafe(48), ctx.user("mallory"))
    status = await handshake_status(ctx.url, forged, proxy=ctx.proxy)
    check(status == 403, f"expected HTTP 403, got {status}")


@row("handshake with an expired token is refused with 403", needs=[SECRET])
async def _expired_token(ctx: CheckContext) -> None:
    status = await handshake_status(ctx.url, ctx.tokens.expired("alice"), proxy=ctx.proxy)
    check(status == 403, f"expected HTTP 403, got {status}")


# --- join, leave, ping ------------------------------------------------------------------------


@row("join replies joined (seq 0, members, no messages) and again when repeated")
async def _join(ctx: CheckContext) -> None:
    room = ctx.room("join")
    alice = await ctx.connect("alice")
    joined = await ctx.join(alice, room)
    check(joined.get("seq") == 0, f"a new room has seq 0, got {joined.get('seq')!r}")
    check(joined.get("messages") == [] and joined.get("more") is False, f"a new room is empty: {joined}")
    check(ctx.user("alice") in joined.get("members", []), f"members lacks the joiner: {joined}")
    again = await ctx.join(alice, room)
    check(again.get("seq") == 0, f"repeated join: {again}")


@row("leave replies left, also for a room not joined")
async def _leave(ctx: CheckContext) -> None:
    room = ctx.room("leave")
    alice = await ctx.connect("alice")
    await ctx.join(alice, room)
    await alice.request({"action": "leave", "room": room}, f("left", room=room), "left")
    await alice.request({"action": "leave", "room": room}, f("left", room=room), "left (not joined)")


@row("ping replies pong with the server time")
async def _ping(ctx: CheckContext) -> None:
    alice = await ctx.connect("alice")
    pong = await alice.request({"action": "ping"}, f("pong"), "pong")
    check(isinstance(pong.get("ts"), int) and pong["ts"] > 1_600_000_000_000, f"pong ts in ms: {pong}")


# --- sendmessage, fan-out, history ------------------------------------------------------------


def _check_message(message: Frame, ack: Frame, text: str, user: str) -> None:
    for key in ("room", "id", "seq", "clientMsgId"):
        check(message.get(key) == ack.get(key), f"message {key} differs from the ack: {message} vs {ack}")
    check(message.get("text") == text and message.get("user") == user, f"message content: {message}")
    check(isinstance(message.get("ts"), int) and isinstance(message.get("name"), str), f"message: {message}")


# The wire order of ack and own copy is not guaranteed (docs/protocol.md, "The ack and the
# sender's own copy"): the ack is the route response, the copy comes from the fan-out.
@row("sendmessage: ack and the sender's own copy; seq rises by one")
async def _send(ctx: CheckContext) -> None:
    room = ctx.room("send")
    alice = await ctx.connect("alice")
    await ctx.join(alice, room)
    for expected_seq in (1, 2):
        text = f"hello {expected_seq} ✓"
        ack = await ctx.send(alice, room, text)
        check(ack.get("seq") == expected_seq and isinstance(ack.get("id"), str), f"ack: {ack}")
        message = await alice.expect(f("message", room=room, seq=expected_seq), "own message copy")
        _check_message(message, ack, text, ctx.user("alice"))


@row("sendmessage fans out to every connection in the room")
async def _fanout(ctx: CheckContext) -> None:
    room = ctx.room("fanout")
    members = await ctx.joined_connections(room, *("alice" if i % 2 else "bob" for i in range(ctx.fanout)))
    sender = members[0]
    ack = await ctx.send(sender, room, "to everyone")
    copies = await asyncio.gather(
        *(probe.expect(f("message", room=room, seq=ack["seq"]), "fanned-out message") for probe in members)
    )
    check(all(copy.get("id") == ack["id"] for copy in copies), "a copy with another id")


@row("resending a clientMsgId returns the same ack and stores nothing new")
async def _idempotent(ctx: CheckContext) -> None:
    room = ctx.room("idem")
    alice, watcher = await ctx.joined_connections(room, "alice", "alice")
    first = await ctx.send(alice, room, "once", "check-idem-1")
    await watcher.expect(f("message", room=room, seq=first["seq"]), "the message")
    second = await ctx.send(alice, room, "once", "check-idem-1")
    check((second["id"], second["seq"]) == (first["id"], first["seq"]), f"{second} != {first}")
    await watcher.expect_none(f("message", room=room, seq=first["seq"] + 1), "second message", QUIET_SECONDS)
    history = await alice.request({"action": "history", "room": room}, f("history", room=room), "history")
    check([m["seq"] for m in history["messages"]] == [first["seq"]], f"stored twice: {history}")


@row("history: ascending, limit and before, more when older ones exist")
async def _history(ctx: CheckContext) -> None:
    room = ctx.room("history")
    alice = await ctx.connect("alice")
    await ctx.join(alice, room)
    for i in range(5):
        await ctx.send(alice, room, f"m{i}")
    page = await alice.request(
        {"action": "history", "room": room, "limit": 2}, f("history", room=room), "history"
    )
    check([m["seq"] for m in page["messages"]] == [4, 5] and page["more"] is True, f"newest page: {page}")
    older = await alice.request(
        {"action": "history", "room": room, "before": 4, "limit": 10}, f("history", room=room), "history"
    )
    check([m["seq"] for m in older["messages"]] == [1, 2, 3] and older["more"] is False, f"older: {older}")
    check([m["text"] for m in older["messages"]] == ["m0", "m1", "m2"], f"texts: {older}")


@row("join without since returns the latest messages, ascending")
async def _join_latest(ctx: CheckContext) -> None:
    room = ctx.room("latest")
    alice = await ctx.connect("alice")
    await ctx.join(alice, room)
    for i in range(3):
        await ctx.send(alice, room, f"m{i}")
    late = await ctx.connect("alice")
    joined = await ctx.join(late, room)
    check(joined["seq"] == 3 and [m["seq"] for m in joined["messages"]] == [1, 2, 3], f"joined: {joined}")


@row("recovery: join with since returns every missed message")
async def _recovery(ctx: CheckContext) -> None:
    room = ctx.room("recovery")
    alice, bob = await ctx.connect("alice"), await ctx.connect("bob")
    await ctx.join(bob, room)
    first = await ctx.send(bob, room, "before the drop")
    seen = (await ctx.join(alice, room))["seq"]
    check(seen == first["seq"], f"joined seq {seen} != {first['seq']}")
    await alice.close()  # the drop
    sent = [(await ctx.send(bob, room, f"missed {i}"))["seq"] for i in range(3)]
    back = await ctx.connect("alice")
    joined = await ctx.join(back, room, since=seen)
    got = [m["seq"] for m in joined["messages"]]
    check(got == sent and joined["more"] is False, f"since={seen}: got {got}, expected {sent}")


@row("typing reaches the room's other connections, not the sender")
async def _typing(ctx: CheckContext) -> None:
    room = ctx.room("typing")
    alice, other = await ctx.joined_connections(room, "alice", "bob")
    await alice.send({"action": "typing", "room": room})
    got = await other.expect(f("typing", room=room), "typing")
    check(got.get("user") == ctx.user("alice"), f"typing names the sender: {got}")
    await alice.expect_none(f("typing", room=room), "typing echoed to the sender", QUIET_SECONDS)


@row("presence join and leave between users (leave, then a drop)", needs=[OTHER_USERS])
async def _presence(ctx: CheckContext) -> None:
    room = ctx.room("presence")
    alice = await ctx.connect("alice")
    await ctx.join(alice, room)
    bob = await ctx.connect("bob")
    joined = await ctx.join(bob, room)
    check(set(joined["members"]) >= {ctx.user("alice"), ctx.user("bob")}, f"members: {joined}")
    await alice.expect(f("presence", room=room, user=ctx.user("bob"), event="join"), "presence join")
    await bob.request({"action": "leave", "room": room}, f("left", room=room), "left")
    await alice.expect(f("presence", room=room, user=ctx.user("bob"), event="leave"), "presence leave")
    carol = await ctx.connect("carol")
    await ctx.join(carol, room)
    await alice.expect(f("presence", room=room, user=ctx.user("carol"), event="join"), "presence join")
    await carol.close()  # a drop, not a leave
    await alice.expect(f("presence", room=room, user=ctx.user("carol"), event="leave"), "presence on drop")


# --- errors -----------------------------------------------------------------------------------


@row("bad frames get error frames (bad_request, unknown_action) and the connection stays open")
async def _bad_frames(ctx: CheckContext) -> None:
    alice = await ctx.connect("alice")
    await alice.send("not json")
    await alice.expect(error("bad_request"), "bad_request for non-JSON")
    await alice.send({"action": "dance"})
    await alice.expect(error("unknown_action"), "unknown_action")
    await alice.send({"action": "join"})
    await alice.expect(error("bad_request", action="join"), "bad_request for a missing room")
    await alice.send({"action": "join", "room": "no spaces allowed"})
    await alice.expect(error("bad_request", action="join"), "bad_request for a bad room name")
    await alice.request({"action": "ping"}, f("pong"), "pong after errors")


@row("a frame naming an identity is forbidden")
async def _identity_field(ctx: CheckContext) -> None:
    alice = await ctx.connect("alice")
    room = ctx.room("identity")
    await alice.send({"action": "join", "room": room, "user": "someone-else"})
    await alice.expect(error("forbidden"), "forbidden")


@row("a room outside the token's rooms is forbidden", needs=[OTHER_USERS])
async def _room_claim(ctx: CheckContext) -> None:
    allowed, other = ctx.room("allowed"), ctx.room("elsewhere")
    dave = await ctx.connect("dave", rooms=[allowed])
    await dave.send({"action": "join", "room": other})
    await dave.expect(error("forbidden", room=other), "forbidden")
    await ctx.join(dave, allowed)


@row("sendmessage, history and typing outside a joined room are not_member")
async def _not_member(ctx: CheckContext) -> None:
    alice = await ctx.connect("alice")
    room = ctx.room("outside")
    await alice.send({"action": "sendmessage", "room": room, "text": "x", "clientMsgId": "c1"})
    await alice.expect(error("not_member", clientMsgId="c1"), "not_member for sendmessage")
    await alice.send({"action": "history", "room": room})
    await alice.expect(error("not_member", action="history"), "not_member for history")
    await alice.send({"action": "typing", "room": room})
    await alice.expect(error("not_member", action="typing"), "not_member for typing")


@row("text over the limit is too_large and stores nothing")
async def _too_large(ctx: CheckContext) -> None:
    alice = await ctx.connect("alice")
    room = ctx.room("large")
    await ctx.join(alice, room)
    text = "x" * (ctx.max_text_length + 1)
    await alice.send({"action": "sendmessage", "room": room, "text": text, "clientMsgId": "big"})
    await alice.expect(error("too_large", clientMsgId="big"), "too_large")
    history = await alice.request({"action": "history", "room": room}, f("history", room=room), "history")
    check(history["messages"] == [], f"a refused message was stored: {history}")


@row("a flood of frames is rate_limited and the connection stays open")
async def _rate_limited(ctx: CheckContext) -> None:
    alice = await ctx.connect("alice")
    await asyncio.gather(*(alice.send({"action": "ping"}) for _ in range(FLOOD_FRAMES)))
    await alice.expect(error("rate_limited"), "rate_limited")
    await asyncio.sleep(3)  # the bucket refills
    alice.drain()  # the flood's own pongs and errors
    await alice.request({"action": "ping"}, f("pong"), "pong after the flood")


@row("a frame over 32 KB closes the connection with 1009")
async def _oversize(ctx: CheckContext) -> None:
    alice = await ctx.connect("alice")
    await alice.send({"action": "ping", "pad": "x" * 33_000})
    code = await alice.closed()
    check(code == 1009, f"expected close code 1009, got {code}")


# --- cleanup ----------------------------------------------------------------------------------


@row("cleanup: no connection of this run is left in its rooms", needs=[OTHER_USERS])
async def _cleanup(ctx: CheckContext) -> None:
    for label in ("join", "send", "fanout", "presence", "recovery"):
        room = ctx.room(label)
        observer = await ctx.connect("observer")
        joined = await ctx.join(observer, room)
        check(joined["members"] == [ctx.user("observer")], f"{room} still has {joined['members']}")
        await observer.request({"action": "leave", "room": room}, f("left", room=room), "left")
        ctx.joined_rooms.pop(id(observer), None)
        await observer.close()
