"""The lease heartbeat: one thread renews every running execution of this process.

Each beat is one guarded statement for all of them (T10). A row that is gone or no
longer ``running`` drops out; any error is logged and the next beat tries again,
because a stopped heartbeat lets another process declare the run crashed.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from . import clock
from .store.base import Store

logger = logging.getLogger(__name__)

MIN_INTERVAL = 0.25


def beat_interval(crash_threshold: timedelta) -> float:
    """Seconds between renewals: a third of the crash threshold, at least 250 ms."""
    return max(MIN_INTERVAL, crash_threshold.total_seconds() / 3)


class Lease:
    """Tracks this process's running executions and renews them together."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._intervals: dict[str, float] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def hold(self, execution_id: str, interval: float) -> None:
        """Start renewing ``execution_id`` every ``interval`` seconds (or sooner)."""
        with self._cond:
            shortest = min(self._intervals.values(), default=None)
            self._intervals[execution_id] = interval
            if self._thread is None or not self._thread.is_alive():
                self._stopped = False
                self._thread = threading.Thread(
                    target=self._loop, name="alepha-jobs-lease", daemon=True
                )
                self._thread.start()
            if shortest is None or interval < shortest:
                self._cond.notify()  # the loop waits too long or forever

    def release(self, execution_id: str) -> None:
        with self._cond:
            self._intervals.pop(execution_id, None)

    def holds(self, execution_id: str) -> bool:
        with self._cond:
            return execution_id in self._intervals

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def beat(self) -> None:
        """Renew every held execution once; drop the ones no longer running."""
        with self._cond:
            ids = list(self._intervals)
        if not ids:
            return
        try:
            alive = self._store.renew(ids, clock.now())
        except Exception:
            logger.warning(
                "lease renewal of %d executions failed; retrying at the next beat",
                len(ids),
                exc_info=True,
                extra={"event": "lease.failed"},
            )
            return
        self._drop(set(ids) - alive)

    def _drop(self, lost: set[str]) -> None:
        if not lost:
            return
        with self._cond:
            for execution_id in lost:
                self._intervals.pop(execution_id, None)
        logger.debug("lease stopped for %d rows no longer running", len(lost))

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                interval = min(self._intervals.values(), default=None)
                if self._cond.wait(interval) or self._stopped:
                    continue  # woken early: wait again with the new interval
            self.beat()
