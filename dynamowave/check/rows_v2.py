"""Conformance rows for v2's users and conversations (docs/protocol.md, "v2"): durable user
membership, `rooms`, `read` and `dm`. Each row is one small function, as in rows.py."""

from __future__ import annotations

from dynamowave.check.probe import frame as f
from dynamowave.check.rows import check
from dynamowave.check.runner import MODERATOR, OTHER_USERS, CheckContext, row


@row("v2 leave ends the membership: every connection of the user gets left")
async def _leave_everywhere(ctx: CheckContext) -> None:
    room = ctx.room("v2leave")
    phone, laptop = await ctx.joined_connections(room, "alice", "alice")
    await phone.request({"action": "leave", "room": room}, f("left", room=room), "left")
    await laptop.expect(f("left", room=room), "left on the user's other connection")


@row("v2 rooms lists the user's memberships with seq, read, unread and last")
async def _rooms(ctx: CheckContext) -> None:
    room = ctx.room("v2rooms")
    alice = await ctx.connect("alice")
    await ctx.join(alice, room)
    ack = await ctx.send(alice, room, "latest")
    listing = await alice.request({"action": "rooms"}, f("rooms"), "rooms")
    (entry,) = [r for r in listing.get("rooms", []) if r.get("room") == room] or [None]
    check(entry is not None, f"{room} missing from rooms: {listing}")
    assert entry is not None
    check(entry.get("kind") == "room" and entry.get("seq") == ack["seq"], f"rooms entry: {entry}")
    check(entry.get("unread") == entry["seq"] - entry.get("read", -1), f"unread = seq - read: {entry}")
    check((entry.get("last") or {}).get("seq") == ack["seq"], f"last is the latest message: {entry}")


@row("v2 read moves the marker forward only, capped, to every connection of the user")
async def _read(ctx: CheckContext) -> None:
    room = ctx.room("v2read")
    alice, other = await ctx.connect("alice"), await ctx.connect("alice")
    await ctx.join(alice, room)
    for i in range(3):
        await ctx.send(alice, room, f"m{i}")
    marked = await alice.request({"action": "read", "room": room, "seq": 99}, f("read", room=room), "read")
    check((marked.get("seq"), marked.get("unread")) == (3, 0), f"capped at the latest seq: {marked}")
    await other.expect(f("read", room=room, seq=3), "read on the user's other connection")
    back = await alice.request({"action": "read", "room": room, "seq": 1}, f("read", room=room), "read")
    check(back.get("seq") == 3, f"a marker never moves back: {back}")


@row(
    "v2 dm opens the pair's room: joined kind dm, invited and receipt for the other user", needs=[OTHER_USERS]
)
async def _dm(ctx: CheckContext) -> None:
    alice, bob = await ctx.connect("alice"), await ctx.connect("bob")
    joined = await alice.request(
        {"action": "dm", "user": ctx.user("bob")}, f("joined", kind="dm"), "joined for the DM"
    )
    room = str(joined["room"])
    ctx.joined_rooms.setdefault(id(alice), set()).add(room)
    check(joined.get("with") == ctx.user("bob"), f"with names the other user: {joined}")
    invited = await bob.expect(f("invited", room=room), "invited")
    check(invited.get("kind") == "dm" and invited.get("from") == ctx.user("alice"), f"invited: {invited}")
    await ctx.join(bob, room)
    await ctx.send(alice, room, "hi bob")
    await bob.expect(f("message", room=room, seq=1), "the DM message")
    await bob.request({"action": "read", "room": room, "seq": 1}, f("read", room=room), "read")
    await alice.expect(f("receipt", room=room, user=ctx.user("bob"), seq=1), "receipt")


# --- message lifecycle: edit, react, delete -----------------------------------------------------


@row("v2 edit, react and delete: changed with a rising rev, update to the room, a tombstone")
async def _lifecycle(ctx: CheckContext) -> None:
    room = ctx.room("v2life")
    alice, watcher = await ctx.joined_connections(room, "alice", "bob")
    ack = await ctx.send(alice, room, "first draft")
    seq = ack["seq"]
    revs: list[int] = []
    for change, wanted in (
        ({"action": "edit", "text": "final text"}, {"text": "final text", "deleted": False}),
        ({"action": "react", "emoji": "👍", "on": True}, {"reactions": {"👍": [ctx.user("alice")]}}),
        ({"action": "delete"}, {"text": "", "deleted": True, "reactions": {}}),
    ):
        changed = await alice.request(
            {**change, "room": room, "seq": seq},
            f("changed", room=room, seq=seq),
            f"changed ({change['action']})",
        )
        check(isinstance(changed.get("rev"), int), f"changed carries an integer rev: {changed}")
        revs.append(int(changed["rev"]))
        update = await watcher.expect(f("update", room=room, seq=seq, rev=changed.get("rev")), "update")
        check(all(update.get(k) == v for k, v in wanted.items()), f"{change['action']}: {update}")
    check(revs == sorted(set(revs)), f"rev rises with every change: {revs}")
    again = await alice.request(
        {"action": "delete", "room": room, "seq": seq}, f("changed", room=room, seq=seq), "changed (repeat)"
    )
    check(again.get("rev") == revs[-1], f"a repeated delete changes nothing: {again}")
    await alice.send({"action": "edit", "room": room, "seq": seq, "text": "x"})
    await alice.expect(f("error", code="not_found"), "not_found for editing a deleted message")


