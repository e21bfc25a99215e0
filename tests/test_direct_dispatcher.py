"""The direct dispatcher: SPEC §4.3 and §12.13 (#124-#126).

Unit tests bind :class:`DirectDispatcher` to a recording process function (no
database); one integration test pushes through a started :class:`Jobs`. Handlers
block on an Event the test releases, so concurrency is measured without sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs.dispatch.direct import DirectDispatcher
from tests.conftest import MakeJobs, wait_until

JOB = "tasks.run"
TIMEOUT = 10.0


class Recorder:
    """A process function that counts what runs at once, and a promote function."""

    def __init__(self, block: bool = False) -> None:
        self.changed = threading.Condition()
        self.release = threading.Event()
        self.block = block
        self.active = 0
        self.peak = 0
        self.started: list[str] = []
        self.finished: list[str] = []
        self.failing: set[str] = set()
        self.hooks: dict[str, Callable[[], None]] = {}
        self.promoted: list[tuple[str, str, float]] = []

    def process(self, job_name: str, execution_id: str) -> None:
        with self.changed:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.append(execution_id)
            self.changed.notify_all()
        try:
            if self.block:
                self.release.wait(TIMEOUT)
            if execution_id in self.hooks:
                self.hooks[execution_id]()
            if execution_id in self.failing:
                raise RuntimeError(f"{execution_id} failed")
        finally:
            with self.changed:
                self.active -= 1
                self.finished.append(execution_id)
                self.changed.notify_all()

    def promote(self, job_name: str, execution_id: str, delay_seconds: float) -> None:
        self.promoted.append((job_name, execution_id, delay_seconds))

    def wait_for(self, predicate: Callable[[Recorder], bool]) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), TIMEOUT)


Factory = Callable[..., tuple[DirectDispatcher, Recorder]]


@pytest.fixture
def make_dispatcher() -> Iterator[Factory]:
    """A started dispatcher bound to a fresh :class:`Recorder`; stopped at the end."""
    made: list[tuple[DirectDispatcher, Recorder]] = []

    def factory(
        limit: int, *, block: bool = False, consume: bool | None = True
    ) -> tuple[DirectDispatcher, Recorder]:
        recorder = Recorder(block)
        dispatcher = DirectDispatcher(limit)
        dispatcher.bind(recorder.process, recorder.promote)
        if consume is not None:
            dispatcher.start(consume)
        made.append((dispatcher, recorder))
        return dispatcher, recorder

    yield factory
    for dispatcher, recorder in made:
        recorder.release.set()
        dispatcher.stop(5.0)


def direct_threads() -> set[threading.Thread]:
    return {
        thread
        for thread in threading.enumerate()
        if thread.name.startswith("alepha-jobs-direct")
    }


def ids(count: int) -> list[str]:
    return [f"x{n:02d}" for n in range(count)]


# concurrency (#124, #125)


def test_burst_runs_everything_at_most_the_cap_at_once(
    make_dispatcher: Factory,
) -> None:
    """#124"""
    dispatcher, recorder = make_dispatcher(3, block=True)

    for execution_id in ids(25):
        dispatcher.dispatch(JOB, execution_id)
    assert recorder.wait_for(lambda r: r.active == 3)
    assert (dispatcher.backlog, dispatcher.free_slots) == (25, 0)
    recorder.release.set()

    assert recorder.wait_for(lambda r: len(r.finished) == 25)
    assert sorted(recorder.started) == ids(25)
    assert 1 < recorder.peak <= 3


def test_dispatch_arriving_while_the_pool_drains_is_processed(
    make_dispatcher: Factory,
) -> None:
    """#125: the last running item dispatches one more as it finishes."""
    dispatcher, recorder = make_dispatcher(2)
    recorder.hooks["x01"] = lambda: dispatcher.dispatch(JOB, "late")

    dispatcher.dispatch(JOB, "x00")
    dispatcher.dispatch(JOB, "x01")

    assert recorder.wait_for(lambda r: "late" in r.finished)
    assert sorted(recorder.finished) == ["late", "x00", "x01"]


def test_dispatch_after_the_pool_went_idle_is_processed(
    make_dispatcher: Factory,
) -> None:
    """#125"""
    dispatcher, recorder = make_dispatcher(2)
    dispatcher.dispatch(JOB, "x00")
    assert recorder.wait_for(lambda r: r.finished == ["x00"])
    assert wait_until(lambda: dispatcher.backlog == 0)

    dispatcher.dispatch(JOB, "x01")

    assert recorder.wait_for(lambda r: r.finished == ["x00", "x01"])


def test_one_worker_runs_items_in_dispatch_order(make_dispatcher: Factory) -> None:
    dispatcher, recorder = make_dispatcher(1)

    dispatcher.dispatch_many([(JOB, execution_id) for execution_id in ids(6)])

    assert recorder.wait_for(lambda r: len(r.finished) == 6)
    assert recorder.started == ids(6)
    assert recorder.peak == 1


# failures (#126)


