"""Chaos for message changes: edits, reactions and a delete while everything fails sometimes.

The same in-process pipeline and faults as test_chaos_pipeline.py (DynamoDB errors and
ambiguous commits, SQS errors, PostToConnection 429/500, crashed fan-out invocations,
duplicated deliveries). A careful client repeats a change until it gets `changed` (changes are
idempotent). Asserted: the stored state is the script's final state, and every member that
stayed connected converges on it from its `update` frames (highest rev per message), after
the DLQ is redriven if the faults put updates there: no change is lost.
"""

from __future__ import annotations

import json
from typing import Any

from functions.chat.adapters.dynamodb.keys import deserialize
from tests.chaos.pipeline import Member, Pipeline
from tests.chaos.test_chaos_pipeline import pipeline, redrive  # noqa: F401 - the fixture

ROOM = "chaos-changes"


def change_until_changed(pipe: Pipeline, member: Member, frame: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"room": ROOM, **frame})
    for attempt in range(30):
        if attempt:
            pipe.stats["change repeats"] += 1
        reply = pipe.harness.send(member.connection_id, member.identity, body)
        if reply.frame is not None and reply.frame.get("type") == "changed":
            return reply.frame
        assert reply.frame is not None and reply.frame.get("code") in ("internal", "rate_limited"), reply
        pipe.pump(batches=1)
    raise AssertionError(f"{frame} never changed")


def converged(member: Member) -> dict[int, dict[str, Any]]:
    member.poll()
    state: dict[int, dict[str, Any]] = {}
    for frame in member.frames:
        if frame.get("type") == "update" and frame.get("room") == ROOM:
            held = state.get(frame["seq"])
            if held is None or frame["rev"] > held["rev"]:
                state[frame["seq"]] = frame
    return state


def test_changes_under_faults_are_never_lost(pipeline: Pipeline) -> None:  # noqa: F811
    harness, faults = pipeline.harness, pipeline.faults
    members = [pipeline.member(f"changer{i}", ROOM) for i in range(3)]
    seqs = [int(pipeline.send_until_acked(members[0], ROOM, f"m{i}", f"c{i}")["seq"]) for i in range(3)]
    pipeline.pump()
    faults.enabled = True
    script: list[tuple[Member, dict[str, Any]]] = []
    for round_ in range(4):
        for seq in seqs:
            script.append((members[0], {"action": "edit", "seq": seq, "text": f"m{seq} edit {round_}"}))
            reactor = members[seq % 3]  # on, off, on, off: ends with no reaction
            script.append((reactor, {"action": "react", "seq": seq, "emoji": "👍", "on": round_ % 2 == 0}))
    script.append((members[0], {"action": "delete", "seq": seqs[1]}))
    for member, frame in script:
        change_until_changed(pipeline, member, frame)
        pipeline.pump(batches=1)
    pipeline.pump()
    faults.enabled = False
    if pipeline.dead_letters():
        redrive(pipeline)
    pipeline.pump()

    stored = {}
    for seq in seqs:
        item = harness.dynamodb.get_item(
            TableName=harness.resources.tables["messages"],
            Key={"room": {"S": ROOM}, "seq": {"N": str(seq)}},
            ConsistentRead=True,
        )["Item"]
        stored[seq] = deserialize(item)
    # The script's final state: last edits stand, round 3's reactions were taken back, one delete.
    for seq in (seqs[0], seqs[2]):
        assert stored[seq]["text"] == f"m{seq} edit 3" and stored[seq]["reactions"] == {}
    assert (stored[seqs[1]]["text"], stored[seqs[1]]["deleted"]) == ("", True)
    for member in members:
        state = converged(member)
        for seq in seqs:
            got = state[seq]
            assert (got["rev"], got["text"], got["deleted"], got["reactions"]) == (
                stored[seq]["rev"],
                stored[seq]["text"],
                bool(stored[seq].get("deleted")),
                stored[seq]["reactions"],
            ), (member.identity.user_id, seq)
    print(f"\nchaos (changes): {dict(pipeline.stats)} {faults.summary()}")
