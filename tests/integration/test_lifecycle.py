"""Message lifecycle against moto with the real boto3 clients: edit, delete, react, rev, recovery.

Assertions read what is stored in DynamoDB (the message, the room's rev, the change log) and
what is queued on SQS (one `update` job per membership shard), after each change.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterable
from typing import Any, cast

import pytest

from functions.chat.adapters.dynamodb import changes
from functions.chat.adapters.dynamodb.keys import deserialize
from functions.chat.auth import Identity, ModeratorScope
from functions.chat.jobs import FanoutJob
from functions.chat.lifecycle import MAX_DISTINCT_REACTIONS
from tests.integration.conftest import Chat


def connected(
    chat: Chat, user: str, room: str = "r", identity: Identity | None = None
) -> tuple[str, Identity]:
    cid, plain = chat.connect(user)
    who = identity or plain
    assert chat.ask(cid, who, action="join", room=room)["type"] == "joined"
    return cid, who


def send(chat: Chat, cid: str, identity: Identity, text: str, room: str = "r") -> int:
    outcome = chat.service.handle(
        cid,
        identity,
        json.dumps(
            {"action": "sendmessage", "room": room, "text": text, "clientMsgId": f"m{random.getrandbits(40)}"}
        ),
        "req",
    )
    assert outcome.seq is not None, outcome.reply
    return outcome.seq


def stored(chat: Chat, room: str, seq: int) -> dict[str, Any]:
    item = chat.dynamodb.get_item(
        TableName=chat.resources.tables["messages"],
        Key={"room": {"S": room}, "seq": {"N": str(seq)}},
        ConsistentRead=True,
    )["Item"]
    return deserialize(item)


def room_rev(chat: Chat, room: str) -> int:
    item = chat.dynamodb.get_item(
        TableName=chat.resources.tables["rooms"], Key={"pk": {"S": f"ROOM#{room}"}, "sk": {"S": "REV"}}
    ).get("Item")
    return int(deserialize(item)["rev"]) if item else 0


def change_log(chat: Chat, room: str) -> list[dict[str, Any]]:
    response = chat.dynamodb.query(
        TableName=chat.resources.tables["rooms"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"ROOM#{room}#CHANGES"}},
        ConsistentRead=True,
    )
    return [deserialize(item) for item in response["Items"]]


def update_jobs(chat: Chat) -> list[FanoutJob]:
    return [job for job in chat.drain_jobs() if job.frame["type"] == "update"]


def converge(updates: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What a client ends with, whatever order the updates came in: the newest rev per message."""
    state: dict[int, dict[str, Any]] = {}
    for frame in updates:
        if frame["seq"] not in state or frame["rev"] > state[frame["seq"]]["rev"]:
            state[frame["seq"]] = frame
    return state


@pytest.fixture
def chat(chat_factory: Any) -> Chat:
    """The rate limit is not under test here: a burst that the tests' bursts stay within."""
    return cast("Chat", chat_factory(RATE_LIMIT_BURST="1000"))


@pytest.fixture
def room(chat: Chat) -> tuple[str, Identity, int]:
    cid, alice = connected(chat, "alice")
    seq = send(chat, cid, alice, "helo wrold")
    chat.drain_jobs()
    return cid, alice, seq


def test_edit_stores_the_new_text_moves_the_rev_and_queues_one_update_per_shard(
    chat: Chat, room: tuple[str, Identity, int]
) -> None:
    cid, alice, seq = room
    reply = chat.frame(cid, alice, action="edit", room="r", seq=seq, text="hello world")
    assert reply == {"type": "changed", "room": "r", "seq": seq, "rev": 1}
    message = stored(chat, "r", seq)
    assert (message["text"], message["rev"], message["deleted"]) == ("hello world", 1, False)
    assert isinstance(message["editedAt"], int) and message["editedAt"] >= message["ts"]
    assert message["seq"] == seq and message["user"] == "alice"  # seq keeps numbering messages
    assert room_rev(chat, "r") == 1
    assert change_log(chat, "r") == [
        {"pk": "ROOM#r#CHANGES", "sk": "0000000000000001", "seq": seq, "fannedOut": True}
    ]
    (job,) = update_jobs(chat)
    assert job.shard == "0.0" and job.exclude is None  # the editor's connections get it too
    assert job.frame == {
        "type": "update",
        "room": "r",
        "seq": seq,
        "rev": 1,
        "text": "hello world",
        "editedAt": message["editedAt"],
        "deleted": False,
        "reactions": {},
    }


