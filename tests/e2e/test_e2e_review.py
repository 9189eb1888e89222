"""Message review under `dynamowave serve --review-handler`, over real WebSockets: the review
function runs in the runtime's Lambda runner behind Lambda's Invoke API, and deny, replace and
a timeout (fallback deny) reach the sender as the protocol says."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import Server, start_server
from tests.e2e.review_stubs import STALL_TEXT
from tests.e2e.test_e2e_chat import chat, records_mentioning, run, unique


@pytest.fixture(scope="module")
def review_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_server(
        tmp_path_factory.mktemp("review"),
        "--janitor-interval",
        "0",
        "--review-handler",
        "tests.e2e.review_stubs.handler",
        "--review-timeout",
        "2000",  # long enough for a cold start on a loaded machine, far below the stall
        "--review-fallback",
        "deny",
        env={"REVIEW_DENY_WORDS": "forbidden", "REVIEW_MASK_WORDS": "darn"},
    )
    yield server
    server.stop()


def test_review_allows_denies_replaces_and_falls_back_on_timeout(review_server: Server) -> None:
    room = unique("review")

    async def scenario() -> None:
        async with chat(review_server, unique("ann")) as ann, chat(review_server, unique("bob")) as bob:
            await ann.join(room)
            await bob.join(room)
            allowed = await ann.say(room, "hello")
            assert (await bob.expect("message", room=room, seq=allowed["seq"]))["text"] == "hello"

            await ann.send(action="sendmessage", room=room, text="a forbidden word", clientMsgId="deny1")
            refused = await ann.expect("error", clientMsgId="deny1")
            assert refused["code"] == "rejected" and "forbidden" in refused["message"]

            replaced = await ann.say(room, "darn it")
            masked = await bob.expect("message", room=room, seq=replaced["seq"])
            assert masked["text"] == "**** it"
            assert replaced["seq"] == allowed["seq"] + 1  # the denied message took no seq

            started = time.monotonic()
            await ann.send(action="sendmessage", room=room, text=STALL_TEXT, clientMsgId="slow1")
            timed_out = await ann.expect("error", clientMsgId="slow1")
            assert timed_out["code"] == "rejected"
            assert time.monotonic() - started < 7  # the budget answered, not the stalled reviewer (8 s)
            assert [f for f in await bob.drain(0.5) if f.get("type") == "message"] == []

    run(scenario())
    assert records_mentioning(review_server, "forbidden") == []
    assert records_mentioning(review_server, STALL_TEXT) == []
    assert records_mentioning(review_server, "darn it") == []
