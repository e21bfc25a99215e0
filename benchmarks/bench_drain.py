"""Drain in direct mode: no-op jobs pushed, then run by 4 workers, on SQLite.

alepha_jobs is timed from ``push_many`` into a started runtime until ``drain()``
returns, so its figure includes the insert. huey (``SqliteHuey``, a consumer with
4 thread workers) is timed from the consumer's start, after the enqueue, until
the last task ran. The raw limit is ``sqlite3`` doing three commits per job on a
one-table schema: insert, claim (UPDATE) and finish (DELETE).

    python benchmarks/bench_drain.py            # 10,000 jobs, 3 runs
    python benchmarks/bench_drain.py --quick
"""

from __future__ import annotations

import sqlite3
import threading
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
    timed_drain,
)
from bench_push import huey_app

WORKERS = 4


OPT_OUT = 1  # batch_size: one claim and one finish per job


def alepha_drain(
    path: Path, count: int, sync: str, batch_size: int | None = None
) -> float:
    runtime = alepha_runtime(
        sqlite_url(path, sync), workers=WORKERS, batch_size=batch_size
    )
    rate = timed_drain(runtime, count)
    left = _count_live(path)
    if left:
        raise RuntimeError(f"{left} rows still live after drain")
    return rate


def _count_live(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(
            connection.execute(
                "SELECT COUNT(*) FROM job_executions "
                "WHERE status IN ('pending', 'scheduled', 'running')"
            ).fetchone()[0]
        )
    finally:
        connection.close()


def raw_lifecycles(path: Path, count: int, sync: str) -> float:
    connection = sqlite3.connect(path)
    connection.isolation_level = None
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {sync}")
    connection.execute(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, status TEXT, payload TEXT)"
    )
    began = time.perf_counter()
    for n in range(count):
        connection.execute("BEGIN")
        connection.execute(
            "INSERT INTO jobs (id, status, payload) VALUES (?, 'pending', ?)",
            (n, f'{{"n":{n}}}'),
        )
        connection.execute("COMMIT")
    for n in range(count):
        connection.execute("BEGIN")
        connection.execute(
            "UPDATE jobs SET status = 'running' WHERE id = ? AND status = 'pending'",
            (n,),
        )
        connection.execute("COMMIT")
        connection.execute("BEGIN")
        connection.execute("DELETE FROM jobs WHERE id = ? AND status = 'running'", (n,))
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - began
    connection.close()
    return count / elapsed


def raw_outbox_lifecycles(path: Path, count: int, sync: str) -> float:
    """The same three commits per job with the outbox's own schema and its own
    insert, claim and success statements, from one thread without any of
    alepha_jobs' Python: the floor its SQLite writes set."""
    import uuid

    from alepha_jobs.store.queries import SQL

    jobs, _ = alepha_runtime(sqlite_url(path, sync))
    jobs.close()
    connection = sqlite3.connect(path)
    connection.isolation_level = None
    connection.execute(f"PRAGMA synchronous = {sync}")
    now = "2026-01-01T00:00:00.000Z"
    ids = [str(uuid.uuid4()) for _ in range(count)]
    began = time.perf_counter()
    for n, execution_id in enumerate(ids):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            SQL["insert"],
            {
                "id": execution_id,
                "now": now,
                "job_name": "bench.noop",
                "key": None,
                "status": "pending",
                "max_attempts": 1,
                "payload": f'{{"n":{n}}}',
                "scheduled_at": None,
                "triggered_by": None,
                "triggered_by_name": None,
            },
        )
        connection.execute("COMMIT")
    for execution_id in ids:
        for name, params in (
            ("claim", {"id": execution_id, "now": now}),
            ("succeed_keep", {"id": execution_id, "now": now, "logs": "[]"}),
        ):
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(SQL[name], params).fetchall()
            connection.execute("COMMIT")
    elapsed = time.perf_counter() - began
    connection.close()
    return count / elapsed


def huey_drain(huey: Any, path: Path, count: int, sync: str | None) -> float:
    from huey.consumer import Consumer

    app = huey_app(huey, path, sync)
    done = threading.Event()
    ran = [0]
    lock = threading.Lock()

    @app.task()  # type: ignore[misc]
    def noop(n: int) -> None:
        with lock:
            ran[0] += 1
            if ran[0] == count:
                done.set()

    for n in range(count):
        noop(n)
    consumer = Consumer(app, workers=WORKERS, worker_type="thread", periodic=False)
    began = time.perf_counter()
    consumer.start()
    finished = done.wait(600)
    elapsed = time.perf_counter() - began
    consumer.stop(graceful=True)
    app.storage.close()
    if not finished:
        raise RuntimeError("huey did not drain within 600 s")
    return count / elapsed


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(__doc__.splitlines()[0], argv)
    count = 200 if args.quick else 10_000
    report = Report(f"Drain {count:,} no-op jobs with {WORKERS} workers", args)
    huey = peer("huey", report)
    runs = iter(range(10_000))
    with scratch() as directory:

        def db(prefix: str) -> Path:
            return directory / f"{prefix}-{next(runs)}.db"

        for sync in SYNC_LEVELS:
            report.measure(
                f"drain {sync}",
                "alepha_jobs",
                "jobs/s",
                lambda sync=sync: alepha_drain(db("alepha"), count, sync),
            )
            report.measure(
                f"drain batch_size={OPT_OUT} {sync}",
                "alepha_jobs",
                "jobs/s",
                lambda sync=sync: alepha_drain(db("single"), count, sync, OPT_OUT),
            )
            report.measure(
                f"raw 3 commits/job {sync}",
                "sqlite3",
                "jobs/s",
                lambda sync=sync: raw_lifecycles(db("raw"), count, sync),
            )
            report.measure(
                f"raw 3 commits/job outbox schema {sync}",
                "sqlite3",
                "jobs/s",
                lambda sync=sync: raw_outbox_lifecycles(db("outbox"), count, sync),
            )
            if huey is not None:
                report.measure(
                    f"huey drain {sync}",
                    "huey",
                    "jobs/s",
                    lambda sync=sync: huey_drain(huey, db("huey"), count, sync),
                )
        if huey is not None:
            report.measure(
                "huey drain default (FULL)",
                "huey",
                "jobs/s",
                lambda: huey_drain(huey, db("huey"), count, None),
            )
    report.target(
        *sqlite_targets("drain", "huey drain", ("raw 3 commits", "raw 3 commits/job"),
                        huey_at_least=8, raw_at_least=1),
        Target("drain / raw 3 commits on the outbox schema, NORMAL",
               "drain NORMAL", "raw 3 commits/job outbox schema NORMAL"),
        Target("raw outbox schema / raw one-table, NORMAL",
               "raw 3 commits/job outbox schema NORMAL", "raw 3 commits/job NORMAL"),
        Target(f"drain batch_size={OPT_OUT} / huey drain (default)",
               f"drain batch_size={OPT_OUT} NORMAL", "huey drain default (FULL)"),
        Target(f"drain batch_size={OPT_OUT} / raw 3 commits, NORMAL",
               f"drain batch_size={OPT_OUT} NORMAL", "raw 3 commits/job NORMAL"),
        Target(f"drain (default) / drain batch_size={OPT_OUT}, NORMAL",
               "drain NORMAL", f"drain batch_size={OPT_OUT} NORMAL"),
    )  # fmt: skip
    report.print()
    return report


if __name__ == "__main__":
    main()