def test_reactions_are_stored_per_emoji_in_order_and_removed(
    chat: Chat, room: tuple[str, Identity, int]
) -> None:
    cid, alice, seq = room
    bob_cid, bob = connected(chat, "bob")
    assert chat.ask(bob_cid, bob, action="react", room="r", seq=seq, emoji="👍", on=True)["rev"] == 1
    assert chat.ask(cid, alice, action="react", room="r", seq=seq, emoji="👍", on=True)["rev"] == 2
    assert chat.ask(cid, alice, action="react", room="r", seq=seq, emoji="👨‍👩‍👧", on=True)["rev"] == 3
    assert stored(chat, "r", seq)["reactions"] == {"👍": ["bob", "alice"], "👨‍👩‍👧": ["alice"]}
    assert chat.ask(bob_cid, bob, action="react", room="r", seq=seq, emoji="👍", on=False)["rev"] == 4
    assert chat.ask(cid, alice, action="react", room="r", seq=seq, emoji="👨‍👩‍👧", on=False)["rev"] == 5
    message = stored(chat, "r", seq)
    assert message["reactions"] == {"👍": ["alice"]} and message["text"] == "helo wrold"
    assert "editedAt" not in message  # reactions are not edits
    assert [job.frame["rev"] for job in update_jobs(chat)] == [1, 2, 3, 4, 5]


def test_delete_leaves_a_tombstone_with_no_text_anywhere_in_dynamodb(
    chat: Chat, room: tuple[str, Identity, int]
) -> None:
    cid, alice, seq = room
    bob_cid, bob = connected(chat, "bob")
    chat.frame(cid, alice, action="edit", room="r", seq=seq, text="secret edited text")
    chat.frame(bob_cid, bob, action="react", room="r", seq=seq, emoji="🎉", on=True)
    assert chat.frame(cid, alice, action="delete", room="r", seq=seq) == {
        "type": "changed",
        "room": "r",
        "seq": seq,
        "rev": 3,
    }
    message = stored(chat, "r", seq)
    assert (message["text"], message["deleted"], message["reactions"], message["rev"]) == ("", True, {}, 3)
    assert "editedAt" not in message
    everything = json.dumps(
        {table: chat.table_items(table) for table in ("connections", "rooms", "messages")}
    )
    assert "helo wrold" not in everything and "secret edited text" not in everything
    assert [entry["seq"] for entry in change_log(chat, "r")] == [seq, seq, seq]  # the log holds no text
    last = update_jobs(chat)[-1].frame
    assert (last["text"], last["deleted"], last["reactions"], last["editedAt"]) == ("", True, {}, None)
    # The tombstone keeps its seq: history and numbering are unchanged.
    history = chat.ask(cid, alice, action="history", room="r")
    assert [(m["seq"], m["text"], m.get("deleted")) for m in history["messages"]] == [(seq, "", True)]
    assert send(chat, cid, alice, "next") == seq + 1


def test_repeats_are_idempotent_one_changed_rev_and_no_second_update(
    chat: Chat, room: tuple[str, Identity, int]
) -> None:
    cid, alice, seq = room
    first = chat.frame(cid, alice, action="edit", room="r", seq=seq, text="fixed")
    assert chat.frame(cid, alice, action="edit", room="r", seq=seq, text="fixed") == first
    react = chat.frame(cid, alice, action="react", room="r", seq=seq, emoji="✅", on=True)
    assert chat.frame(cid, alice, action="react", room="r", seq=seq, emoji="✅", on=True) == react
    unreact = chat.frame(cid, alice, action="react", room="r", seq=seq, emoji="❌", on=False)
    assert unreact == {"type": "changed", "room": "r", "seq": seq, "rev": 2}  # nothing to remove: no change
    delete = chat.ask(cid, alice, action="delete", room="r", seq=seq)
    assert chat.frame(cid, alice, action="delete", room="r", seq=seq) == delete == {**delete, "rev": 3}
    assert [job.frame["rev"] for job in update_jobs(chat)] == [1, 2, 3]
    assert room_rev(chat, "r") == 3 and len(change_log(chat, "r")) == 3


