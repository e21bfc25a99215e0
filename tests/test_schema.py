"""Versioned schema creation and migration (DESIGN §5, §9 sqlite-utils), safe when
several processes start at once; keyed pushes under concurrency (SPEC §2.1.1 step 7,
Appendix B.4)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from pydantic import BaseModel

from alepha_jobs import JobContext, Jobs, JobsConfig, SchemaVersionError

from .conftest import NEVER, MakeJobs
from .spawning import run_at_once

PROCESSES = 6
ROWS_PER_PROCESS = 50

# The Postgres schema has its own tests in test_postgres_connection.py.
pytestmark = pytest.mark.sqlite_only


class Work(BaseModel):
    n: int


def register(jobs: Jobs) -> None:
    @jobs.job("schema.work", schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Do nothing."""


def open_and_push(url: str, barrier: Barrier, worker: int) -> None:
    """One process: wait for the others, open the fresh database, push rows."""
    barrier.wait(60)
    jobs = Jobs(url, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))
    try:
        register(jobs)
        for n in range(ROWS_PER_PROCESS):
            jobs.push("schema.work", {"n": worker * 1000 + n})
    finally:
        jobs.close()


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def unique_indexes(connection: sqlite3.Connection) -> list[list[str]]:
    """The column lists of the unique indexes of ``job_executions``."""
    indexes = connection.execute("PRAGMA index_list(job_executions)").fetchall()
    return [
        [row[2] for row in connection.execute(f"PRAGMA index_info({index[1]})")]
        for index in indexes
        if index[2]
    ]


def test_processes_creating_one_fresh_database_at_once_all_succeed(
    db_url: str,
) -> None:
    """DESIGN §5: the first process migrates, the others wait and find the schema
    current; every push lands."""
    exit_codes = run_at_once(open_and_push, db_url, PROCESSES)

    assert exit_codes == [0] * PROCESSES
    with sqlite3.connect(sqlite_path(db_url)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        count = connection.execute("SELECT count(*) FROM job_executions").fetchone()
        assert count == (PROCESSES * ROWS_PER_PROCESS,)
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        assert "job_locks" in tables
        assert ["job_name", "key"] in unique_indexes(connection)
    connection.close()


def test_reopening_an_existing_database_does_not_migrate_again(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    """DESIGN §5: a current ``user_version`` means nothing to apply."""
    logger = "alepha_jobs.store.sqlite_schema"

    with caplog.at_level(logging.INFO, logger=logger):
        make_jobs().close()
    first = [r for r in caplog.records if "migrated" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=logger):
        make_jobs().close()
    second = [r for r in caplog.records if "migrated" in r.getMessage()]

    assert len(first) == 2  # versions 1 and 2
    assert second == []


def test_a_database_from_a_newer_version_is_refused(db_url: str) -> None:
    """DESIGN §5: an unknown, newer schema is never touched."""
    path = sqlite_path(db_url)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    connection.close()

    with pytest.raises(SchemaVersionError, match="99"):
        Jobs(db_url, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))

    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (99,)
    connection.close()


def test_concurrent_keyed_pushes_of_the_same_keys_write_one_row_per_key(
    make_jobs: MakeJobs,
) -> None:
    """SPEC §2.1.1 step 7, B.4: 8 threads push 20 keys each; the unique index and
    the re-read of the winner leave exactly 20 rows, one id per key."""
    jobs = make_jobs()
    register(jobs)
    keys = [f"key-{n}" for n in range(20)]
    barrier = threading.Barrier(8, timeout=10)
    results: list[dict[str, str]] = []
    errors: list[BaseException] = []

    def pusher(offset: int) -> None:
        try:
            barrier.wait()
            order = keys[offset:] + keys[:offset]
            ids = {k: jobs.push("schema.work", {"n": 0}, key=k) for k in order}
            results.append(ids)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(results) == 8
    assert all(ids == results[0] for ids in results)
    page = jobs.executions("schema.work", size=100)
    assert page.total_elements == 20
    assert sorted(row.key or "" for row in page.content) == sorted(keys)
