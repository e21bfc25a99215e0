"""Cron locking and overlap: SPEC §6.2 and §12.3 (#23-#32).

Each ``Jobs`` object plays one replica (one process). Replicas on one database file
share the default lock store, rows of its ``job_locks`` table; where the SPEC says
"a shared lock store" the same cases also run on one :class:`MemoryLockStore`.
Overlaps are made with handlers that block on events, never with sleeps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from alepha_jobs import Job, JobContext, Jobs, JobsConfig, Retry
from alepha_jobs.cron.runner import KEY_PREFIX
from alepha_jobs.dispatch.base import Dispatcher
from alepha_jobs.errors import LockError
from alepha_jobs.locks import LockStore, MemoryLockStore

from . import outbox
from .conftest import NEVER, RecordingDispatcher, wait_until

NAME = "reports.hourly"
HOURLY = "0 * * * *"
RUN_LOCK = KEY_PREFIX + NAME
FIRST = datetime(2026, 1, 1, tzinfo=timezone.utc)
NEXT = datetime(2026, 1, 2, tzinfo=timezone.utc)
WAIT = 5.0

MakeReplica = Callable[..., Jobs]


@pytest.fixture
def make_replica(db_url: str) -> Iterator[MakeReplica]:
    """A :class:`Jobs` on the test's database; ``locks=None`` is the default store."""
    created: list[Jobs] = []

    def factory(
        locks: LockStore | None = None, dispatcher: Dispatcher | None = None
    ) -> Jobs:
        config = JobsConfig(sweep_cron=NEVER, trim_cron=NEVER)
        jobs = Jobs(db_url, config=config, dispatcher=dispatcher, locks=locks)
        created.append(jobs)
        return jobs

    yield factory
    for jobs in created:
        jobs.close()


@pytest.fixture(params=["database", "memory"])
def shared_locks(request: pytest.FixtureRequest) -> Callable[[], LockStore | None]:
    """What each replica gets: the default database store, or one shared memory
    store."""
    if request.param == "database":
        return lambda: None
    store = MemoryLockStore()
    return lambda: store


class Gate:
    """A handler that counts its runs and blocks until :meth:`open` is called."""

    def __init__(self) -> None:
        self.runs = 0
        self.entered = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, ctx: JobContext[None]) -> None:
        with self._lock:
            self.runs += 1
        self.entered.set()
        assert self.released.wait(WAIT), "the test never opened the gate"

    def open(self) -> None:
        self.released.set()


def register(
    jobs: Jobs, handler: Callable[[JobContext[None]], None], **options: Any
) -> Job:
    return jobs.job(NAME, description="A locked cron.", cron=HOURLY, **options)(handler)