def test_refusals_change_nothing(chat: Chat, room: tuple[str, Identity, int]) -> None:
    cid, alice, seq = room
    bob_cid, bob = connected(chat, "bob")
    mod_elsewhere = Identity("eve", "Eve", None, mod=ModeratorScope.of(["other"]))
    eve_cid, eve = connected(chat, "eve", identity=mod_elsewhere)
    before = {table: chat.table_items(table) for table in ("rooms", "messages")}
    cases: list[tuple[str, Identity, dict[str, Any], str]] = [
        (bob_cid, bob, {"action": "edit", "seq": seq, "text": "mine now"}, "forbidden"),
        (bob_cid, bob, {"action": "delete", "seq": seq}, "forbidden"),
        (eve_cid, eve, {"action": "delete", "seq": seq}, "forbidden"),  # a moderator of another room
        (cid, alice, {"action": "edit", "seq": 99, "text": "x"}, "not_found"),
        (cid, alice, {"action": "delete", "seq": 99}, "not_found"),
        (cid, alice, {"action": "react", "seq": 99, "emoji": "👍", "on": True}, "not_found"),
        (cid, alice, {"action": "react", "seq": seq, "emoji": "👍", "on": "yes"}, "bad_request"),
        (cid, alice, {"action": "react", "seq": seq, "emoji": "two words", "on": True}, "bad_request"),
        (cid, alice, {"action": "react", "seq": seq, "emoji": "x" * 33, "on": True}, "bad_request"),
        (cid, alice, {"action": "edit", "seq": 0, "text": "x"}, "bad_request"),
        (cid, alice, {"action": "edit", "seq": seq, "text": ""}, "bad_request"),
        (cid, alice, {"action": "edit", "seq": seq, "text": "x" * 4001}, "too_large"),
        (cid, alice, {"action": "edit", "room": "elsewhere", "seq": seq, "text": "x"}, "not_member"),
        (cid, alice, {"action": "delete", "seq": "1"}, "bad_request"),
    ]
    for connection_id, identity, frame, code in cases:
        reply = chat.frame(connection_id, identity, **{"room": "r", **frame})
        assert reply is not None and reply["type"] == "error" and reply["code"] == code, (frame, reply)
        assert reply["action"] == frame["action"]
    assert {table: chat.table_items(table) for table in ("rooms", "messages")} == before
    assert update_jobs(chat) == []


def test_changes_to_a_deleted_message_are_not_found(chat: Chat, room: tuple[str, Identity, int]) -> None:
    cid, alice, seq = room
    chat.frame(cid, alice, action="delete", room="r", seq=seq)
    for frame in (
        {"action": "edit", "seq": seq, "text": "back"},
        {"action": "react", "seq": seq, "emoji": "👍", "on": True},
    ):
        reply = chat.frame(cid, alice, room="r", **frame)
        assert reply is not None and reply["code"] == "not_found" and "deleted" in reply["message"]
    assert stored(chat, "r", seq)["text"] == ""


@pytest.mark.parametrize("claim", [ModeratorScope.of(["r"]), ModeratorScope(every_room=True)])
def test_a_moderator_of_the_room_deletes_anyones_message(
    chat: Chat, room: tuple[str, Identity, int], claim: ModeratorScope
) -> None:
    _, _, seq = room
    mod_cid, mia = connected(chat, "mia", identity=Identity("mia", "Mia", None, mod=claim))
    assert chat.ask(mod_cid, mia, action="delete", room="r", seq=seq)["type"] == "changed"
    assert stored(chat, "r", seq)["deleted"] is True
    # Moderation is for deleting only: a moderator cannot put words in someone's mouth.
    other = send(chat, *connected(chat, "carol"), "carol's words")
    reply = chat.frame(mod_cid, mia, action="edit", room="r", seq=other, text="edited by mia")
    assert reply is not None and reply["code"] == "forbidden"


def test_reaction_limits_are_refused_with_a_clear_error(chat_factory: Any) -> None:
    chat = chat_factory(RATE_LIMIT_BURST="1000")
    cid, alice = connected(chat, "alice")
    seq = send(chat, cid, alice, "react to me")
    emoji = [chr(0x1F600 + i) for i in range(MAX_DISTINCT_REACTIONS + 1)]
    for each in emoji[:-1]:
        assert (
            chat.ask(cid, alice, action="react", room="r", seq=seq, emoji=each, on=True)["type"] == "changed"
        )
    reply = chat.frame(cid, alice, action="react", room="r", seq=seq, emoji=emoji[-1], on=True)
    assert reply is not None and reply["code"] == "bad_request"
    assert f"{MAX_DISTINCT_REACTIONS} different reactions" in reply["message"]
    assert len(stored(chat, "r", seq)["reactions"]) == MAX_DISTINCT_REACTIONS


