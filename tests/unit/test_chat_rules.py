"""The chat's rules on the in-memory ports (functions/chat/adapters/memory.py), no moto: join and
leave with bans and mutes, send (seq order, idempotent resend, rate limit, mute), history
pages, edit/delete/react, DMs and read markers, the fan-out pruning gone connections, the
janitor. tests/integration runs the same rules against DynamoDB on moto; the store's contract
suite (tests/contract/test_store_ports.py) holds the two stores to the same behaviour."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import pytest

from functions.chat.adapters.memory import InMemoryChatStore, InMemoryJobSink, InMemoryManagementApi
from functions.chat.auth import Identity, ModeratorScope
from functions.chat.domain.deadline import Deadline
from functions.chat.domain.fanout import Fanout
from functions.chat.domain.janitor import Janitor
from functions.chat.domain.service import ChatService
from functions.chat.jobs import FanoutJob
from functions.chat.settings import Settings

START = 1_700_000_000_000
MOD = Identity("mia", "Mia", None, mod=ModeratorScope.of(["club"]))


@dataclass
class Clock:
    now: int = START

    def __call__(self) -> int:
        return self.now


@dataclass
class Chat:
    settings: Settings
    store: InMemoryChatStore = field(init=False)
    queue: InMemoryJobSink = field(default_factory=InMemoryJobSink)
    clock: Clock = field(default_factory=Clock)
    api: InMemoryManagementApi = field(init=False)  # the connections' clients, for the fan-out and janitor
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    service: ChatService = field(init=False)
    _ids: Iterator[int] = field(default_factory=count)

    def __post_init__(self) -> None:
        self.store = InMemoryChatStore(self.settings)
        self.api = InMemoryManagementApi(self.clock)
        self.service = ChatService(
            self.store,
            self.queue,
            self.settings,
            lambda connection_id, data: self.posts.append((connection_id, json.loads(data))),
            clock=self.clock,
        )

    def connect(self, user: str, identity: Identity | None = None) -> tuple[str, Identity]:
        connection_id = f"{user}-{next(self._ids)}"
        who = identity or Identity(user, user.title(), None)
        self.api.open(connection_id)
        self.service.connect(connection_id, who)
        return connection_id, who

    def joined(self, user: str, room: str = "club") -> tuple[str, Identity]:
        connection_id, identity = self.connect(user)
        assert self.ask(connection_id, identity, action="join", room=room)["type"] == "joined"
        return connection_id, identity

    def ask(self, connection_id: str, identity: Identity, **frame: Any) -> dict[str, Any]:
        reply = self.service.handle(connection_id, identity, json.dumps(frame), "req").reply
        assert reply is not None
        return reply

    def jobs(self) -> list[FanoutJob]:
        taken = [FanoutJob.from_json(body) for body, _ in self.queue.queued]
        self.queue.queued.clear()
        return taken

    def fanout(self, pool: ThreadPoolExecutor, **options: Any) -> Fanout:
        """The fan-out over this chat's store, queue and clients, pruning as the service does."""
        return Fanout(
            store=self.store,
            queue=self.queue,
            api=self.api,
            prune=self.service.removal.remove,
            settings=self.settings,
            executor=pool,
            **options,
        )

    def send(
        self, connection_id: str, identity: Identity, text: str, msg: str, room: str = "club"
    ) -> dict[str, Any]:
        return self.ask(connection_id, identity, action="sendmessage", room=room, text=text, clientMsgId=msg)


@pytest.fixture
def chat() -> Chat:
    return Chat(Settings(rate_limit_burst=1000))


def frames_of(jobs: list[FanoutJob], kind: str) -> list[dict[str, Any]]:
    return [job.frame for job in jobs if job.frame["type"] == kind]


# -- join and leave --------------------------------------------------------------------------------


def test_join_announces_the_users_first_connection_only(chat: Chat) -> None:
    phone, ann = chat.joined("ann")
    assert frames_of(chat.jobs(), "presence") == [
        {"type": "presence", "room": "club", "user": "ann", "event": "join"}
    ]
    chat.joined("ann")
    reply = chat.ask(phone, ann, action="join", room="club")  # again on the same connection
    assert reply["members"] == ["ann"] and reply["seq"] == 0 and reply["messages"] == []
    assert chat.jobs() == []


def test_a_token_limited_to_rooms_cannot_join_others(chat: Chat) -> None:
    connection, identity = chat.connect("ann", Identity("ann", "Ann", ("mine",)))
    assert chat.ask(connection, identity, action="join", room="club")["code"] == "forbidden"
    assert chat.store.room_counters("club")[1] == 0


