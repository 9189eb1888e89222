"""The fan-out's hold on the records it is working on: a short visibility timeout, renewed.

A crashed invocation leaves its batch invisible until the visibility timeout ends; with AWS's
usual "6 x the function timeout" that is minutes per crash (docs/fanout.md, "Crash bound"). The
fan-out queue's visibility timeout is short instead (`FANOUT_VISIBILITY_SECONDS`), and while an
invocation works on a batch it renews the timeout of the records not finished yet every third of
it. A live invocation keeps its records however long it runs; a dead one stops renewing, and its
records are back on the queue within one visibility timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

# (receipt handles, seconds): ChangeMessageVisibility of each handle to `seconds` from now.
Extend = Callable[[list[str], int], None]


class VisibilityLease:
    def __init__(self, extend: Extend, seconds: int) -> None:
        self._extend = extend
        self._seconds = seconds

    @property
    def renew_every_seconds(self) -> float:
        return max(0.5, self._seconds / 3)

    @contextmanager
    def held(self, pending: Callable[[], list[str]]) -> Iterator[None]:
        """Renew `pending()`'s receipt handles until the block ends (a failed renewal is only
        logged: the record may then be delivered twice, which clients de-duplicate)."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.renew_every_seconds):
                handles = pending()
                if not handles:
                    continue
                try:
                    self._extend(handles, self._seconds)
                except Exception:
                    logger.warning("visibility of %d record(s) not renewed", len(handles), exc_info=True)

        thread = threading.Thread(target=renew, name="fanout-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