def test_history_and_joined_show_the_current_state_and_the_rooms_rev(
    chat: Chat, room: tuple[str, Identity, int]
) -> None:
    cid, alice, seq = room
    chat.frame(cid, alice, action="edit", room="r", seq=seq, text="hello world")
    chat.frame(cid, alice, action="react", room="r", seq=seq, emoji="👋", on=True)
    late_cid, late = chat.connect("late")
    joined = chat.frame(late_cid, late, action="join", room="r")
    assert joined is not None and joined["rev"] == 2
    (message,) = joined["messages"]
    assert (message["text"], message["rev"], message["reactions"]) == ("hello world", 2, {"👋": ["alice"]})
    history = chat.frame(late_cid, late, action="history", room="r")
    assert history is not None and history["messages"] == [message]
    empty_cid, someone = chat.connect("someone")
    assert chat.ask(empty_cid, someone, action="join", room="fresh")["rev"] == 0


def test_recovery_returns_updates_for_older_messages_changed_after_the_rev(chat: Chat) -> None:
    cid, alice = connected(chat, "alice")
    seqs = [send(chat, cid, alice, f"m{i}") for i in range(5)]
    chat.frame(cid, alice, action="edit", room="r", seq=seqs[0], text="m0 edited")  # rev 1
    away_cid, bob = connected(chat, "bob")
    seen = chat.frame(away_cid, bob, action="join", room="r")
    assert seen is not None and (seen["seq"], seen["rev"]) == (5, 1)
    chat.service.disconnect(away_cid)
    chat.frame(cid, alice, action="edit", room="r", seq=seqs[1], text="m1 edited")  # rev 2
    chat.frame(cid, alice, action="delete", room="r", seq=seqs[2])  # rev 3
    chat.frame(cid, alice, action="react", room="r", seq=seqs[1], emoji="🔥", on=True)  # rev 4
    later = send(chat, cid, alice, "while bob was away")
    chat.frame(cid, alice, action="react", room="r", seq=later, emoji="👀", on=True)  # rev 5

    back_cid, bob = chat.connect("bob")
    joined = chat.frame(back_cid, bob, action="join", room="r", since=5, rev=1)
    assert joined is not None and joined["rev"] == 5 and joined["more"] is False
    assert [(m["seq"], m["reactions"]) for m in joined["messages"]] == [(later, {"👀": ["alice"]})]
    assert joined["updates"] == [
        {
            "room": "r",
            "seq": seqs[1],
            "rev": 4,
            "text": "m1 edited",
            "editedAt": stored(chat, "r", seqs[1])["editedAt"],
            "deleted": False,
            "reactions": {"🔥": ["alice"]},
        },
        {
            "room": "r",
            "seq": seqs[2],
            "rev": 3,
            "text": "",
            "editedAt": None,
            "deleted": True,
            "reactions": {},
        },
    ]
    # Up to date: nothing to recover. Without `rev` there are no `updates`; `rev` needs `since`.
    assert chat.ask(back_cid, bob, action="join", room="r", since=6, rev=5)["updates"] == []
    other_cid, carol = chat.connect("carol")
    assert "updates" not in chat.ask(other_cid, carol, action="join", room="r", since=6)
    refused = chat.frame(other_cid, carol, action="join", room="r", rev=1)
    assert refused is not None and refused["code"] == "bad_request"


def test_recovery_finds_changes_with_one_query_of_the_log_and_never_a_scan(chat: Chat) -> None:
    cid, alice = connected(chat, "alice")
    seqs = [send(chat, cid, alice, f"m{i}") for i in range(30)]
    chat.frame(cid, alice, action="edit", room="r", seq=seqs[3], text="changed")
    with chat.recorded_calls() as calls:
        other_cid, bob = chat.connect("bob")
        joined = chat.frame(other_cid, bob, action="join", room="r", since=30, rev=0)
    assert joined is not None and [u["seq"] for u in joined["updates"]] == [seqs[3]]
    names = [name for name, _ in calls]
    assert "Scan" not in names
    log_queries = [p for name, p in calls if name == "Query" and "CHANGES" in json.dumps(p)]
    assert len(log_queries) == 1 and log_queries[0]["ConsistentRead"] is True
    messages_table = chat.resources.tables["messages"]
    # (The join's other BatchGetItem reads the user's ban and mute items in the rooms table.)
    (batch,) = [p for name, p in calls if name == "BatchGetItem" and messages_table in p["RequestItems"]]
    assert len(batch["RequestItems"][messages_table]["Keys"]) == 1  # only the changed message


