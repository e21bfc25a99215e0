"""Direct mode across processes (DESIGN §8.10).

A process that pushes without a started runtime only writes the row. Every
started runtime polls for ``pending`` rows untouched for ``pickup_delay`` (and
``scheduled`` rows due that long) and feeds as many as it has idle workers to its
pool; the claim guard makes sure each runs once. A saturated process takes none,
so work flows to idle ones. When a poll filled every idle worker there may be
more: the next poll then happens as soon as a worker frees up, not a whole
interval later, so a backlog drains at the pool's speed.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING

from .. import clock
from .direct import DirectDispatcher

if TYPE_CHECKING:
    from ..app import Jobs

logger = logging.getLogger(__name__)

MIN_POLL = 0.05
#: A poll draws its rows at random from the oldest ``SPREAD`` times the pool size
#: of ready ones, so runtimes polling at once rarely hand the same row to a worker
#: (the claim guard would let only one run it; the others waste a claim).
SPREAD = 16


class Pickup:
    """A named daemon thread that polls the outbox for rows nobody dispatched here."""

    def __init__(self, jobs: Jobs, dispatcher: DirectDispatcher) -> None:
        self._jobs = jobs
        self._dispatcher = dispatcher
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._hungry = False  # the last poll filled every idle worker
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return max(MIN_POLL, self._jobs.config.pickup_delay.total_seconds() / 2)

    def start(self) -> None:
        self._stop.clear()
        self._wake.set()  # the first poll happens at once: rows may be waiting
        self._dispatcher.on_slot_free = self._slot_freed
        self._thread = threading.Thread(
            target=self._loop, name="alepha-jobs-pickup", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._dispatcher.on_slot_free = None
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> int:
        """Take what is ready, up to the number of idle workers; return how many."""
        free = self._dispatcher.free_slots
        names = [d.name for d in self._jobs.definitions() if d.kind == "queue"]
        if free <= 0 or not names:
            return 0
        cutoff = clock.now() - self._jobs.config.pickup_delay
        window = SPREAD * self._dispatcher.max_concurrency
        ready = self._jobs.store.ready(cutoff, names, window)
        self._hungry = len(ready) >= free
        held = self._dispatcher.held()  # rows this pool is about to claim
        ready = [row for row in ready if row.id not in held]
        picked = sorted(random.sample(range(len(ready)), min(free, len(ready))))
        rows = [ready[index] for index in picked]
        self._dispatcher.dispatch_many([(row.job_name, row.id) for row in rows])
        return len(rows)

    def _slot_freed(self) -> None:
        if self._hungry:
            self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
            except Exception:
                logger.warning(
                    "pickup poll failed; trying again",
                    exc_info=True,
                    extra={"event": "pickup.failed"},
                )
