"""Shared fixtures: a real SQLite file per test, runtimes that clean up after
themselves, and a dispatcher that records instead of delivering."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import freezegun
import pytest

from alepha_jobs import Jobs, JobsConfig
from alepha_jobs.dispatch.base import Dispatcher
from alepha_jobs.errors import DelayNotSupported

from .postgres_service import fresh_schema, url_for

# pytest's own timing must keep reading the real clock under frozen time.
freezegun.configure(extend_ignore_list=["_pytest.timing", "_pytest.runner"])

# queue-mode fixtures (a Redis key prefix per test, queue-mode runtimes)
pytest_plugins = ["tests.queue_support"]

NEVER = "0 0 1 1 *"  # a sweep/trim schedule that does not fire during a test


STORES = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: a behaviour of the SQLite file itself"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses the outbox once per store (the contract suite)."""
    if "store_kind" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("store_kind", ["sqlite"] if only else STORES)


@pytest.fixture
def db_url(store_kind: str, tmp_path: Any) -> Iterator[str]:
    """The test's own outbox: a SQLite file, or a fresh Postgres schema."""
    if store_kind == "sqlite":
        yield f"sqlite:///{tmp_path}/jobs.db"
        return
    with fresh_schema() as schema:
        yield url_for(schema)


MakeJobs = Callable[..., Jobs]


@pytest.fixture
def make_jobs(db_url: str) -> Iterator[MakeJobs]:
    """Build a :class:`Jobs` on the test's database; every one is closed at the end.

    Keyword arguments go to :class:`JobsConfig`; the periodic sweep and trim are
    off unless a test sets ``sweep_cron``/``trim_cron``.
    """
    created: list[Jobs] = []

    def factory(
        url: str | None = None, dispatcher: Dispatcher | None = None, **config: Any
    ) -> Jobs:
        config.setdefault("sweep_cron", NEVER)
        config.setdefault("trim_cron", NEVER)
        jobs = Jobs(url or db_url, config=JobsConfig(**config), dispatcher=dispatcher)
        created.append(jobs)
        return jobs

    yield factory
    for jobs in created:
        jobs.close()


class RecordingDispatcher(Dispatcher):
    """Accepts dispatches and records them; delivers nothing unless told to."""

    kind = "direct"

    def __init__(self, *, decline_delays: bool = False) -> None:
        self.decline_delays = decline_delays
        self.dispatched: list[tuple[str, str, float]] = []
        self.batches: list[list[tuple[str, str]]] = []
        self.declined: list[tuple[str, str, float]] = []

    def dispatch(
        self, job_name: str, execution_id: str, delay_seconds: float = 0
    ) -> None:
        if delay_seconds > 0 and self.decline_delays:
            self.declined.append((job_name, execution_id, delay_seconds))
            raise DelayNotSupported("this transport cannot hold delayed messages")
        self.dispatched.append((job_name, execution_id, delay_seconds))

    def dispatch_many(
        self, items: Sequence[tuple[str, str]], delay_seconds: float = 0
    ) -> None:
        self.batches.append(list(items))
        super().dispatch_many(items, delay_seconds)

    def deliver_all(self) -> None:
        """Run every recorded immediate dispatch through the real execution path."""
        pending, self.dispatched = self.dispatched, []
        for job_name, execution_id, delay in pending:
            if delay <= 0:
                self._process(job_name, execution_id)


@pytest.fixture
def recording() -> RecordingDispatcher:
    return RecordingDispatcher()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` on an Event wait (never ``time.sleep``)."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        pause.wait(0.01)
    return predicate()


def record_batch_claims(monkeypatch: pytest.MonkeyPatch, jobs: Jobs) -> list[list[str]]:
    """Record the ids of every batch claim ``jobs`` makes, as it makes them."""
    claims: list[list[str]] = []
    claim_batch = jobs.store.claim_batch

    def recorded(ids: Any, now: Any) -> Any:
        claims.append(list(ids))
        return claim_batch(ids, now)

    monkeypatch.setattr(jobs.store, "claim_batch", recorded)
    return claims


def race(action: Callable[[], Any], count: int = 2) -> list[BaseException]:
    """Run ``action`` on ``count`` threads released together by a barrier; return
    what they raised (an empty list when every call returned)."""
    barrier = threading.Barrier(count)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(10)
            action()
        except BaseException as error:  # surfaced by the caller's assertion
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return failures