def test_recovery_pages_through_many_changes_and_ends_on_the_stored_state(
    chat_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = chat_factory(RATE_LIMIT_BURST="1000")
    monkeypatch.setattr(changes, "LOG_PAGE_ENTRIES", 7)  # several pages of the log
    cid, alice = connected(chat, "alice")
    seqs = [send(chat, cid, alice, f"m{i}") for i in range(12)]
    rng = random.Random(12)
    for step in range(40):
        seq = rng.choice(seqs)
        if rng.random() < 0.5:
            chat.frame(cid, alice, action="edit", room="r", seq=seq, text=f"m edit {step}")
        else:
            chat.frame(
                cid, alice, action="react", room="r", seq=seq, emoji=rng.choice("ABC"), on=rng.random() < 0.7
            )
    chat.frame(cid, alice, action="delete", room="r", seq=seqs[5])
    client_state: dict[int, dict[str, Any]] = {}
    since, rev, pages = 12, 0, 0
    bob_cid, bob = chat.connect("bob")
    while True:
        pages += 1
        joined = chat.frame(bob_cid, bob, action="join", room="r", since=since, rev=rev)
        assert joined is not None and joined["type"] == "joined"
        client_state = converge([*client_state.values(), *joined["updates"]])
        assert joined["rev"] >= rev
        rev = joined["rev"]
        chat.service.handle(bob_cid, bob, json.dumps({"action": "leave", "room": "r"}), "x")
        if not joined["more"]:
            break
    assert pages > 2
    assert rev == room_rev(chat, "r")
    for seq, state in client_state.items():
        message = stored(chat, "r", seq)
        assert (state["text"], state["reactions"], state["deleted"], state["rev"]) == (
            message["text"],
            message["reactions"],
            message["deleted"],
            message["rev"],
        )
    changed = {entry["seq"] for entry in change_log(chat, "r")}
    assert set(client_state) == changed


def test_a_change_whose_update_was_not_queued_is_queued_when_repeated(
    chat: Chat, room: tuple[str, Identity, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    cid, alice, seq = room
    queue = chat.service._queue
    original = queue.enqueue

    def failing(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("SQS is down")

    monkeypatch.setattr(queue, "enqueue", failing)
    reply = chat.frame(cid, alice, action="edit", room="r", seq=seq, text="fixed")
    assert reply is not None and reply["code"] == "internal" and "repeat" in reply["message"]
    assert stored(chat, "r", seq)["text"] == "fixed"  # stored before anything was sent
    assert change_log(chat, "r")[0]["fannedOut"] is False
    monkeypatch.setattr(queue, "enqueue", original)
    assert chat.frame(cid, alice, action="edit", room="r", seq=seq, text="fixed") == {
        "type": "changed",
        "room": "r",
        "seq": seq,
        "rev": 1,
    }
    assert [job.frame["text"] for job in update_jobs(chat)] == ["fixed"]
    assert change_log(chat, "r")[0]["fannedOut"] is True
    chat.frame(cid, alice, action="edit", room="r", seq=seq, text="fixed")
    assert update_jobs(chat) == []  # and only once


# -- concurrency: threads against moto ----------------------------------------------------------


def run_at_once(actions: list[Any]) -> list[Any]:
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = actions[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def assert_every_client_converges_on_the_stored_state(
    chat: Chat, room: str, seq: int
) -> list[dict[str, Any]]:
    updates = [job.frame for job in update_jobs(chat) if job.frame["seq"] == seq]
    message = stored(chat, room, seq)
    for order in range(5):
        shuffled = list(updates)
        random.Random(order).shuffle(shuffled)  # SQS does not keep order: clients keep the newest rev
        final = converge(shuffled)[seq]
        assert (final["text"], final["deleted"], final["reactions"], final["rev"]) == (
            message["text"],
            message["deleted"],
            message["reactions"],
            message["rev"],
        )
    assert len({frame["rev"] for frame in updates}) == len(updates)  # one update per rev
    return updates


def test_two_edits_at_once_both_commit_in_rev_order_and_clients_agree(
    chat: Chat, room: tuple[str, Identity, int]
) -> None:
    cid, alice, seq = room
    second_cid, _ = connected(chat, "alice")  # another device of the author
    replies = run_at_once(
        [
            lambda: chat.frame(cid, alice, action="edit", room="r", seq=seq, text="version A"),
            lambda: chat.frame(second_cid, alice, action="edit", room="r", seq=seq, text="version B"),
        ]
    )
    assert sorted(reply["rev"] for reply in replies) == [1, 2]
    updates = assert_every_client_converges_on_the_stored_state(chat, "r", seq)
    assert len(updates) == 2 and stored(chat, "r", seq)["text"] in ("version A", "version B")
    assert room_rev(chat, "r") == 2


def test_an_edit_racing_a_delete_never_resurrects_the_text(
    chat: Chat, room: tuple[str, Identity, int]
) -> None:
    cid, alice, seq = room
    second_cid, _ = connected(chat, "alice")
    for attempt in range(4):
        seq = send(chat, cid, alice, f"race {attempt}")
        replies = run_at_once(
            [
                lambda seq=seq: chat.frame(
                    cid, alice, action="edit", room="r", seq=seq, text="edited while deleting"
                ),
                lambda seq=seq: chat.frame(second_cid, alice, action="delete", room="r", seq=seq),
            ]
        )
        edit, delete = replies
        assert delete["type"] == "changed"
        # Either the edit came first (and was then deleted) or it found a tombstone.
        assert edit["type"] == "changed" or edit["code"] == "not_found"
        message = stored(chat, "r", seq)
        assert (message["text"], message["deleted"]) == ("", True)
        assert_every_client_converges_on_the_stored_state(chat, "r", seq)


def test_many_reactions_at_once_are_all_kept(chat: Chat, room: tuple[str, Identity, int]) -> None:
    _, _, seq = room
    users = [connected(chat, f"fan{i}") for i in range(12)]
    replies = run_at_once(
        [
            (lambda c=c, who=who: chat.frame(c, who, action="react", room="r", seq=seq, emoji="👏", on=True))
            for c, who in users
        ]
        + [
            (lambda c=c, who=who: chat.frame(c, who, action="react", room="r", seq=seq, emoji="💯", on=True))
            for c, who in users[:4]
        ]
    )
    assert all(reply["type"] == "changed" for reply in replies), replies
    assert sorted(reply["rev"] for reply in replies) == list(range(1, 17))
    message = stored(chat, "r", seq)
    assert sorted(message["reactions"]["👏"]) == sorted(f"fan{i}" for i in range(12))
    assert sorted(message["reactions"]["💯"]) == sorted(f"fan{i}" for i in range(4))
    assert len(assert_every_client_converges_on_the_stored_state(chat, "r", seq)) == 16


class ScriptedReviewer:
    """A review function: denies "bad", replaces "darn"; records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def review(self, request: Any) -> Any:
        from functions.chat.domain.ports import Result, Verdict

        self.requests.append(request)
        if "bad" in request.text:
            return Verdict(Result.DENY, request.text, "no bad words")
        if "darn" in request.text:
            return Verdict(Result.REPLACE, request.text.replace("darn", "d***"))
        return Verdict(Result.ALLOW, request.text)


def test_edits_are_reviewed_before_anything_is_stored(chat: Chat, room: tuple[str, Identity, int]) -> None:
    from functions.chat.domain.service import ChatService

    cid, alice, seq = room
    reviewer = ScriptedReviewer()
    service = ChatService(
        chat.service._store, chat.service._queue, chat.settings, chat.recorder, reviewer=reviewer
    )

    def edit(connection_id: str, who: Identity, text: str) -> dict[str, Any]:
        frame = {"action": "edit", "room": "r", "seq": seq, "text": text}
        reply = service.handle(connection_id, who, json.dumps(frame), "req").reply
        assert reply is not None
        return reply

    denied = edit(cid, alice, "a bad edit")
    assert (denied["code"], denied["message"], denied["action"]) == ("rejected", "no bad words", "edit")
    assert stored(chat, "r", seq)["text"] == "helo wrold" and update_jobs(chat) == []
    assert edit(cid, alice, "darn typo")["type"] == "changed"
    assert stored(chat, "r", seq)["text"] == "d*** typo"
    assert [job.frame["text"] for job in update_jobs(chat)] == ["d*** typo"]
    second = reviewer.requests[1]
    assert len(reviewer.requests) == 2
    assert (second.kind, second.room, second.user, second.seq) == ("edit", "r", "alice", seq)
    bob_cid, bob = connected(chat, "bob")
    assert edit(bob_cid, bob, "not yours")["code"] == "forbidden"
    assert len(reviewer.requests) == 2  # a refused edit is never sent to the reviewer
