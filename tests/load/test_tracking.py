"""The load test's bookkeeping: de-duplication, seq gaps, acks that never come."""

from __future__ import annotations

from loadtests.tracking import PendingSends, RoomTracker


def test_gaps_after_the_join_are_missing_deliveries_and_duplicates_are_not() -> None:
    tracker = RoomTracker(joined_seq=3)
    for seq in (4, 6, 6, 8):
        tracker.delivered(seq)
    assert tracker.missing() == [5, 7]
    assert tracker.duplicates == 1


def test_messages_before_the_join_are_not_expected() -> None:
    tracker = RoomTracker(joined_seq=10)
    tracker.delivered(11)
    assert tracker.missing() == []
    assert RoomTracker(joined_seq=None, seen={5}).missing() == []


def test_pending_sends_report_overdue_acks_once() -> None:
    pending = PendingSends()
    pending.sent("a", at=0.0)
    pending.sent("b", at=5.0)
    assert pending.acked("b") == 5.0
    assert pending.overdue(now=11.0, timeout=10.0) == ["a"]
    assert pending.overdue(now=20.0, timeout=10.0) == []
    assert pending.delivered("b") == 5.0
    assert pending.delivered("a") is None
