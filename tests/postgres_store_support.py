"""Fixtures and helpers shared by the Postgres outbox tests,
test_postgres_store.py and test_postgres_connection.py: a schema of the test's
own, the store and a runtime on it, rows in each status, backends to terminate.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import (
    JobContext,
    Jobs,
    JobsConfig,
    clock,
)
from alepha_jobs.store.base import NewExecution
from alepha_jobs.store.postgres import PostgresStore

from .conftest import NEVER
from .postgres_service import admin_connection, fresh_schema, url_for

JOB = "pg.work"
PROCESSES = 6
ROWS_PER_PROCESS = 20


class Work(BaseModel):
    n: int


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        yield name


@pytest.fixture
def url(schema: str) -> str:
    """The outbox URL; its connections carry the schema as application_name."""
    return url_for(schema, application_name=schema)


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(url)
    yield opened
    opened.close()


@pytest.fixture
def admin(schema: str) -> Iterator[Any]:
    """A connection of the test's own, outside the library, on the test schema."""
    connection = admin_connection()
    connection.execute(f'SET search_path TO "{schema}"')
    yield connection
    connection.close()


MakeJobs = Callable[..., Jobs]


@pytest.fixture
def make_pg_jobs(url: str) -> Iterator[MakeJobs]:
    created: list[Jobs] = []

    def factory(**config: Any) -> Jobs:
        config.setdefault("sweep_cron", NEVER)
        config.setdefault("trim_cron", NEVER)
        jobs = Jobs(url, config=JobsConfig(**config))
        created.append(jobs)
        return jobs

    yield factory
    for jobs in created:
        jobs.close()


def new_row(**fields: Any) -> NewExecution:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "job_name": JOB,
        "payload": {"n": 1},
        "max_attempts": 3,
    }
    values.update(fields)
    return NewExecution(**values)


def pending(store: PostgresStore, **fields: Any) -> str:
    row = new_row(**fields)
    store.insert([row])
    return row.id


def scheduled(store: PostgresStore, at: datetime, **fields: Any) -> str:
    return pending(store, scheduled_at=at, **fields)


def running(store: PostgresStore, **fields: Any) -> str:
    execution_id = pending(store, **fields)
    assert store.claim(execution_id, clock.now()) is not None
    return execution_id


def status(store: PostgresStore, execution_id: str) -> str | None:
    row = store.get(execution_id)
    return None if row is None else row.status


def terminate(application_name: str) -> int:
    """Terminate every backend of the library's pool and wait until they are gone."""
    connection = admin_connection()
    try:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND application_name = %s",
            (application_name,),
        ).fetchone()
    finally:
        connection.close()
    return int(row[0])


def register(jobs: Jobs, calls: list[int], **options: Any) -> Any:
    lock = threading.Lock()

    @jobs.job(JOB, schema=Work, **options)
    def work(ctx: JobContext[Work]) -> None:
        """Record the payload."""
        with lock:
            calls.append(ctx.payload.n)

    return work
