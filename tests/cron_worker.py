"""One "replica" for tests/test_cron_processes.py: a process with an every-second
cron job on a shared SQLite file.

    python tests/cron_worker.py DB SECONDS [TIMEOUT]

It starts a :class:`Jobs` runtime on ``DB``, lets it tick for ``SECONDS`` and stops.
With ``TIMEOUT`` the job declares that timeout and each run then holds on for a
third of a second after recording itself, so a kill can land in the middle of one.
The handler records ``(pid, ctx.now)`` in the side table ``cron_runs`` of the same
file through its own sqlite3 connection; the worker records when its runtime was
started and when it began to stop in ``cron_workers`` (Unix seconds).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time

from alepha_jobs import JobContext, Jobs, clock

SIDE_TABLES = """
    CREATE TABLE IF NOT EXISTS cron_runs (pid INTEGER NOT NULL, instant TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS cron_workers (
        pid INTEGER PRIMARY KEY, started REAL, stopped REAL
    );
"""


def connect(db: str) -> sqlite3.Connection:
    return sqlite3.connect(db, timeout=60, isolation_level=None)


def create_side_tables(db: str) -> None:
    connection = connect(db)
    try:
        connection.executescript(SIDE_TABLES)
    finally:
        connection.close()


def execute(db: str, sql: str, *params: object) -> None:
    connection = connect(db)
    try:
        connection.execute(sql, params)
    finally:
        connection.close()


def main(db: str, seconds: float, timeout: float | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(message)s")
    create_side_tables(db)
    pid = os.getpid()
    jobs = Jobs(f"sqlite:///{db}")

    @jobs.job("tests.every-second", cron="* * * * * *", timeout=timeout)
    def every_second(ctx: JobContext[None]) -> None:
        """Record which process ran which instant."""
        execute(db, "INSERT INTO cron_runs VALUES (?, ?)", pid, clock.to_text(ctx.now))
        if timeout is not None:
            ctx.signal.wait(0.3)

    jobs.start()
    execute(db, "INSERT INTO cron_workers VALUES (?, ?, NULL)", pid, time.time())
    threading.Event().wait(seconds)
    execute(db, "UPDATE cron_workers SET stopped = ? WHERE pid = ?", time.time(), pid)
    jobs.close()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), *map(float, sys.argv[3:4]))