def in_thread(call: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def finished(thread: threading.Thread) -> bool:
    thread.join(WAIT)
    return not thread.is_alive()


def lock_rows(jobs: Jobs) -> list[tuple[str, str]]:
    with outbox.connect(jobs) as raw:
        query = "SELECT key, value FROM job_locks ORDER BY key"
        return [(str(key), str(value)) for key, value in raw.execute(query)]


# #23, #24, #30: two replicas


def test_concurrent_triggers_on_two_replicas_run_the_handler_once(
    make_replica: MakeReplica, shared_locks: Callable[[], LockStore | None]
) -> None:
    """#23: the run lock held by A makes B's trigger return without running."""
    gate = Gate()
    a, b = make_replica(shared_locks()), make_replica(shared_locks())
    register(a, gate)
    register(b, gate)

    running = in_thread(a.registry[NAME].trigger)
    assert gate.entered.wait(WAIT)
    skipped = in_thread(b.registry[NAME].trigger)

    assert finished(skipped)
    gate.open()
    assert finished(running)
    assert gate.runs == 1


def test_concurrent_triggers_with_lock_false_run_on_both_replicas(
    make_replica: MakeReplica, shared_locks: Callable[[], LockStore | None]
) -> None:
    """#24: ``lock=False`` opts out of coordination between replicas."""
    gate = Gate()
    a, b = make_replica(shared_locks()), make_replica(shared_locks())
    register(a, gate, lock=False)
    register(b, gate, lock=False)

    threads = [in_thread(a.registry[NAME].trigger), in_thread(b.registry[NAME].trigger)]

    assert wait_until(lambda: gate.runs == 2, timeout=WAIT)
    gate.open()
    assert all(finished(thread) for thread in threads)
    assert gate.runs == 2


def test_a_trigger_skipped_by_a_running_tick_leaves_the_lock_to_its_owner(
    make_replica: MakeReplica, shared_locks: Callable[[], LockStore | None]
) -> None:
    """#30: A's skipped trigger releases nothing, so B's trigger skips too."""
    gate = Gate()
    a, b = make_replica(shared_locks()), make_replica(shared_locks())
    register(a, gate)
    register(b, gate)

    tick = in_thread(lambda: a.cron.scheduled(NAME, FIRST))
    assert gate.entered.wait(WAIT)
    a.registry[NAME].trigger()
    b.registry[NAME].trigger()

    assert gate.runs == 1
    gate.open()
    assert finished(tick)
    assert gate.runs == 1


# #25, #26: the lock keys themselves


def test_a_manual_trigger_holds_exactly_one_lock_key_the_run_lock(
    make_replica: MakeReplica,
) -> None:
    """#25: no instant key for a trigger; the run lock is gone once it ends."""
    jobs = make_replica()
    held: list[list[tuple[str, str]]] = []
    register(jobs, lambda ctx: held.append(lock_rows(jobs)))

    jobs.registry[NAME].trigger()

    [(key, value)] = held[0]
    assert key == RUN_LOCK
    assert value.split(",")[0] == jobs.cron.holder_id
    assert lock_rows(jobs) == []


def test_a_scheduled_tick_also_claims_its_instant_and_keeps_the_claim(
    make_replica: MakeReplica,
) -> None:
    """§6.2 step 2: the instant key is never released; it expires by TTL."""
    jobs = make_replica()
    held: list[list[str]] = []
    register(jobs, lambda ctx: held.append([key for key, _ in lock_rows(jobs)]))

    jobs.cron.scheduled(NAME, FIRST)

    instant_key = f"{KEY_PREFIX}{NAME}:2026-01-01T00:00:00.000Z"
    assert held == [sorted([RUN_LOCK, instant_key])]
    assert [key for key, _ in lock_rows(jobs)] == [instant_key]


def test_a_run_that_outlives_its_lock_leaves_the_next_holders_lock_alone(
    make_replica: MakeReplica,
) -> None:
    """#26: A's lock expires, B takes it, A's release must not delete B's."""
    store = MemoryLockStore()
    a, b = make_replica(store), make_replica(store)
    gate_a, gate_b = Gate(), Gate()
    register(a, gate_a)
    register(b, gate_b)

    run_a = in_thread(a.registry[NAME].trigger)
    assert gate_a.entered.wait(WAIT)
    store.delete(RUN_LOCK)  # as if its TTL had run out
    run_b = in_thread(b.registry[NAME].trigger)
    assert gate_b.entered.wait(WAIT)
    held_by_b = store.get(RUN_LOCK)

    gate_a.open()
    assert finished(run_a)
    assert held_by_b is not None and held_by_b.startswith(b.cron.holder_id + ",")
    assert store.get(RUN_LOCK) == held_by_b

    gate_b.open()
    assert finished(run_b)
    assert store.get(RUN_LOCK) is None
    assert (gate_a.runs, gate_b.runs) == (1, 1)


# #27: the instant claim across replicas, for cron with retry


def test_one_instant_fired_by_two_replicas_writes_one_outbox_row(
    make_replica: MakeReplica,
) -> None:
    """#27: ``retry=Retry(2)``, always failing; the row is written, not run."""
    a = make_replica(dispatcher=RecordingDispatcher())
    b = make_replica(dispatcher=RecordingDispatcher())
    calls: list[int] = []

    def always_fails(ctx: JobContext[None]) -> None:
        calls.append(1)
        raise RuntimeError("always")

    register(a, always_fails, retry=Retry(2))
    register(b, always_fails, retry=Retry(2))

    a.cron.scheduled(NAME, FIRST)
    b.cron.scheduled(NAME, FIRST)
    assert a.executions(NAME).total_elements == 1

    a.cron.scheduled(NAME, NEXT)
    assert b.executions(NAME).total_elements == 2
    assert calls == []


def test_one_instant_fired_twice_with_lock_false_writes_two_rows(
    make_replica: MakeReplica,
) -> None:
    """§6.2: ``lock=False`` also skips the instant claim."""
    a = make_replica(dispatcher=RecordingDispatcher())
    b = make_replica(dispatcher=RecordingDispatcher())
    for jobs in (a, b):
        register(jobs, lambda ctx: None, retry=Retry(2), lock=False)

    a.cron.scheduled(NAME, FIRST)
    b.cron.scheduled(NAME, FIRST)

    assert a.executions(NAME).total_elements == 2


# #28, #29, #31, #32: one process


@pytest.mark.parametrize("lock", [True, False], ids=["locked", "lock-false"])
def test_a_trigger_during_a_tick_is_skipped_not_queued(
    make_replica: MakeReplica, lock: bool
) -> None:
    """#28, and #32 with ``lock=False``: the in-process guard still applies."""
    jobs = make_replica()
    gate = Gate()
    job = register(jobs, gate, lock=lock)

    tick = in_thread(lambda: jobs.cron.scheduled(NAME, FIRST))
    assert gate.entered.wait(WAIT)
    job.trigger()
    assert gate.runs == 1

    gate.open()
    assert finished(tick)
    assert gate.runs == 1  # the skipped trigger never runs later
    job.trigger()
    assert gate.runs == 2


def test_a_tick_during_a_trigger_is_skipped_and_its_instant_stays_claimed(
    make_replica: MakeReplica,
) -> None:
    """#29: the skipped instant never runs; the next instant does."""
    jobs = make_replica()
    gate = Gate()
    job = register(jobs, gate)

    trigger = in_thread(job.trigger)
    assert gate.entered.wait(WAIT)
    jobs.cron.scheduled(NAME, FIRST)
    assert gate.runs == 1

    gate.open()
    assert finished(trigger)
    jobs.cron.scheduled(NAME, FIRST)
    assert gate.runs == 1
    jobs.cron.scheduled(NAME, NEXT)
    assert gate.runs == 2


class SlowRelease(MemoryLockStore):
    """Holds every owner delete until the test lets it through."""

    def __init__(self) -> None:
        super().__init__()
        self.releasing = threading.Event()
        self.proceed = threading.Event()

    def _delete_if_owner(self, key: str, owner_id: str) -> bool:
        self.releasing.set()
        assert self.proceed.wait(WAIT)
        return super()._delete_if_owner(key, owner_id)


def test_no_new_run_starts_while_the_last_release_is_in_progress(
    make_replica: MakeReplica,
) -> None:
    """#31: the guard is left only after the release (§6.2 step 7)."""
    store = SlowRelease()
    jobs = make_replica(store)
    runs: list[int] = []
    job = register(jobs, lambda ctx: runs.append(1))

    first = in_thread(job.trigger)
    assert store.releasing.wait(WAIT)
    job.trigger()
    assert runs == [1]

    store.proceed.set()
    assert finished(first)
    assert store.get(RUN_LOCK) is None
    job.trigger()
    assert runs == [1, 1]


# fail open


class BrokenLocks(MemoryLockStore):
    """Every write fails as a backend outage would."""

    def _set(self, key: str, value: str, nx: bool, ttl: timedelta | None) -> str:
        raise LockError("lock backend unreachable")

    def _delete_if_owner(self, key: str, owner_id: str) -> bool:
        raise LockError("lock backend unreachable")


@pytest.mark.parametrize("scheduled", [True, False], ids=["tick", "trigger"])
def test_lock_store_errors_fail_open_with_a_warning(
    make_replica: MakeReplica, caplog: pytest.LogCaptureFixture, scheduled: bool
) -> None:
    """§6.2 steps 2 and 4: a duplicate run beats a missed one."""
    jobs = make_replica(BrokenLocks())
    runs: list[int] = []
    job = register(jobs, lambda ctx: runs.append(1))

    with caplog.at_level(logging.WARNING, logger="alepha_jobs"):
        if scheduled:
            jobs.cron.scheduled(NAME, FIRST)
        else:
            job.trigger()

    assert runs == [1]
    assert [row.status for row in jobs.executions(NAME).content] == ["ok"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("fail open" in record.getMessage() for record in warnings)
