"""The janitor: prunes connections idle past the idle timeout or older than the maximum
duration (docs/fanout.md, "The janitor"). The janitor handler runs `Janitor.run` (built by deps)
on a schedule, within the invocation's time budget."""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from functions.chat.clock import Clock, now_ms
from functions.chat.domain.deadline import Deadline
from functions.chat.domain.ports import (
    ConnectionInfo,
    ConnectionRecord,
    Gone,
    JanitorCursor,
    ManagementApi,
    PostError,
    Pruner,
    StaleConnections,
)
from functions.chat.settings import Settings

logger = logging.getLogger(__name__)


class JanitorStore(StaleConnections, JanitorCursor, Protocol):
    """The janitor's view of the store: the stale connections' Scan and its cursor."""


class Verdict(StrEnum):
    PRUNED = "pruned"  # API Gateway said 410: records removed
    DELETED = "deleted"  # alive but idle or too old: DeleteConnection, then records removed
    KEPT = "kept"  # alive and active by API Gateway's account (our lastSeen lagged)
    DEFERRED = "deferred"  # throttled / failing / out of time: the next run sees it again


@dataclass
class JanitorReport:
    scanned: int = 0  # stale candidates the Scan returned
    pruned: int = 0
    deleted: int = 0
    kept: int = 0
    deferred: int = 0
    pages: int = 0
    resumed_from: dict[str, Any] | None = None
    finished: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Janitor:
    """Prunes connections idle past the idle timeout or older than the maximum duration.

    One Scan pass over the connections table, page by page, resumable: the cursor (the Scan's
    LastEvaluatedKey) is saved after every page, so a run that runs out of time, fails or is
    never scheduled again leaves the next run exactly where it stopped. Each candidate is
    checked with GetConnection first: only API Gateway knows whether a connection is alive.
    """

    def __init__(
        self,
        *,
        store: JanitorStore,
        api: ManagementApi,
        prune: Pruner,
        settings: Settings,
        executor: Executor,
        clock: Clock = now_ms,
    ) -> None:
        self._store = store
        self._api = api
        self._prune = prune
        self._settings = settings
        self._executor = executor
        self._clock = clock

    def run(self, deadline: Deadline, correlation_id: str = "") -> JanitorReport:
        settings = self._settings
        now = self._clock()
        idle_before = now - settings.idle_timeout_seconds * 1000
        connected_before = now - settings.max_connection_seconds * 1000
        cursor = self._store.load_janitor_cursor()
        report = JanitorReport(resumed_from=cursor)
        while not deadline.expired():
            records, next_key = self._store.scan_stale_connections(
                idle_before_ms=idle_before,
                connected_before_ms=connected_before,
                start_key=cursor,
                page_size=settings.janitor_page_size,
            )
            report.pages += 1
            report.scanned += len(records)
            verdicts = list(
                self._executor.map(
                    lambda record: self._examine(record, now, deadline, correlation_id), records
                )
            )
            counts = Counter(verdicts)
            report.pruned += counts[Verdict.PRUNED]
            report.deleted += counts[Verdict.DELETED]
            report.kept += counts[Verdict.KEPT]
            report.deferred += counts[Verdict.DEFERRED]
            if deadline.expired() and counts[Verdict.DEFERRED]:
                # Some of this page were left for lack of time: rescan the page next run (what
                # was removed is no longer there, what was kept is cheap to look at again).
                self._store.save_janitor_cursor(cursor, self._clock())
                return report
            cursor = next_key
            self._store.save_janitor_cursor(cursor, self._clock())
            if cursor is None:
                report.finished = True
                return report
        return report

    def _examine(
        self, record: ConnectionRecord, now: int, deadline: Deadline, correlation_id: str
    ) -> Verdict:
        connection_id = record.connection_id
        if deadline.expired():
            return Verdict.DEFERRED
        try:
            info = self._api.get(connection_id)
        except Gone:
            self._prune(connection_id, correlation_id)
            return Verdict.PRUNED
        except PostError as error:  # throttled, 5xx, or refused (e.g. a missing permission)
            logger.warning("janitor: GetConnection %s failed: %s", connection_id, error.detail)
            return Verdict.DEFERRED
        if not self._expired(record, info, now):
            return Verdict.KEPT
        try:
            # On AWS this closes the socket and runs $disconnect, which removes the records too;
            # removing them here as well means a lost $disconnect cannot leave them behind.
            self._api.delete(connection_id)
        except Gone:
            pass
        except PostError as error:
            logger.warning("janitor: DeleteConnection %s failed: %s", connection_id, error.detail)
            return Verdict.DEFERRED
        self._prune(connection_id, correlation_id)
        return Verdict.DELETED

    def _expired(self, record: ConnectionRecord, info: ConnectionInfo, now: int) -> bool:
        settings = self._settings
        connected_at = min(record.connected_at, _epoch_ms(info.connected_at) or record.connected_at)
        last_active = max(record.last_seen, _epoch_ms(info.last_active_at) or 0)
        too_old = connected_at <= now - settings.max_connection_seconds * 1000
        idle = last_active <= now - settings.idle_timeout_seconds * 1000
        return too_old or idle


def _epoch_ms(text: str) -> int | None:
    """GetConnection's timestamps (botocore datetimes, as text) in epoch ms; None if absent."""
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
