"""One "replica" for tests/test_cron_processes.py: a process with an every-second
cron job, and optionally a queue job it pushes to, on a shared outbox.

    python -m tests.cron_worker URL SECONDS [PUSHES EXPECTED]

run from the repository root. It starts a :class:`Jobs` runtime on ``URL`` (a
SQLite file or a Postgres schema), lets it tick for ``SECONDS`` and stops. With
``PUSHES``, it pushes that many queue jobs right after starting, and keeps running
past ``SECONDS`` until ``EXPECTED`` runs are recorded by all replicas together (or
:data:`OVERTIME` seconds have passed).

Every record goes to side tables of the same outbox (see :func:`create_side_tables`)
through :mod:`tests.outbox`, so the SQL is written once for both stores:
``cron_runs`` gets ``(pid, ctx.now)`` per cron run, ``job_runs`` gets
``(execution_id, pid)`` per queue run, ``job_pushes`` every id this process pushed,
and ``cron_workers`` when each runtime was started and began to stop (Unix seconds).

With ``CRON_WORKER_TIMEOUT`` set (seconds), the cron job declares that timeout and
each run holds on for a third of a second after recording itself, so a kill can
land in the middle of one.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from pydantic import BaseModel

from alepha_jobs import JobContext, Jobs, clock

from .outbox import connect

CRON_JOB = "tests.every-second"
QUEUE_JOB = "tests.pushed"
BATCH = 250
OVERTIME = 60.0  # seconds past SECONDS a pushing worker waits for every run
SIDE_TABLES = (
    "CREATE TABLE cron_runs (pid INTEGER NOT NULL, instant TEXT NOT NULL)",
    # DOUBLE PRECISION: Postgres's REAL has 24 bits, too few for Unix seconds
    "CREATE TABLE cron_workers (pid INTEGER PRIMARY KEY,"
    " started DOUBLE PRECISION, stopped DOUBLE PRECISION)",
    # no unique constraint: a second run of one execution is counted, not refused
    "CREATE TABLE job_runs (execution_id TEXT NOT NULL, pid INTEGER NOT NULL)",
    "CREATE TABLE job_pushes (execution_id TEXT PRIMARY KEY, pid INTEGER NOT NULL)",
)


class Pushed(BaseModel):
    n: int


def create_side_tables(url: str) -> None:
    """Create the outbox (migrating it) and the side tables, before any worker."""
    jobs = Jobs(url)
    try:
        with connect(jobs) as raw:
            for ddl in SIDE_TABLES:
                raw.execute(ddl)
    finally:
        jobs.close()


def execute(jobs: Jobs, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with connect(jobs) as raw:
        return raw.execute(sql, params)


def register(jobs: Jobs, pid: int) -> Any:
    """The cron job and the queue job; return the queue job's handle."""

    timeout = os.environ.get("CRON_WORKER_TIMEOUT")

    @jobs.job(CRON_JOB, cron="* * * * * *", timeout=float(timeout) if timeout else None)
    def every_second(ctx: JobContext[None]) -> None:
        """Record which process ran which instant."""
        instant = clock.to_text(ctx.now)
        execute(jobs, "INSERT INTO cron_runs VALUES (?, ?)", pid, instant)
        if timeout:
            ctx.signal.wait(0.3)

    @jobs.job(QUEUE_JOB, schema=Pushed)
    def pushed(ctx: JobContext[Pushed]) -> None:
        """Record which process ran which execution."""
        execute(jobs, "INSERT INTO job_runs VALUES (?, ?)", ctx.execution_id, pid)

    return pushed


def push(jobs: Jobs, job: Any, count: int, pid: int) -> None:
    if not count:
        return
    ids: list[str] = []
    for first in range(0, count, BATCH):  # a backlog other replicas may pick up
        size = min(BATCH, count - first)
        ids += job.push_many([{"n": n} for n in range(first, first + size)])
    with connect(jobs) as raw:
        raw.executemany("INSERT INTO job_pushes VALUES (?, ?)", [(i, pid) for i in ids])


def wait(jobs: Jobs, seconds: float, expected: int, started: float) -> None:
    """Wait ``seconds``, then until ``expected`` queue runs are recorded."""
    pause = threading.Event()
    pause.wait(max(0.0, started + seconds - time.time()))
    deadline = time.monotonic() + OVERTIME
    while expected and time.monotonic() < deadline:
        (done,) = execute(jobs, "SELECT count(*) FROM job_runs")[0]
        if done >= expected:
            return
        pause.wait(0.2)


def main(url: str, seconds: float, pushes: int = 0, expected: int = 0) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(message)s")
    pid = os.getpid()
    jobs = Jobs(url)
    job = register(jobs, pid)

    jobs.start()
    started = time.time()
    execute(jobs, "INSERT INTO cron_workers VALUES (?, ?, NULL)", pid, started)
    push(jobs, job, pushes, pid)
    wait(jobs, seconds, expected, started)
    stopping = time.time()
    execute(jobs, "UPDATE cron_workers SET stopped = ? WHERE pid = ?", stopping, pid)
    jobs.close()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), *(int(arg) for arg in sys.argv[3:5]))