@row("v2 editing someone else's message is forbidden", needs=[OTHER_USERS])
async def _edit_forbidden(ctx: CheckContext) -> None:
    room = ctx.room("v2edit")
    alice, bob = await ctx.joined_connections(room, "alice", "bob")
    ack = await ctx.send(alice, room, "mine")
    await bob.send({"action": "edit", "room": room, "seq": ack["seq"], "text": "yours now"})
    await bob.expect(f("error", code="forbidden"), "forbidden")


# --- moderation: kick, ban, mute (docs/protocol.md, "Moderation") -------------------------------


@row(
    "v2 kick: moderated, kicked on every connection of the user, presence leave",
    needs=[OTHER_USERS, MODERATOR],
)
async def _kick(ctx: CheckContext) -> None:
    room = ctx.room("v2kick")
    mod = await ctx.connect("mod", mod=[room])
    await ctx.join(mod, room)
    phone, laptop = await ctx.joined_connections(room, "bob", "bob")
    bob = ctx.user("bob")
    await mod.request(
        {"action": "kick", "room": room, "user": bob, "reason": "check"},
        f("moderated", room=room, user=bob, op="kick"),
        "moderated",
    )
    for device in (phone, laptop):
        kicked = await device.expect(f("kicked", room=room), "kicked on each of the user's connections")
        check((kicked.get("by"), kicked.get("reason")) == (ctx.user("mod"), "check"), f"kicked: {kicked}")
    await mod.expect(f("presence", room=room, user=bob, event="leave"), "presence leave")


@row("v2 ban refuses join with banned until unban", needs=[OTHER_USERS, MODERATOR])
async def _ban(ctx: CheckContext) -> None:
    room = ctx.room("v2ban")
    mod = await ctx.connect("mod", mod=[room])
    (bob,) = await ctx.joined_connections(room, "bob")
    target = ctx.user("bob")
    ban = {"action": "ban", "room": room, "user": target, "seconds": 600, "reason": "check"}
    await mod.request(ban, f("moderated", room=room, user=target, op="ban"), "moderated")
    await bob.expect(f("banned", room=room), "banned")
    await bob.send({"action": "join", "room": room})
    await bob.expect(f("error", code="banned", room=room), "join refused with banned")
    unban = {"action": "unban", "room": room, "user": target}
    await mod.request(unban, f("moderated", room=room, user=target, op="unban"), "moderated (unban)")
    await ctx.join(bob, room)


@row(
    "v2 mute refuses sendmessage with muted until unmute; others see nothing", needs=[OTHER_USERS, MODERATOR]
)
async def _mute(ctx: CheckContext) -> None:
    room = ctx.room("v2mute")
    mod = await ctx.connect("mod", mod=[room])
    await ctx.join(mod, room)
    (bob,) = await ctx.joined_connections(room, "bob")
    target = ctx.user("bob")
    mute = {"action": "mute", "room": room, "user": target}
    await mod.request(mute, f("moderated", room=room, user=target, op="mute"), "moderated")
    await bob.send({"action": "sendmessage", "room": room, "text": "muted?", "clientMsgId": "mute-1"})
    await bob.expect(f("error", code="muted", clientMsgId="mute-1"), "sendmessage refused with muted")
    unmute = {"action": "unmute", "room": room, "user": target}
    await mod.request(unmute, f("moderated", room=room, user=target, op="unmute"), "moderated (unmute)")
    ack = await ctx.send(bob, room, "unmuted")
    await mod.expect(f("message", room=room, seq=ack["seq"]), "the message after unmute")
    check(ack["seq"] == 1, f"nothing was stored while muted: the first message is seq 1, got {ack}")


@row("v2 moderation without the mod claim is forbidden", needs=[OTHER_USERS])
async def _moderation_forbidden(ctx: CheckContext) -> None:
    room = ctx.room("v2nomod")
    alice, _ = await ctx.joined_connections(room, "alice", "bob")
    await alice.send({"action": "kick", "room": room, "user": ctx.user("bob")})
    await alice.expect(f("error", code="forbidden", action="kick"), "forbidden")
