"""The janitor against moto and a scripted Management API, through the real handler.

Defaults as on API Gateway: idle timeout 10 minutes, maximum connection duration 2 hours.
"""

from __future__ import annotations

from typing import Any

from dynamowave.testing.aws import LambdaContext
from functions.chat import deps
from functions.chat.clock import now_ms
from functions.janitor.handler import handler
from tests.fanout.support import Call
from tests.janitor.conftest import Site


def test_warmup_returns_at_once() -> None:
    assert handler({"warmup": True}, LambdaContext()) == {"warmup": True}


def test_prunes_only_stale_connections_with_the_right_calls(site: Site) -> None:
    fresh = site.connection("fresh-1=", connected_min_ago=3, active_min_ago=1)
    lost = site.connection("lost-1=", connected_min_ago=30, active_min_ago=30)
    idle = site.connection("idle-1=", connected_min_ago=30, active_min_ago=12)
    old = site.connection("old-1=", connected_min_ago=125, active_min_ago=1)
    busy = site.connection("busy-1=", connected_min_ago=30, active_min_ago=11)
    site.queued()  # presence jobs of the joins
    site.api.gone.add(lost)  # no socket any more: a $disconnect that never ran
    now = now_ms()
    site.api.info[idle] = (now - 30 * 60_000, now - 12 * 60_000)  # API Gateway agrees: idle
    site.api.info[old] = (now - 125 * 60_000, now - 60_000)  # active, but past 2 hours
    site.api.info[busy] = (now - 30 * 60_000, now - 20_000)  # our lastSeen lagged: it is active

    summary = site.run()

    assert summary["finished"] is True and summary["resumed_from"] is None
    assert (summary["scanned"], summary["pruned"], summary["deleted"], summary["kept"]) == (4, 1, 2, 1)
    assert site.api.methods_for(fresh) == []  # never even asked about
    assert site.api.methods_for(lost) == ["GET"]
    assert site.api.methods_for(idle) == ["GET", "DELETE"]
    assert site.api.methods_for(old) == ["GET", "DELETE"]
    assert site.api.methods_for(busy) == ["GET"]
    assert [site.exists(c) for c in (fresh, lost, idle, old, busy)] == [True, False, False, False, True]
    # Each removed user was the last of their connections in the room: presence `leave` for each.
    left = sorted(job.frame["user"] for job in site.queued())
    assert left == ["idle", "lost", "old"]


def test_throttled_checks_are_left_for_the_next_run(site: Site) -> None:
    lost = site.connection("lost-1=", connected_min_ago=30, active_min_ago=30)
    site.api.gone.add(lost)
    site.api.script(lost, 429)

    first = site.run()
    assert (first["deferred"], first["pruned"], first["finished"]) == (1, 0, True)
    assert site.exists(lost)

    second = site.run()
    assert (second["deferred"], second["pruned"]) == (0, 1)
    assert not site.exists(lost)


def test_resumes_from_its_cursor_when_the_budget_runs_out(site_factory: Any) -> None:
    site: Site = site_factory(JANITOR_PAGE_SIZE=5)
    stale = [
        site.connection(f"s{i:02d}-x=", connected_min_ago=20, active_min_ago=20, room=None) for i in range(23)
    ]
    fresh = [
        site.connection(f"f{i:02d}-x=", connected_min_ago=1, active_min_ago=1, room=None) for i in range(5)
    ]
    site.api.gone.update(stale)
    context = LambdaContext(remaining_ms=300_000)

    def budget_ends_after_seven_checks(call: Call) -> None:
        if len(site.api.calls) >= 7:
            context.remaining_ms = 500  # below JANITOR_BUDGET_SAFETY_MS (1000 in these tests)

    site.api.on_request = budget_ends_after_seven_checks
    first = site.run(context)
    site.api.on_request = None

    assert first["finished"] is False
    assert 7 <= first["pruned"] < len(stale)
    saved = deps.store().load_janitor_cursor()
    assert saved is not None  # the budget ran out past the first page

    second = site.run()
    assert second["resumed_from"] == saved
    assert second["finished"] is True
    assert first["pruned"] + second["pruned"] == len(stale)
    assert not any(site.exists(c) for c in stale)
    assert all(site.exists(c) for c in fresh)
    # Every stale connection was checked exactly once across the two runs; fresh ones never.
    for connection_id in stale:
        assert site.api.methods_for(connection_id) == ["GET"]
    for connection_id in fresh:
        assert site.api.methods_for(connection_id) == []

    third = site.run()  # a new pass from the start: nothing stale is left
    assert (third["resumed_from"], third["scanned"], third["finished"]) == (None, 0, True)