def test_a_failing_execution_does_not_stop_the_others(
    make_dispatcher: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """#126: with one worker, the same worker goes on after the failure."""
    caplog.set_level(logging.WARNING, logger="alepha_jobs.dispatch.direct")
    dispatcher, recorder = make_dispatcher(1)
    recorder.failing.add("x01")

    for execution_id in ids(5):
        dispatcher.dispatch(JOB, execution_id)

    assert recorder.wait_for(lambda r: len(r.finished) == 5)
    assert recorder.started == ids(5)
    warnings = [r.getMessage() for r in caplog.records]
    assert any("x01" in message and "sweep" in message for message in warnings)


# delays, stop and consume


def test_delayed_dispatch_is_handed_to_the_promote_function(
    make_dispatcher: Factory,
) -> None:
    """§4.3: a delay arms the local promotion timer instead of queueing."""
    dispatcher, recorder = make_dispatcher(1)

    dispatcher.dispatch(JOB, "later", delay_seconds=2.5)
    dispatcher.dispatch_many([(JOB, "a"), (JOB, "b")], delay_seconds=60)
    dispatcher.dispatch(JOB, "now")

    assert recorder.wait_for(lambda r: r.finished == ["now"])
    assert recorder.promoted == [(JOB, "later", 2.5), (JOB, "a", 60), (JOB, "b", 60)]
    assert recorder.started == ["now"]


def test_stop_drops_queued_items_and_refuses_new_ones(
    make_dispatcher: Factory,
) -> None:
    """§5.8: the in-memory queue is not drained; its rows stay for the sweep."""
    before = direct_threads()
    dispatcher, recorder = make_dispatcher(1, block=True)
    dispatcher.dispatch(JOB, "first")
    assert recorder.wait_for(lambda r: r.active == 1)
    for execution_id in ("b", "c", "d"):
        dispatcher.dispatch(JOB, execution_id)
    assert dispatcher.backlog == 4

    dispatcher.stop(0)
    dispatcher.dispatch(JOB, "late")
    assert dispatcher.backlog == 1
    recorder.release.set()
    for thread in direct_threads() - before:
        thread.join(TIMEOUT)

    assert recorder.started == ["first"]
    assert dispatcher.backlog == 0


@pytest.mark.parametrize("consume", [False, None], ids=["consume-false", "not-started"])
def test_dispatcher_not_consuming_runs_nothing(
    make_dispatcher: Factory, consume: bool | None
) -> None:
    """DESIGN §8.10: ``start(consume=False)`` only writes rows; no thread starts."""
    before = direct_threads()
    dispatcher, recorder = make_dispatcher(2, consume=consume)

    dispatcher.dispatch(JOB, "ignored")

    assert dispatcher.backlog == 0
    assert direct_threads() - before == set()
    dispatcher.start(True)
    dispatcher.dispatch(JOB, "run")
    assert recorder.wait_for(lambda r: r.finished == ["run"])
    assert recorder.started == ["run"]


def test_free_slots_and_backlog_track_the_pool(make_dispatcher: Factory) -> None:
    dispatcher, recorder = make_dispatcher(3, block=True)
    assert (dispatcher.free_slots, dispatcher.backlog) == (3, 0)

    dispatcher.dispatch_many([(JOB, "a"), (JOB, "b")])
    assert recorder.wait_for(lambda r: r.active == 2)
    assert (dispatcher.free_slots, dispatcher.backlog) == (1, 2)

    dispatcher.dispatch_many([(JOB, "c"), (JOB, "d"), (JOB, "e")])
    assert recorder.wait_for(lambda r: r.active == 3)
    assert (dispatcher.free_slots, dispatcher.backlog) == (0, 5)

    recorder.release.set()
    assert wait_until(lambda: dispatcher.backlog == 0)
    assert dispatcher.free_slots == 3


def test_an_id_already_queued_is_queued_once(make_dispatcher: Factory) -> None:
    """The pickup may hand over an id still in the queue; it must run once."""
    dispatcher, recorder = make_dispatcher(1, block=True)
    dispatcher.dispatch(JOB, "first")
    assert recorder.wait_for(lambda r: r.active == 1)

    dispatcher.dispatch(JOB, "x")
    dispatcher.dispatch_many([(JOB, "x"), (JOB, "z")])
    assert dispatcher.backlog == 3
    recorder.release.set()

    assert recorder.wait_for(lambda r: "z" in r.finished)
    assert recorder.started == ["first", "x", "z"]


# through a started runtime


class Task(BaseModel):
    n: int


def test_pushes_through_a_started_runtime_respect_the_cap(
    make_jobs: MakeJobs,
) -> None:
    """#124 end to end: 25 pushes, three workers."""
    recorder = Recorder(block=True)
    jobs = make_jobs(direct_max_concurrency=3)

    @jobs.job(JOB, schema=Task)
    def run(ctx: Any) -> None:
        """Run one task."""
        recorder.process(JOB, str(ctx.payload.n))

    jobs.start()
    for n in range(25):
        run.push({"n": n})
    assert recorder.wait_for(lambda r: r.active == 3)
    recorder.release.set()

    assert recorder.wait_for(lambda r: len(r.finished) == 25)
    assert jobs.drain(timeout=TIMEOUT)
    assert sorted(recorder.started, key=int) == [str(n) for n in range(25)]
    assert 1 < recorder.peak <= 3
    assert jobs.executions(JOB).total_elements == 0
