"""Direct mode across processes (DESIGN §8.10).

A process that pushes without a started runtime only writes the row. Every
started runtime polls for ``pending`` rows untouched for ``pickup_delay`` (and
``scheduled`` rows due that long) and feeds as many as it has idle workers to its
pool; the claim guard makes sure each runs once. A saturated process takes none,
so work flows to idle ones.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .. import clock
from .direct import DirectDispatcher

if TYPE_CHECKING:
    from ..app import Jobs

logger = logging.getLogger(__name__)

MIN_POLL = 0.05


class Pickup:
    """A named daemon thread that polls the outbox for rows nobody dispatched here."""

    def __init__(self, jobs: Jobs, dispatcher: DirectDispatcher) -> None:
        self._jobs = jobs
        self._dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return max(MIN_POLL, self._jobs.config.pickup_delay.total_seconds() / 2)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="alepha-jobs-pickup", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> int:
        """Take what is ready, up to the number of idle workers; return how many."""
        free = self._dispatcher.free_slots
        names = [d.name for d in self._jobs.definitions() if d.kind == "queue"]
        if free <= 0 or not names:
            return 0
        cutoff = clock.now() - self._jobs.config.pickup_delay
        rows = self._jobs.store.ready(cutoff, names, free)
        self._dispatcher.dispatch_many([(row.job_name, row.id) for row in rows])
        return len(rows)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                logger.warning(
                    "pickup poll failed; trying again",
                    exc_info=True,
                    extra={"event": "pickup.failed"},
                )
