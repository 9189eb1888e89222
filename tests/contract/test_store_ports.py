"""One contract for the store's ports (functions/chat/domain/ports.py: `Connections`,
`Memberships`, `Messages`, `ChangeLog`, `JanitorCursor`), run against the DynamoDB store on moto
and against the in-memory store: what the domain may rely on, whichever stands behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest

from dynamowave.testing.aws import moto_resources
from functions.chat.adapters.dynamodb.store import ChatStore
from functions.chat.adapters.memory import InMemoryChatStore
from functions.chat.domain.ports import (
    ChatStorage,
    ConnectionGone,
    ConnectionRecord,
    MessageNotFound,
    NotMember,
    RateLimited,
    Restricted,
    Restriction,
)
from functions.chat.lifecycle import MessageState
from functions.chat.settings import Settings

NOW = 1_700_000_000_000
# One token a second, three in the burst: the limiter's edges are a few calls apart.
SETTINGS = Settings(rate_limit_per_second=1.0, rate_limit_burst=3, shard_size=2)


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[ChatStorage]:
    if request.param == "memory":
        yield InMemoryChatStore(SETTINGS)
        return
    with moto_resources("contract") as resources:
        settings = replace(
            SETTINGS,
            connections_table=resources.tables["connections"],
            rooms_table=resources.tables["rooms"],
            messages_table=resources.tables["messages"],
        )
        yield ChatStore(boto3.client("dynamodb", region_name="us-east-1"), settings)


def connect(store: ChatStorage, connection_id: str, user_id: str, now: int = NOW) -> None:
    store.put_connection(connection_id, user_id, user_id.title(), None, now)


def record_of(store: ChatStorage, connection_id: str) -> ConnectionRecord:
    record = store.get_connection(connection_id)
    assert record is not None
    return record


def joined(store: ChatStorage, connection_id: str, room: str, now: int = NOW) -> str:
    return store.join(record_of(store, connection_id), room, now).shard


# -- connections ---------------------------------------------------------------------------------


def test_a_connection_is_recorded_and_indexed_by_its_user(store: ChatStorage) -> None:
    assert store.get_connection("c1") is None
    store.put_connection("c1", "ann", "Ann", ["r"], NOW, batch=True)
    record = store.get_connection("c1")
    assert record is not None
    assert (record.user_id, record.name, record.joined, record.batch) == ("ann", "Ann", {}, True)
    assert record.connected_at == record.last_seen == NOW
    assert store.user_connections("ann", NOW) == ["c1"]
    assert store.user_connections("bob", NOW) == []


def test_the_limiter_allows_the_burst_then_refuses_until_a_token_returns(store: ChatStorage) -> None:
    connect(store, "c1", "ann")
    for _ in range(3):
        assert store.touch_connection("c1", NOW).last_seen == NOW
    with pytest.raises(RateLimited):
        store.touch_connection("c1", NOW)
    with pytest.raises(RateLimited):
        store.touch_connection("c1", NOW + 500)
    assert store.touch_connection("c1", NOW + 1000).last_seen == NOW + 1000
    record = store.get_connection("c1")
    assert record is not None and record.last_seen == NOW + 1000  # a refusal wrote nothing


def test_a_touch_is_refused_for_a_gone_connection_a_non_member_and_a_muted_one(store: ChatStorage) -> None:
    with pytest.raises(ConnectionGone):
        store.touch_connection("nobody", NOW)
    connect(store, "c1", "ann")
    with pytest.raises(NotMember):
        store.touch_connection("c1", NOW, member_of="r")
    joined(store, "c1", "r")
    store.touch_connection("c1", NOW, member_of="r", unless_muted=True)
    store.stamp_connection("c1", Restriction.MUTE, "r", 0)
    with pytest.raises(Restricted) as muted:
        store.touch_connection("c1", NOW, member_of="r", unless_muted=True)
    assert (muted.value.kind, muted.value.until) == (Restriction.MUTE, 0)
    store.touch_connection("c1", NOW, member_of="r")  # reading is not writing
    store.stamp_connection("c1", Restriction.MUTE, "r", NOW - 1)  # expired
    store.touch_connection("c1", NOW + 1000, member_of="r", unless_muted=True)


def test_a_stamp_never_creates_a_connection(store: ChatStorage) -> None:
    store.stamp_connection("gone", Restriction.BAN, "r", 0)
    assert store.get_connection("gone") is None


def test_the_stale_scan_pages_through_every_stale_connection_once(store: ChatStorage) -> None:
    for index in range(5):
        connect(store, f"c{index}", f"u{index}", now=NOW - (10_000 if index % 2 == 0 else 0))
    found: list[str] = []
    cursor = None
    for _ in range(10):
        page, cursor = store.scan_stale_connections(
            idle_before_ms=NOW - 5000, connected_before_ms=NOW - 10**9, start_key=cursor, page_size=2
        )
        found.extend(record.connection_id for record in page)
        if cursor is None:
            break
    assert sorted(found) == ["c0", "c2", "c4"]


def test_the_janitor_cursor_is_kept_between_runs(store: ChatStorage) -> None:
    assert store.load_janitor_cursor() is None
    store.save_janitor_cursor({"connectionId": {"S": "c3"}}, NOW)
    assert store.load_janitor_cursor() == {"connectionId": {"S": "c3"}}
    store.save_janitor_cursor(None, NOW)
    assert store.load_janitor_cursor() is None


# -- memberships -----------------------------------------------------------------------------------


def test_join_and_leave_keep_the_shard_counters_and_presence(store: ChatStorage) -> None:
    connect(store, "c1", "ann")
    connect(store, "c2", "ann")
    first = store.join(record_of(store, "c1"), "r", NOW)
    second = store.join(record_of(store, "c2"), "r", NOW)
    assert (first.first_connection_of_user, second.first_connection_of_user) == (True, False)
    assert store.room_counters("r", consistent=True)[1] == 2
    assert set(store.list_shards("r")) == {first.shard, second.shard}
    members = {m.connection_id for shard in store.list_shards("r") for m in store.shard_members("r", shard)}
    assert members == {"c1", "c2"}
    assert store.online_users("r", 10) == ["ann"]
    membership = store.membership("ann", "r")
    assert membership is not None and membership.kind == "room"

    left = store.leave(record_of(store, "c1"), "r")
    assert left is not None and not left.last_connection_of_user
    left = store.leave(record_of(store, "c2"), "r")
    assert left is not None and left.last_connection_of_user
    assert store.room_counters("r", consistent=True)[1] == 0
    assert store.online_users("r", 10) == []
    record = store.get_connection("c2")
    assert record is not None and record.joined == {}
    assert store.membership("ann", "r") is not None  # the membership outlasts the subscription


def test_a_second_join_of_one_connection_changes_nothing(store: ChatStorage) -> None:
    connect(store, "c1", "ann")
    shard = joined(store, "c1", "r")
    again = store.join(record_of(store, "c1"), "r", NOW)
    assert (again.shard, again.first_connection_of_user) == (shard, False)
    assert store.room_counters("r", consistent=True)[1] == 1


def test_a_stale_record_of_an_already_joined_connection_is_not_joined_twice(store: ChatStorage) -> None:
    connect(store, "c1", "ann")
    stale = store.get_connection("c1")
    shard = joined(store, "c1", "r")
    assert stale is not None
    assert store.join(stale, "r", NOW).shard == shard
    assert store.room_counters("r", consistent=True)[1] == 1


def test_a_ban_stamped_on_the_connection_refuses_the_join_and_writes_nothing(store: ChatStorage) -> None:
    connect(store, "c1", "ann")
    store.stamp_connection("c1", Restriction.BAN, "r", NOW + 60_000)
    with pytest.raises(Restricted) as banned:
        joined(store, "c1", "r")
    assert (banned.value.kind, banned.value.until) == (Restriction.BAN, NOW + 60_000)
    assert store.room_counters("r", consistent=True)[1] == 0
    assert store.membership("ann", "r") is None
    assert joined(store, "c1", "r", now=NOW + 60_001)  # expired: allowed


def test_a_join_with_a_mute_stamps_it_on_the_connection(store: ChatStorage) -> None:
    connect(store, "c1", "ann")
    record = store.get_connection("c1")
    assert record is not None
    store.join(record, "r", NOW, mute_until=0)
    with pytest.raises(Restricted):
        store.touch_connection("c1", NOW, member_of="r", unless_muted=True)


def test_a_join_of_a_gone_connection_is_refused(store: ChatStorage) -> None:
    connect(store, "c1", "ann")
    record = store.get_connection("c1")
    assert record is not None
    store.remove_connection("c1")
    with pytest.raises(ConnectionGone):
        store.join(record, "r", NOW)


def test_removing_a_connection_leaves_every_room_once(store: ChatStorage) -> None:
    connect(store, "c1", "ann")
    joined(store, "c1", "a")
    joined(store, "c1", "b")
    left = store.remove_connection("c1")
    assert [(x.room, x.user_id, x.last_connection_of_user) for x in left] == [
        ("a", "ann", True),
        ("b", "ann", True),
    ]
    assert store.get_connection("c1") is None
    assert store.user_connections("ann", NOW) == []
    assert store.room_counters("a", consistent=True)[1] == 0
    assert store.remove_connection("c1") == []


def test_members_spread_over_shards_as_the_room_grows(store: ChatStorage) -> None:
    for index in range(6):
        connect(store, f"c{index}", f"u{index}")
        joined(store, f"c{index}", "big")
    shards = store.list_shards("big")
    assert len(shards) > 1 and "0.0" in shards
    members = [m.connection_id for shard in shards for m in store.shard_members("big", shard)]
    assert sorted(members) == [f"c{i}" for i in range(6)]


def test_read_markers_start_at_the_join_and_only_move_forward(store: ChatStorage) -> None:
    for index in range(3):
        store.store_message("r", "bob", "Bob", f"m{index}", f"m{index}", NOW)
    connect(store, "c1", "ann")
    joined(store, "c1", "r")
    membership = store.membership("ann", "r")
    assert membership is not None and membership.read == 3  # history, not unread
    store.store_message("r", "bob", "Bob", "new", "new", NOW)
    moved = store.set_read("ann", "r", 4)
    assert moved[0] is not None and moved[0].read == 4 and moved[1]
    back = store.set_read("ann", "r", 2)
    assert back[0] is not None and back[0].read == 4 and not back[1]
    assert store.set_read("zed", "r", 1) == (None, False)


def test_restrictions_hold_until_lifted_or_expired(store: ChatStorage) -> None:
    store.put_restriction(Restriction.BAN, "r", "ann", 0, "spam", "mod", NOW)
    store.put_restriction(Restriction.MUTE, "r", "ann", NOW + 1000, "", "mod", NOW)
    assert store.active_restrictions("r", "ann", NOW) == {Restriction.BAN: 0, Restriction.MUTE: NOW + 1000}
    assert store.active_restrictions("r", "ann", NOW + 1000) == {Restriction.BAN: 0}
    assert store.active_restrictions("other", "ann", NOW) == {}
    assert store.delete_restriction(Restriction.BAN, "r", "ann")
    assert not store.delete_restriction(Restriction.BAN, "r", "ann")


def test_a_dm_has_two_members_and_memberships_end_once(store: ChatStorage) -> None:
    store.open_dm("dm:ann:bob", ("bob", "ann"), NOW)
    assert store.room_kind("dm:ann:bob") == ("dm", ("ann", "bob"))
    assert store.room_kind("plain") == ("room", ())
    ann = store.membership("ann", "dm:ann:bob")
    assert ann is not None and (ann.kind, ann.peer) == ("dm", "bob")
    assert [m.room for m in store.memberships("bob")] == ["dm:ann:bob"]
    assert store.add_membership("ann", "r", NOW)
    assert not store.add_membership("ann", "r", NOW)
    assert [m.room for m in store.memberships("ann")] == ["dm:ann:bob", "r"]
    assert store.delete_membership("ann", "r")
    assert not store.delete_membership("ann", "r")


def test_room_states_give_the_latest_seq_and_message(store: ChatStorage) -> None:
    store.store_message("r", "ann", "Ann", "one", "1", NOW)
    store.store_message("r", "ann", "Ann", "two", "2", NOW)
    states = store.room_states(["r", "empty"])
    assert states["r"].seq == 2 and states["r"].last is not None and states["r"].last["text"] == "two"
    assert (states["empty"].seq, states["empty"].last) == (0, None)


def test_a_room_keeps_its_epoch(store: ChatStorage) -> None:
    epoch = store.room_epoch("r")
    assert epoch and store.room_epoch("r") == epoch and store.room_epoch("s") != epoch


# -- messages ----------------------------------------------------------------------------------------


def test_seqs_are_gap_free_and_a_resend_gets_the_first_store(store: ChatStorage) -> None:
    stored = [store.store_message("r", "ann", "Ann", f"t{i}", f"c{i}", NOW) for i in range(4)]
    assert [s.item["seq"] for s in stored] == [1, 2, 3, 4]
    assert not any(s.duplicate for s in stored)
    again = store.store_message("r", "ann", "Ann", "other text", "c1", NOW + 5)
    assert again.duplicate and not again.fanned_out
    assert (again.item["id"], again.item["seq"], again.item["text"]) == (
        stored[1].item["id"],
        2,
        "t1",
    )
    assert store.store_message("r", "bob", "Bob", "t", "c1", NOW).item["seq"] == 5  # claims are per user
    assert store.latest_seq("r") == 5
    store.mark_fanned_out("ann", "r", "c1")
    assert store.store_message("r", "ann", "Ann", "t1", "c1", NOW).fanned_out


def test_concurrent_senders_take_every_seq_once(store: ChatStorage) -> None:
    def send(user: str) -> None:
        for index in range(5):
            store.store_message("r", user, user, "t", f"{user}-{index}", NOW)

    threads = [threading.Thread(target=send, args=(f"u{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    messages, more = store.messages_after("r", 0, 100)
    assert [m["seq"] for m in messages] == list(range(1, 21)) and not more


def test_history_pages_in_both_directions(store: ChatStorage) -> None:
    for index in range(7):
        store.store_message("r", "ann", "Ann", f"t{index}", f"c{index}", NOW)
    after, more = store.messages_after("r", 2, 3)
    assert ([m["seq"] for m in after], more) == ([3, 4, 5], True)
    after, more = store.messages_after("r", 5, 3)
    assert ([m["seq"] for m in after], more) == ([6, 7], False)
    before, more = store.messages_before("r", None, 3)
    assert ([m["seq"] for m in before], more) == ([5, 6, 7], True)
    before, more = store.messages_before("r", 3, 5)
    assert ([m["seq"] for m in before], more) == ([1, 2], False)
    assert set(before[0]) >= {"room", "seq", "id", "user", "name", "text", "ts", "clientMsgId"}
    assert "ttl" not in before[0]


# -- the change log -------------------------------------------------------------------------------------


def test_changes_take_the_room_s_next_rev_and_repeats_change_nothing(store: ChatStorage) -> None:
    store.store_message("r", "ann", "Ann", "hello", "c1", NOW)
    store.store_message("r", "ann", "Ann", "again", "c2", NOW)
    changes = store.changes
    assert changes.latest_rev("r") == 0
    edited = changes.apply("r", 1, lambda message: MessageState(text="hi", edited_at=NOW + 1))
    assert (edited.rev, edited.changed, edited.fanned_out) == (1, True, False)
    assert (edited.message["text"], edited.message["editedAt"]) == ("hi", NOW + 1)
    same = changes.apply("r", 1, lambda message: None)
    assert (same.rev, same.changed, same.fanned_out) == (1, False, False)
    changes.mark_fanned_out("r", 1)
    assert changes.apply("r", 1, lambda message: None).fanned_out
    changes.apply("r", 2, lambda message: MessageState(text="", deleted=True))
    assert changes.latest_rev("r") == 2
    updates = changes.updates_after("r", 0, since=2, max_messages=10)
    assert [m["seq"] for m in updates.messages] == [1, 2] and updates.first_revs == [1, 2]
    assert updates.complete_through is None
    assert [m["seq"] for m in changes.updates_after("r", 1, since=2, max_messages=10).messages] == [2]
    assert [m["seq"] for m in changes.updates_after("r", 0, since=1, max_messages=10).messages] == [1]
    cut = changes.updates_after("r", 0, since=2, max_messages=1)
    assert [m["seq"] for m in cut.messages] == [1] and cut.complete_through == 1
    with pytest.raises(MessageNotFound):
        changes.apply("r", 99, lambda message: None)
    history, _ = store.messages_before("r", None, 10)
    assert [(m["text"], m.get("deleted", False), m.get("rev")) for m in history] == [
        ("hi", False, 1),
        ("", True, 2),
    ]