def test_leaving_the_last_connection_announces_the_leave(chat: Chat) -> None:
    phone, _ = chat.joined("ann")
    laptop, _ = chat.joined("ann")
    chat.jobs()
    chat.service.disconnect(phone)
    assert frames_of(chat.jobs(), "presence") == []  # ann is still there on the laptop
    chat.service.disconnect(laptop)
    assert [f["event"] for f in frames_of(chat.jobs(), "presence")] == ["leave"]
    assert chat.store.room_counters("club")[1] == 0 and chat.store.get_connection(laptop) is None


def test_a_ban_kicks_refuses_joins_and_lifts(chat: Chat) -> None:
    mod = chat.connect("mia", MOD)[0]
    eve_conn, eve = chat.joined("eve")
    chat.jobs()
    assert chat.ask(mod, MOD, action="ban", room="club", user="eve", reason="spam")["op"] == "ban"
    [banned] = frames_of(chat.jobs(), "banned")
    assert banned == {"type": "banned", "room": "club", "by": "mia", "reason": "spam"}
    refused = chat.ask(eve_conn, eve, action="join", room="club")
    assert refused["code"] == "banned" and "until unbanned" in refused["message"]
    again, _ = chat.connect("eve")
    assert chat.ask(again, eve, action="join", room="club")["code"] == "banned"
    assert chat.ask(mod, MOD, action="unban", room="club", user="eve")["op"] == "unban"
    assert chat.ask(again, eve, action="join", room="club")["type"] == "joined"


