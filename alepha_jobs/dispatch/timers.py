"""The timekeeper: one thread and a heap of wall-clock deadlines.

Deadlines are read from the library's clock, so frozen time in tests holds them
back until the test moves the clock. While a deadline is armed the thread
re-checks at least every :data:`MAX_WAIT` seconds, which also absorbs wall-clock
jumps.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from .. import clock

logger = logging.getLogger(__name__)

MAX_WAIT = 0.2


class Timer:
    """A handle on one armed deadline."""

    __slots__ = ("when", "callback", "cancelled", "tag")

    def __init__(self, when: datetime, callback: Callable[[], None], tag: str) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self.tag = tag

    def cancel(self) -> None:
        self.cancelled = True


class Timekeeper:
    """Runs callbacks at deadlines on one named daemon thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Timer]] = []
        self._counter = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._firing: dict[str, int] = {}

    def call_at(self, when: datetime, callback: Callable[[], None], tag: str) -> Timer:
        """Arm ``callback`` for ``when``; the thread starts on first use."""
        timer = Timer(when, callback, tag)
        with self._wake:
            heapq.heappush(self._heap, (when, next(self._counter), timer))
            self._ensure_thread()
            self._wake.notify()
        return timer

    def armed(self, tag: str) -> int:
        """How many live timers carry ``tag``."""
        with self._wake:
            waiting = sum(
                1 for _, _, t in self._heap if t.tag == tag and not t.cancelled
            )
            return waiting + self._firing.get(tag, 0)

    def poke(self) -> None:
        """Re-check deadlines now (after a test moved a frozen clock)."""
        with self._wake:
            self._wake.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._wake:
            self._stopped = True
            self._heap.clear()
            self._wake.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopped = False
            self._thread = threading.Thread(
                target=self._loop, name="alepha-jobs-timekeeper", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopped:
                    return
                due = self._pop_due()
                if not due:
                    self._wake.wait(self._next_wait())
                    continue
            for timer in due:
                self._fire(timer)

    def _pop_due(self) -> list[Timer]:
        now = clock.now()
        due: list[Timer] = []
        while self._heap and (self._heap[0][0] <= now or self._heap[0][2].cancelled):
            timer = heapq.heappop(self._heap)[2]
            if not timer.cancelled:
                due.append(timer)
                self._firing[timer.tag] = self._firing.get(timer.tag, 0) + 1
        return due

    def _next_wait(self) -> float | None:
        if not self._heap:
            return None
        remaining = (self._heap[0][0] - clock.now()).total_seconds()
        return max(0.001, min(remaining, MAX_WAIT))

    def _fire(self, timer: Timer) -> None:
        try:
            timer.callback()
        except Exception:
            logger.exception("timer callback failed", extra={"event": "timer.failed"})
        finally:
            with self._wake:
                self._firing[timer.tag] -= 1
