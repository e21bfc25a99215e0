"""Push: one thread writes small payloads to an SQLite (WAL) outbox.

Against huey's ``SqliteHuey.enqueue`` and against the physical limit, raw
``sqlite3`` with one INSERT and one commit per row, at each ``synchronous``
level. Also ``push_many`` of the whole batch in one call.

    python benchmarks/bench_push.py            # 10,000 pushes, 3 runs
    python benchmarks/bench_push.py --quick    # tiny, checks that it runs
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from _common import (
    SYNC_LEVELS,
    Report,
    Target,
    alepha_runtime,
    parse_args,
    peer,
    scratch,
    sqlite_targets,
    sqlite_url,
    timed_pushes,
)


def alepha_jobs_runtime(path: Path, sync: str) -> tuple[Any, Any]:
    return alepha_runtime(sqlite_url(path, sync))


def alepha_push(directory: Path, count: int, sync: str, run: int) -> float:
    path = directory / f"push-{sync}-{run}.db"
    return timed_pushes(alepha_jobs_runtime(path, sync), count)


def alepha_push_many(directory: Path, count: int, sync: str, run: int) -> float:
    jobs, noop = alepha_jobs_runtime(directory / f"many-{sync}-{run}.db", sync)
    try:
        items = [{"n": n} for n in range(count)]
        began = time.perf_counter()
        noop.push_many(items)
        return count / (time.perf_counter() - began)
    finally:
        jobs.close()


def raw_inserts(directory: Path, count: int, sync: str, run: int) -> float:
    connection = sqlite3.connect(directory / f"raw-{sync}-{run}.db")
    connection.isolation_level = None
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {sync}")
    connection.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload TEXT)")
    began = time.perf_counter()
    for n in range(count):
        connection.execute("BEGIN")
        connection.execute("INSERT INTO jobs (payload) VALUES (?)", (f'{{"n":{n}}}',))
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - began
    connection.close()
    return count / elapsed


OUTBOX_INSERT = """
    INSERT INTO job_executions (id, created_at, updated_at, job_name, status,
        max_attempts, payload)
    VALUES (?, ?, ?, 'bench.noop', 'pending', 1, ?)"""


def raw_outbox_inserts(directory: Path, count: int, sync: str, run: int) -> float:
    """Raw sqlite3 into the outbox's own schema (its table and indexes): what
    alepha_jobs' push costs without any of its Python."""
    import uuid

    path = directory / f"outbox-{sync}-{run}.db"
    jobs, _ = alepha_runtime(sqlite_url(path, sync))
    jobs.close()
    connection = sqlite3.connect(path)
    connection.isolation_level = None
    connection.execute(f"PRAGMA synchronous = {sync}")
    now = "2026-01-01T00:00:00.000Z"
    began = time.perf_counter()
    for n in range(count):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(OUTBOX_INSERT, (str(uuid.uuid4()), now, now, f'{{"n":{n}}}'))
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - began
    connection.close()
    return count / elapsed


def huey_app(huey: object, path: Path, sync: str | None) -> object:
    """A ``SqliteHuey``; ``sync`` None keeps huey's own default (FULL)."""
    storage_class = huey.storage.SqliteStorage  # type: ignore[attr-defined]

    class Storage(storage_class):  # type: ignore[misc, valid-type]
        def _create_connection(self) -> sqlite3.Connection:
            connection = super()._create_connection()
            if sync is not None:
                connection.execute(f"PRAGMA synchronous = {sync}")
            return connection

    class Huey(huey.SqliteHuey):  # type: ignore[attr-defined, misc, name-defined]
        storage_class = Storage

    return Huey("bench", filename=str(path), results=False)


def huey_enqueue(
    huey: object, directory: Path, count: int, sync: str | None, run: int
) -> float:
    app = huey_app(huey, directory / f"huey-{sync}-{run}.db", sync)

    @app.task()  # type: ignore[attr-defined]
    def noop(n: int) -> None:
        return None

    began = time.perf_counter()
    for n in range(count):
        noop(n)
    elapsed = time.perf_counter() - began
    app.storage.close()  # type: ignore[attr-defined]
    return count / elapsed


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(__doc__.splitlines()[0], argv)
    count = 200 if args.quick else 10_000
    report = Report(f"Push {count:,} small payloads to SQLite (WAL)", args)
    huey = peer("huey", report)
    with scratch() as directory:
        for sync in SYNC_LEVELS:
            runs = iter(range(1_000))

            def each(fn, *extra, sync=sync):  # noqa: ANN001, ANN202
                return lambda: fn(*extra, directory, count, sync, next(runs))  # noqa: B023

            report.measure(f"push {sync}", "alepha_jobs", "jobs/s", each(alepha_push))
            report.measure(
                f"push_many {sync}", "alepha_jobs", "jobs/s", each(alepha_push_many)
            )
            report.measure(
                f"raw INSERT+COMMIT {sync}", "sqlite3", "rows/s", each(raw_inserts)
            )
            report.measure(
                f"raw INSERT+COMMIT outbox schema {sync}",
                "sqlite3",
                "rows/s",
                each(raw_outbox_inserts),
            )
            if huey is not None:
                report.measure(
                    f"huey enqueue {sync}",
                    "huey",
                    "jobs/s",
                    each(huey_enqueue, huey),
                )
        if huey is not None:
            runs = iter(range(1_000, 2_000))
            report.measure(
                "huey enqueue default (FULL)",
                "huey",
                "jobs/s",
                lambda: huey_enqueue(huey, directory, count, None, next(runs)),
            )
    report.target(
        *sqlite_targets("push", "huey enqueue", ("raw INSERT", "raw INSERT+COMMIT"),
                        huey_at_least=5, raw_at_least=0.3),
        Target("push / raw INSERT into the outbox schema, NORMAL", "push NORMAL",
               "raw INSERT+COMMIT outbox schema NORMAL"),
        Target("raw outbox schema / raw one-table INSERT, NORMAL",
               "raw INSERT+COMMIT outbox schema NORMAL", "raw INSERT+COMMIT NORMAL"),
        Target("push FULL / push NORMAL", "push FULL", "push NORMAL"),
    )  # fmt: skip
    report.print()
    return report


if __name__ == "__main__":
    main()