@pytest.mark.parametrize("first", ["mute", "unmute"])
def test_a_mute_and_an_unmute_racing_leave_the_stamps_of_the_stored_item(
    chat: Chat, first: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The op whose item write lands first stamps last (the other runs between its item write
    and its stamps): its stale stamps must not stay."""
    mod = chat.connect("mia", MOD)[0]
    bob_conn, bob = chat.joined("bob")
    if first == "unmute":
        chat.ask(mod, MOD, action="mute", room="club", user="bob")
    second = "unmute" if first == "mute" else "mute"
    stamp = chat.store.stamp_connection
    raced: list[bool] = []

    def stamp_after_the_other_op(connection_id: str, kind: Any, room: str, until_ms: int | None) -> None:
        if not raced:
            raced.append(True)
            assert chat.ask(mod, MOD, action=second, room="club", user="bob")["op"] == second
        stamp(connection_id, kind, room, until_ms)

    monkeypatch.setattr(chat.store, "stamp_connection", stamp_after_the_other_op)
    assert chat.ask(mod, MOD, action=first, room="club", user="bob")["op"] == first
    muted = bool(chat.store.active_restrictions("club", "bob", chat.clock.now))
    assert muted is (second == "mute")
    reply = chat.send(bob_conn, bob, "hi", "m1")
    assert reply.get("code") == ("muted" if muted else None), reply


def test_moderation_needs_a_moderator_of_the_room(chat: Chat) -> None:
    ann_conn, ann = chat.joined("ann")
    chat.joined("eve")
    assert chat.ask(ann_conn, ann, action="ban", room="club", user="eve")["code"] == "forbidden"
    assert chat.store.active_restrictions("club", "eve", chat.clock.now) == {}


def test_a_timed_mute_refuses_sends_and_expires(chat: Chat) -> None:
    mod = chat.connect("mia", MOD)[0]
    bob_conn, bob = chat.joined("bob")
    assert chat.ask(mod, MOD, action="mute", room="club", user="bob", seconds=60)["op"] == "mute"
    muted = chat.send(bob_conn, bob, "spam", "m1")
    assert (muted["code"], muted["action"]) == ("muted", "sendmessage")
    assert chat.ask(bob_conn, bob, action="typing", room="club").get("code") == "muted"
    assert chat.ask(bob_conn, bob, action="history", room="club")["type"] == "history"  # reading is allowed
    assert chat.store.latest_seq("club") == 0
    chat.clock.now += 61_000
    assert chat.send(bob_conn, bob, "back", "m2")["type"] == "ack"


# -- send and history ------------------------------------------------------------------------------


def test_sends_take_seqs_in_order_and_a_resend_gets_the_same_ack(chat: Chat) -> None:
    ann_conn, ann = chat.joined("ann")
    chat.jobs()
    acks = [chat.send(ann_conn, ann, f"t{n}", f"m{n}") for n in range(3)]
    assert [a["seq"] for a in acks] == [1, 2, 3] and all(a["type"] == "ack" for a in acks)
    assert len(frames_of(chat.jobs(), "message")) == 3
    again = chat.send(ann_conn, ann, "t1", "m1")
    assert (again["id"], again["seq"]) == (acks[1]["id"], 2)
    assert chat.jobs() == []  # fanned out once
    assert chat.store.latest_seq("club") == 3


def test_a_send_needs_the_room_joined_on_this_connection(chat: Chat) -> None:
    chat.joined("ann")
    other, ann = chat.connect("ann")
    assert chat.send(other, ann, "x", "m1")["code"] == "not_member"
    assert chat.store.latest_seq("club") == 0


def test_frames_past_the_burst_are_rate_limited_until_tokens_return() -> None:
    chat = Chat(Settings(rate_limit_per_second=1.0, rate_limit_burst=3))
    ann_conn, ann = chat.joined("ann")  # one token
    assert [chat.send(ann_conn, ann, "t", f"m{n}")["type"] for n in range(2)] == ["ack", "ack"]
    limited = chat.send(ann_conn, ann, "t", "m9")
    assert limited["code"] == "rate_limited"
    assert chat.ask(ann_conn, ann, action="ping")["code"] == "rate_limited"  # every frame spends
    assert chat.store.latest_seq("club") == 2
    chat.clock.now += 1000
    assert chat.send(ann_conn, ann, "t", "m9")["seq"] == 3


def test_history_pages_backwards_and_join_since_recovers(chat: Chat) -> None:
    ann_conn, ann = chat.joined("ann")
    for n in range(5):
        chat.send(ann_conn, ann, f"t{n}", f"m{n}")
    page = chat.ask(ann_conn, ann, action="history", room="club", limit=2)
    assert ([m["seq"] for m in page["messages"]], page["more"]) == ([4, 5], True)
    older = chat.ask(ann_conn, ann, action="history", room="club", before=4, limit=5)
    assert ([m["seq"] for m in older["messages"]], older["more"]) == ([1, 2, 3], False)
    late, bob = chat.connect("bob")
    rejoined = chat.ask(late, bob, action="join", room="club", since=3)
    assert [m["seq"] for m in rejoined["messages"]] == [4, 5]


# -- edit, delete, react ---------------------------------------------------------------------------


def test_edit_delete_and_react_follow_the_rules(chat: Chat) -> None:
    ann_conn, ann = chat.joined("ann")
    bob_conn, bob = chat.joined("bob")
    seq = chat.send(ann_conn, ann, "helo", "m1")["seq"]
    chat.jobs()
    assert chat.ask(ann_conn, ann, action="edit", room="club", seq=seq, text="hello") == {
        "type": "changed",
        "room": "club",
        "seq": seq,
        "rev": 1,
    }
    [update] = frames_of(chat.jobs(), "update")
    assert (update["text"], update["rev"], update["deleted"]) == ("hello", 1, False)
    assert chat.ask(bob_conn, bob, action="edit", room="club", seq=seq, text="mine")["code"] == "forbidden"
    assert chat.ask(bob_conn, bob, action="delete", room="club", seq=seq)["code"] == "forbidden"
    assert chat.ask(ann_conn, ann, action="edit", room="club", seq=99, text="x")["code"] == "not_found"
    react = chat.ask(bob_conn, bob, action="react", room="club", seq=seq, emoji="👍", on=True)
    assert react["rev"] == 2
    assert (
        chat.ask(bob_conn, bob, action="react", room="club", seq=seq, emoji="👍", on=True)["rev"] == 2
    )  # a repeat
    assert chat.ask(ann_conn, ann, action="delete", room="club", seq=seq)["rev"] == 3
    [tombstone] = chat.ask(ann_conn, ann, action="history", room="club")["messages"]
    assert (tombstone["text"], tombstone["deleted"], tombstone["seq"]) == ("", True, seq)
    assert chat.ask(ann_conn, ann, action="edit", room="club", seq=seq, text="back")["code"] == "not_found"


# -- DMs, read markers, unread -----------------------------------------------------------------------


def test_a_dm_invites_the_other_user_and_read_markers_move_forward_only(chat: Chat) -> None:
    ann_conn, ann = chat.connect("ann")
    bob_conn, bob = chat.connect("bob")
    opened = chat.ask(ann_conn, ann, action="dm", user="bob")
    room = opened["room"]
    assert (opened["kind"], opened["with"]) == ("dm", "bob")
    invited = [(job.frame, job.connections) for job in chat.jobs() if job.frame["type"] == "invited"]
    assert invited == [({"type": "invited", "room": room, "kind": "dm", "from": "ann"}, (bob_conn,))]
    chat.ask(bob_conn, bob, action="join", room=room)
    for n in range(3):
        chat.send(ann_conn, ann, f"t{n}", f"m{n}", room=room)
    chat.jobs()
    assert chat.ask(bob_conn, bob, action="read", room=room, seq=2) == {
        "type": "read",
        "room": room,
        "seq": 2,
        "unread": 1,
    }
    assert chat.ask(bob_conn, bob, action="read", room=room, seq=1)["seq"] == 2  # never back
    assert chat.ask(bob_conn, bob, action="read", room=room, seq=99)["seq"] == 3  # capped
    [entry] = chat.ask(ann_conn, ann, action="rooms")["rooms"]
    assert (entry["room"], entry["seq"], entry["unread"], entry["last"]["text"]) == (room, 3, 3, "t2")
    third, carol = chat.connect("carol")
    assert chat.ask(third, carol, action="join", room=room)["code"] == "forbidden"


# -- delivery: the fan-out and the janitor --------------------------------------------------------


def deadline(ms: int = 60_000) -> Deadline:
    return Deadline(lambda: ms, 0)


def test_the_fan_out_posts_to_each_member_and_prunes_the_gone(chat: Chat) -> None:
    ann_conn, ann = chat.joined("ann")
    bob_conn, _ = chat.joined("bob")
    chat.jobs()
    chat.send(ann_conn, ann, "hi", "m1")
    [job] = chat.jobs()
    chat.api.close(bob_conn)  # bob's client went away
    with ThreadPoolExecutor(max_workers=2) as pool:
        report = chat.fanout(pool).deliver(job, deadline())
    assert (report.delivered, report.gone) == (1, 1)
    assert [json.loads(frame)["text"] for frame in chat.api.frames[ann_conn]] == ["hi"]
    assert chat.api.frames[bob_conn] == []
    assert chat.store.get_connection(bob_conn) is None  # pruned with its memberships
    assert [f["user"] for f in frames_of(chat.jobs(), "presence")] == ["bob"]  # bob's leave


def test_the_fan_out_requeues_the_still_failing_and_dead_letters_past_the_limit() -> None:
    chat = Chat(Settings(rate_limit_burst=1000, post_max_retries=0, fanout_max_attempts=1))
    ann_conn, ann = chat.joined("ann")
    chat.jobs()
    chat.send(ann_conn, ann, "hi", "m1")
    [job] = chat.jobs()
    chat.api.throttle(ann_conn, times=2)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fanout = chat.fanout(pool, sleep=lambda seconds: None)
        first = fanout.deliver(job, deadline())
        [retry] = chat.jobs()
        assert first.requeued == 1 and retry.connections == (ann_conn,) and retry.attempt == 1
        second = fanout.deliver(retry, deadline())
    assert second.dead_lettered == 1 and len(chat.queue.dead) == 1


def test_the_janitor_deletes_the_idle_prunes_the_gone_and_keeps_the_active() -> None:
    chat = Chat(Settings(rate_limit_burst=1000, idle_timeout_seconds=600, janitor_page_size=2))
    idle, _ = chat.joined("idle")
    gone, _ = chat.joined("gone")
    chat.clock.now += 700_000
    active, active_identity = chat.joined("active")
    chat.ask(active, active_identity, action="ping")
    chat.jobs()
    chat.api.close(gone)  # its client went away without a $disconnect
    with ThreadPoolExecutor(max_workers=2) as pool:
        janitor = Janitor(
            store=chat.store,
            api=chat.api,
            prune=chat.service.removal.remove,
            settings=chat.settings,
            executor=pool,
            clock=chat.clock,
        )
        report = janitor.run(deadline())
    assert (report.pruned, report.deleted, report.kept, report.finished) == (1, 1, 0, True)
    assert chat.api.deleted == [idle]
    assert chat.store.get_connection(idle) is None and chat.store.get_connection(gone) is None
    assert chat.store.get_connection(active) is not None
    assert sorted(f["user"] for f in frames_of(chat.jobs(), "presence")) == ["gone", "idle"]
    assert chat.store.load_janitor_cursor() is None  # the pass finished
