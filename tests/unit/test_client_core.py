"""The clients' shared rules (dynamowave/client_core.py), with no socket: the terminal client, the
bench and the load test hold rooms and resend by these."""

from __future__ import annotations

from dynamowave.client_core import Outbox, RoomLog, reconnect_delay


def test_a_delivery_is_held_once_and_the_mark_stops_at_the_first_hole() -> None:
    room = RoomLog("r")
    assert [room.record(seq) for seq in (4, 5, 5, 6, 8)] == [True, True, False, True, True]
    assert room.latest == 8 and room.recovery_mark() == 6  # 7 not delivered yet: recover from 6
    assert room.holes(after=3) == [7]
    assert [m["seq"] for m in room.unseen([{"seq": 9}, {"seq": 5}, {"seq": 7}, {"no": "seq"}])] == [7, 9]


def test_the_first_join_asks_from_since_and_every_rejoin_from_the_mark_and_rev() -> None:
    assert RoomLog("r").join_frame() == {"action": "join", "room": "r"}
    assert RoomLog("r", since=3).join_frame() == {"action": "join", "room": "r", "since": 3}
    room = RoomLog("r", seen={1, 2, 4}, ever_joined=True, rev=7)
    assert room.join_frame() == {"action": "join", "room": "r", "since": 2, "rev": 7}


def test_only_a_newer_rev_replaces_a_messages_state() -> None:
    room = RoomLog("r")
    assert room.apply({"seq": 1, "rev": 2, "text": "b"})
    assert not room.apply({"seq": 1, "rev": 1, "text": "a"})  # older, arrived late
    assert not room.apply({"seq": 1, "rev": 2, "text": "b"})  # a repeat
    assert room.versions[1]["text"] == "b"


def test_a_new_epoch_drops_what_was_held() -> None:
    room = RoomLog("r", seen={1, 2}, latest=2, rev=3)
    assert not room.new_epoch("e1")  # the first epoch seen is not a change
    assert room.new_epoch("e2")
    assert room.seen == set() and room.latest == 0 and room.rev == 0 and room.recovery_mark() == 0


def test_a_send_goes_once_per_connection_into_a_joined_room_until_acknowledged() -> None:
    outbox = Outbox()
    sent = outbox.add("r", "hello", "c1")
    assert not outbox.due(sent, room_joined=False, connection=1)
    assert outbox.due(sent, room_joined=True, connection=1)
    sent.sent_on = 1
    assert not outbox.due(sent, room_joined=True, connection=1)
    assert outbox.due(sent, room_joined=True, connection=2)  # a new connection: send again
    assert sent.frame() == {"action": "sendmessage", "room": "r", "text": "hello", "clientMsgId": "c1"}
    assert outbox.for_room("r") == [sent] and outbox.for_room("s") == []
    assert outbox.acknowledged("c1") is sent and not outbox and outbox.acknowledged("c1") is None


def test_reconnects_back_off_with_jitter_up_to_the_cap() -> None:
    lowest = [reconnect_delay(attempt, lambda low, high: low) for attempt in (1, 2, 3, 12)]
    highest = [reconnect_delay(attempt, lambda low, high: high) for attempt in (1, 2, 3, 12)]
    assert lowest == [0.25, 0.5, 1.0, 15.0]
    assert highest == [0.5, 1.0, 2.0, 30.0]
