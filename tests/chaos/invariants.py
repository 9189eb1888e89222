"""What must hold in the tables after any run, whatever failed along the way.

Read with the test's own client (never the faulted ones). Each check returns a list of
violations (empty = fine) so a run reports everything that is wrong at once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

_DESERIALIZER = TypeDeserializer()


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        decoded = _DESERIALIZER.deserialize(value)
        if hasattr(decoded, "to_integral_value"):
            decoded = int(decoded)
        out[key] = decoded
    return out


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(_plain(item) for item in page["Items"])
    return items


@dataclass
class State:
    connections: list[dict[str, Any]]
    rooms: list[dict[str, Any]]
    messages: list[dict[str, Any]]

    @classmethod
    def read(cls, client: Any, tables: dict[str, str]) -> State:
        return cls(
            connections=scan(client, tables["connections"]),
            rooms=scan(client, tables["rooms"]),
            messages=scan(client, tables["messages"]),
        )

    def messages_in(self, room: str) -> list[dict[str, Any]]:
        return sorted((m for m in self.messages if m["room"] == room), key=lambda m: int(m["seq"]))

    def connection_ids(self) -> set[str]:
        return {str(c["connectionId"]) for c in self.connections}


@dataclass
class Acked:
    """What the clients were told: (user, room, clientMsgId) -> (id, seq) of every ack."""

    acks: dict[tuple[str, str, str], tuple[str, int]] = field(default_factory=dict)

    def record(self, user: str, room: str, client_msg_id: str, message_id: str, seq: int) -> list[str]:
        key = (user, room, client_msg_id)
        previous = self.acks.setdefault(key, (message_id, seq))
        if previous != (message_id, seq):
            return [f"two different acks for {key}: {previous} and {(message_id, seq)}"]
        return []

    def seqs(self, room: str) -> set[int]:
        return {seq for (_, r, _), (_, seq) in self.acks.items() if r == room}


def check_messages(state: State, acked: Acked, rooms: list[str]) -> list[str]:
    """Every acked message stored exactly once with its seq; seqs 1..N without gaps; META.seq
    at least every acked seq and at most the highest stored one (a store moves the counter
    after its transaction and before its ack, docs/data-model.md); every stored message has its
    idempotency claim."""
    problems: list[str] = []
    meta = {
        str(i["pk"])[5:]: i for i in state.rooms if i.get("sk") == "META" and str(i["pk"]).count("#") == 1
    }
    claims = {str(i["pk"]): i for i in state.rooms if str(i["pk"]).startswith("IDEM#")}
    for room in rooms:
        stored = state.messages_in(room)
        seqs = [int(m["seq"]) for m in stored]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{room}: stored seqs are not 1..N: {seqs[:20]}...")
        per_key = Counter((m["user"], m["clientMsgId"]) for m in stored)
        twice = [key for key, count in per_key.items() if count > 1]
        if twice:
            problems.append(f"{room}: stored more than once: {twice[:5]}")
        by_key = {(m["user"], room, m["clientMsgId"]): m for m in stored}
        for key, (message_id, seq) in acked.acks.items():
            if key[1] != room:
                continue
            message = by_key.get(key)
            if message is None:
                problems.append(f"acked but not stored: {key}")
            elif (message["id"], int(message["seq"])) != (message_id, seq):
                problems.append(f"{key}: acked {(message_id, seq)}, stored {(message['id'], message['seq'])}")
        meta_seq = int(meta.get(room, {}).get("seq", 0))
        highest_acked = max((seq for (_, r, _), (_, seq) in acked.acks.items() if r == room), default=0)
        if not highest_acked <= meta_seq <= (max(seqs) if seqs else 0):
            problems.append(
                f"{room}: META.seq {meta_seq} outside [highest acked {highest_acked}, "
                f"highest stored {max(seqs) if seqs else 0}]"
            )
        for message in stored:
            claim = claims.get(f"IDEM#{message['user']}#{room}#{message['clientMsgId']}")
            if claim is None:
                problems.append(f"{room} seq {message['seq']}: no idempotency claim (half-written)")
            elif int(claim["seq"]) != int(message["seq"]) or claim["messageId"] != message["id"]:
                problems.append(f"{room} seq {message['seq']}: claim points elsewhere: {claim}")
    for pk, claim in claims.items():
        room = pk.split("#")[2]
        if room in rooms and not any(int(m["seq"]) == int(claim["seq"]) for m in state.messages_in(room)):
            problems.append(f"claim without a message (half-written): {pk}")
    return problems


def check_memberships(state: State, rooms: list[str], lost: frozenset[str] = frozenset()) -> list[str]:
    """Counters equal the items they count; no membership without its connection (orphans);
    the connection's `joined` map and the membership items agree.

    `lost`: connections API Gateway no longer has, whose pruning may be half done (a prune
    whose write failed): their stale connection item may still list rooms until the janitor
    finishes the prune. Everything else must be exact.
    """
    problems: list[str] = []
    connections = {str(c["connectionId"]): c for c in state.connections}
    for room in rooms:
        prefix = f"ROOM#{room}#S#"
        members = [i for i in state.rooms if str(i["pk"]).startswith(prefix)]
        counted = sum(
            int(i.get("members", 0))
            for i in state.rooms
            if i["pk"] == f"ROOM#{room}" and (i["sk"] == "META" or str(i["sk"]).startswith("MEMBERS#"))
        )
        if counted != len(members):
            problems.append(f"{room}: member counters sum to {counted} != {len(members)} membership items")
        listed = {str(i["sk"]) for i in state.rooms if i["pk"] == f"ROOM#{room}#SHARDS"}
        unlisted = {str(i["pk"])[len(prefix) :] for i in members} - listed
        if unlisted:
            problems.append(f"{room}: shards {sorted(unlisted)} hold members but are not in the directory")
        per_user: dict[str, int] = defaultdict(int)
        for member in members:
            per_user[str(member["userId"])] += 1
            connection = connections.get(str(member["sk"]))
            if connection is None:
                problems.append(f"{room}: orphan membership of gone connection {member['sk']}")
            elif room not in (connection.get("joined") or {}):
                problems.append(f"{room}: membership {member['sk']} not in its connection's joined map")
        presence = {
            str(i["userId"]): int(i.get("connections", 0))
            for i in state.rooms
            if i["pk"] == f"ROOM#{room}" and str(i["sk"]).startswith("USER#")
        }
        if presence != dict(per_user):
            problems.append(f"{room}: presence counts {presence} != connections per user {dict(per_user)}")
    for connection_id, connection in connections.items():
        if connection_id in lost:
            continue
        for room, shard in (connection.get("joined") or {}).items():
            key = (f"ROOM#{room}#S#{shard}", connection_id)
            if not any((i["pk"], i["sk"]) == key for i in state.rooms):
                problems.append(f"connection {connection_id} lists {room} but has no membership item")
    return problems


def check_user_connections(state: State, lost: frozenset[str] = frozenset()) -> list[str]:
    """A user's connection entry (``USER#u`` / ``CONN#id``, what user-addressed delivery Queries)
    never outlives its connection item: $connect writes it second and every prune deletes it
    first (docs/data-model.md). The reverse, a connection item without its entry, is a prune
    stopped half-way, which the janitor finishes."""
    items = {str(c["connectionId"]): c for c in state.connections}
    problems = []
    for entry in state.rooms:
        if not (str(entry["pk"]).startswith("USER#") and str(entry["sk"]).startswith("CONN#")):
            continue
        connection_id = str(entry["sk"]).removeprefix("CONN#")
        if connection_id in lost:
            continue
        connection = items.get(connection_id)
        if connection is None:
            problems.append(f"user entry {entry['pk']}/{entry['sk']} has no connection item")
        elif f"USER#{connection.get('userId')}" != entry["pk"]:
            problems.append(f"user entry {entry['pk']}/{entry['sk']} names another user's connection")
    return problems


def check_all(state: State, acked: Acked, rooms: list[str], lost: frozenset[str] = frozenset()) -> list[str]:
    return (
        check_messages(state, acked, rooms)
        + check_memberships(state, rooms, lost)
        + check_user_connections(state, lost)
    )
