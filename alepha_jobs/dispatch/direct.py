"""Direct mode (SPEC §4.3): an in-process FIFO feeding a bounded pool of threads."""

from __future__ import annotations

import collections
import contextvars
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Literal

from .base import Dispatcher

logger = logging.getLogger(__name__)

RECENT = 512
#: Rows a worker claims at most in one write, by default.
BATCH_SIZE = 16
ProcessMany = Callable[[str, list[str]], None]


class DirectDispatcher(Dispatcher):
    """Runs executions on at most ``max_concurrency`` named worker threads.

    Workers start on demand while ``active < min(limit, queued)`` and then stay
    until :meth:`stop`. The FIFO lives in memory: what is still queued when the
    process dies stays ``pending`` in the outbox for the sweep or another
    process's pickup.

    ``batch_size`` (default :data:`BATCH_SIZE`; 1 turns batches off) lets a
    worker facing a backlog of a job whose handler took under 2 ms lately
    claim up to that many rows in one write and record their successes in one
    more. A lone job never waits for a batch. The price: a process killed
    mid-batch runs again the handlers whose success was not yet written (at
    most ``batch_size`` per worker). Claimed rows not yet started go back to
    ``pending`` with their attempt on :meth:`stop`, and after a kill the sweep
    gives them back once without using an attempt.
    """

    kind: Literal["direct", "queue"] = "direct"

    def __init__(self, max_concurrency: int, batch_size: int = BATCH_SIZE) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.batch_size = max(1, batch_size)
        self._fifo: collections.deque[tuple[str, str]] = collections.deque()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._cond = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._busy = 0
        self._running = False
        #: Called (without the lock) each time a worker finishes a run.
        self.on_slot_free: Callable[[], None] | None = None
        self._recent: dict[str, None] = {}  # the last RECENT ids finished here
        self._process_many: ProcessMany | None = None
        self._batchable: Callable[[str], bool] = lambda job_name: False

    def bind_batches(
        self, process_many: ProcessMany, batchable: Callable[[str], bool]
    ) -> None:
        """Let a worker facing a backlog take up to ``batch_size`` executions of
        one job at once, when ``batchable(job_name)``, and hand them to
        ``process_many``."""
        self._process_many = process_many
        self._batchable = batchable

    @property
    def backlog(self) -> int:
        with self._cond:
            return len(self._fifo) + self._busy

    def held(self) -> set[str]:
        """Ids queued here, being processed by a worker of this pool, or among
        the last ones it finished: a select that ran meanwhile may still have
        seen those ``pending``."""
        with self._cond:
            return self._queued | self._active | self._recent.keys()

    @property
    def free_slots(self) -> int:
        """Workers that would start an execution now if one arrived."""
        with self._cond:
            return max(0, self.max_concurrency - self._busy - len(self._fifo))

    def start(self, consume: bool) -> None:
        with self._cond:
            self._running = consume

    def stop(self, timeout: float) -> None:
        with self._cond:
            self._running = False
            dropped = len(self._fifo)
            self._fifo.clear()
            self._queued.clear()
            workers, self._workers = self._workers, []
            self._cond.notify_all()
        if dropped:
            logger.info(
                "%d queued executions left pending for the sweep",
                dropped,
                extra={"event": "dispatch.dropped", "count": dropped},
            )
        for worker in workers:
            worker.join(timeout)

    def dispatch(
        self, job_name: str, execution_id: str, delay_seconds: float = 0
    ) -> None:
        if delay_seconds > 0:
            self._promote_later(job_name, execution_id, delay_seconds)
            return
        self.dispatch_many([(job_name, execution_id)])

    def dispatch_many(
        self, items: Sequence[tuple[str, str]], delay_seconds: float = 0
    ) -> None:
        if delay_seconds > 0:
            for job_name, execution_id in items:
                self._promote_later(job_name, execution_id, delay_seconds)
            return
        with self._cond:
            self._enqueue(items)

    def requeue(self, items: Sequence[tuple[str, str]]) -> None:
        """Put back at the head of the FIFO, in order, items a batch took but
        did not start: they were next in line, and stay so."""
        with self._cond:
            if not self._running:
                return
            for item in reversed(items):
                if item[1] not in self._queued:
                    self._queued.add(item[1])
                    self._fifo.appendleft(item)
            self._top_up()
            self._cond.notify(len(items))

    def _enqueue(self, items: Sequence[tuple[str, str]]) -> None:
        if not self._running:
            return  # not consuming here: the row waits for a started runtime
        for item in items:
            if item[1] not in self._queued:
                self._queued.add(item[1])
                self._fifo.append(item)
        self._top_up()
        self._cond.notify(len(items))

    def _top_up(self) -> None:
        wanted = min(self.max_concurrency, self._busy + len(self._fifo))
        while len(self._workers) < wanted and self._idle < len(self._fifo):
            worker = threading.Thread(
                target=self._work,
                name=f"alepha-jobs-direct-{len(self._workers) + 1}",
                daemon=True,
            )
            self._workers.append(worker)
            self._idle += 1
            worker.start()

    def _work(self) -> None:
        while True:
            batch = self._next()
            if not batch:
                return
            item = batch[0]
            try:
                if len(batch) == 1 or self._process_many is None:
                    contextvars.copy_context().run(self._process, *item)
                else:
                    ids = [execution_id for _, execution_id in batch]
                    contextvars.copy_context().run(self._process_many, item[0], ids)
            except Exception:
                logger.warning(
                    "processing %s of %s (and %d more) failed; the sweep will retry it",
                    item[1],
                    item[0],
                    len(batch) - 1,
                    exc_info=True,
                    extra={"event": "dispatch.failed", "job": item[0]},
                )
            finally:
                with self._cond:
                    self._active.difference_update(i for _, i in batch)
                    self._remember(batch)
                    self._busy -= 1
                    self._idle += 1
                    self._cond.notify_all()
                if self.on_slot_free is not None:
                    self.on_slot_free()

    def _remember(self, batch: list[tuple[str, str]]) -> None:
        for _, execution_id in batch:
            self._recent[execution_id] = None
        while len(self._recent) > RECENT:
            del self._recent[next(iter(self._recent))]

    def _next(self) -> list[tuple[str, str]]:
        """The next execution, or with a backlog of a batchable job, up to
        ``batch_size`` of them (a fair share: others keep theirs)."""
        with self._cond:
            while self._running and not self._fifo:
                self._cond.wait()
            if not self._running:
                self._idle -= 1
                return []
            item = self._fifo.popleft()
            self._queued.discard(item[1])
            self._active.add(item[1])
            self._idle -= 1
            self._busy += 1
            batch = [item]
            share = len(self._fifo) // self.max_concurrency
            if self.batch_size > 1 and share >= 2 and self._batchable(item[0]):
                size = min(self.batch_size, share)
                while len(batch) < size and self._fifo and self._fifo[0][0] == item[0]:
                    batch.append(self._fifo.popleft())
                    self._queued.discard(batch[-1][1])
            self._active.update(i for _, i in batch)
            return batch
