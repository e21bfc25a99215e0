"""Fixtures shared by the queue-mode tests: a key prefix per test, runtimes in
queue mode on the test's own SQLite file, and Redis queues that decline delays
or record their batches (both still the real Redis transport)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from alepha_jobs import DelayNotSupported, Jobs, JobsConfig
from alepha_jobs.dispatch.redis_queue import RedisQueue

from .conftest import NEVER
from .redis_service import client, fresh_prefix, queue_url


@pytest.fixture
def prefix() -> Iterator[str]:
    with fresh_prefix() as name:
        yield name


@pytest.fixture
def redis_client() -> Iterator[Any]:
    connection = client()
    yield connection
    connection.close()


MakeQueueJobs = Callable[..., Jobs]


@pytest.fixture
def make_queue_jobs(tmp_path: Path, prefix: str) -> Iterator[MakeQueueJobs]:
    """Build a queue-mode :class:`Jobs` on the test's SQLite file and prefix.

    ``concurrency`` sets the consumer threads (default 2); ``dispatcher`` replaces
    the queue; ``url`` the outbox; other keywords go to :class:`JobsConfig`, with
    the periodic sweep and trim off unless given.
    """
    created: list[Jobs] = []

    def factory(
        *,
        url: str | None = None,
        dispatcher: RedisQueue | None = None,
        concurrency: int = 2,
        **config: Any,
    ) -> Jobs:
        config.setdefault("sweep_cron", NEVER)
        config.setdefault("trim_cron", NEVER)
        settings = JobsConfig(**config)
        database = url or f"sqlite:///{tmp_path}/jobs.db"
        if dispatcher is not None:
            jobs = Jobs(database, config=settings, dispatcher=dispatcher)
        else:
            queue = queue_url(prefix, concurrency=concurrency)
            jobs = Jobs(database, queue=queue, config=settings)
        created.append(jobs)
        return jobs

    yield factory
    for jobs in created:
        jobs.close()


class DecliningRedisQueue(RedisQueue):
    """The Redis transport of SPEC R4: it declines every delayed dispatch."""

    def __init__(self, url: str) -> None:
        super().__init__(url, default_concurrency=2)
        self.declined: list[tuple[str, str, float]] = []

    def dispatch_many(
        self, items: Sequence[tuple[str, str]], delay_seconds: float = 0
    ) -> None:
        if delay_seconds > 0:
            self.declined.extend((n, i, delay_seconds) for n, i in items)
            raise DelayNotSupported("this transport cannot hold delayed messages")
        super().dispatch_many(items)


class CountingRedisQueue(RedisQueue):
    """The real Redis transport, remembering each batch it was handed."""

    def __init__(self, url: str) -> None:
        super().__init__(url, default_concurrency=2)
        self.batches: list[list[tuple[str, str]]] = []

    def dispatch_many(
        self, items: Sequence[tuple[str, str]], delay_seconds: float = 0
    ) -> None:
        self.batches.append(list(items))
        super().dispatch_many(items, delay_seconds)
