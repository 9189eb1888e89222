"""Message lifecycle end to end: `dynamowave serve`, real WebSocket clients, the real functions.

An offline client recovers an edit, a delete and a reaction made while it was away; a
non-author's edit is refused; a moderator deletes someone else's message; every connection in
the room gets the same `update`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Server, start_server
from tests.e2e.test_e2e_chat import Frame, chat, records_mentioning, run, unique


@pytest.fixture(scope="module")
def lifecycle_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(
        tmp_path_factory.mktemp("lifecycle"),
        "--visibility-timeout",
        "2",
        "--janitor-interval",
        "0",
        "--env",
        "SHARD_SIZE=2",  # three connections span two shards: two fan-out jobs per update
    )
    yield server
    server.stop()


def test_every_connection_gets_the_update_and_the_actor_gets_changed(lifecycle_server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def scenario() -> tuple[Frame, list[Frame]]:
        async with (
            chat(lifecycle_server, alice) as a1,
            chat(lifecycle_server, alice) as a2,
            chat(lifecycle_server, bob) as b,
        ):
            for client in (a1, a2, b):
                await client.join(room)
            ack = await a1.say(room, "teh typo")
            await a1.send(action="edit", room=room, seq=ack["seq"], text="the typo")
            changed = await a1.expect("changed", room=room)
            updates = [await client.expect("update", room=room, rev=1) for client in (a1, a2, b)]
            return changed, updates

    changed, updates = run(scenario())
    assert changed == {"type": "changed", "room": room, "seq": 1, "rev": 1}
    assert all(update == updates[0] for update in updates)
    assert (updates[0]["text"], updates[0]["deleted"], updates[0]["reactions"]) == ("the typo", False, {})
    assert isinstance(updates[0]["editedAt"], int)


def test_an_offline_client_recovers_an_edit_a_delete_and_a_reaction(lifecycle_server: Server) -> None:
    room, alice, bob = unique("room"), unique("alice"), unique("bob")

    async def scenario() -> tuple[Frame, Frame]:
        async with chat(lifecycle_server, alice) as a:
            await a.join(room)
            seqs = [(await a.say(room, text))["seq"] for text in ("first", "second", "third")]
            async with chat(lifecycle_server, bob) as b:
                seen = await b.join(room)
            # Bob is offline now; he saw seq 3 and rev 0.
            await a.send(action="edit", room=room, seq=seqs[0], text="first, edited")
            await a.expect("changed", seq=seqs[0])
            await a.send(action="delete", room=room, seq=seqs[1])
            await a.expect("changed", seq=seqs[1])
            await a.send(action="react", room=room, seq=seqs[2], emoji="🎉", on=True)
            await a.expect("changed", seq=seqs[2])
            await a.say(room, "fourth")
        async with chat(lifecycle_server, bob) as b:
            back = await b.join(room, since=seen["seq"], rev=seen["rev"])
        return seen, back

    seen, back = run(scenario())
    assert (seen["seq"], seen["rev"]) == (3, 0)
    assert back["rev"] == 3 and back["more"] is False
    assert [m["text"] for m in back["messages"]] == ["fourth"]
    by_seq = {update["seq"]: update for update in back["updates"]}
    assert (by_seq[1]["text"], by_seq[1]["deleted"]) == ("first, edited", False)
    assert (by_seq[2]["text"], by_seq[2]["deleted"], by_seq[2]["reactions"]) == ("", True, {})
    assert by_seq[3]["reactions"] == {"🎉": [alice]}
    assert records_mentioning(lifecycle_server, "second") == []  # the deleted text is gone from storage


def test_a_non_authors_edit_is_refused_and_a_moderators_delete_is_not(lifecycle_server: Server) -> None:
    room, alice, mallory, mia = unique("room"), unique("alice"), unique("mallory"), unique("mia")

    async def scenario() -> tuple[Frame, Frame, Frame, Frame]:
        async with (
            chat(lifecycle_server, alice) as a,
            chat(lifecycle_server, mallory) as m,
            chat(lifecycle_server, mia, mod=[room]) as moderator,
        ):
            for client in (a, m, moderator):
                await client.join(room)
            ack = await a.say(room, "alice's words")
            await m.send(action="edit", room=room, seq=ack["seq"], text="mallory's words")
            edit_refused = await m.expect("error", action="edit")
            await m.send(action="delete", room=room, seq=ack["seq"])
            delete_refused = await m.expect("error", action="delete")
            await moderator.send(action="delete", room=room, seq=ack["seq"])
            deleted = await moderator.expect("changed", room=room)
            tombstone = await a.expect("update", room=room, rev=deleted["rev"])
            return edit_refused, delete_refused, deleted, tombstone

    edit_refused, delete_refused, deleted, tombstone = run(scenario())
    assert (edit_refused["code"], edit_refused["room"]) == ("forbidden", room)
    assert delete_refused["code"] == "forbidden"
    assert deleted == {"type": "changed", "room": room, "seq": 1, "rev": 1}
    assert (tombstone["text"], tombstone["deleted"]) == ("", True)
