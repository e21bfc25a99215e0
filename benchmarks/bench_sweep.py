"""Sweep cost: one sweep over 1,000 due rows beside 1,000,000 terminal rows,
against one sweep over a table holding only the 1,000 due rows.

The due rows are ``scheduled`` with a start time in the past, so the sweep
promotes each one; between repeats they are set back (not timed).

    python benchmarks/bench_sweep.py            # builds a 1M-row file once (slow)
    python benchmarks/bench_sweep.py --quick    # 10,000 terminal rows, 100 due
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from _common import Report, Target, alepha_runtime, parse_args, scratch, sqlite_url

PAST = "2020-01-01T00:00:00.000Z"
INSERT = """
    INSERT INTO job_executions (id, created_at, updated_at, job_name, status,
        attempt, max_attempts, payload, scheduled_at, started_at, completed_at)
    VALUES (?, ?, ?, 'bench.noop', ?, ?, 1, '{"n":1}', ?, ?, ?)"""


def build(path: Path, terminal: int, due: int) -> None:
    """The outbox schema (made by alepha_jobs) filled straight through sqlite3."""
    jobs, _ = alepha_runtime(sqlite_url(path))
    jobs.close()
    connection = sqlite3.connect(path)
    chunk = 50_000
    for start in range(0, terminal, chunk):
        rows = [
            (str(uuid.uuid4()), PAST, PAST, "ok", 1, None, PAST, PAST)
            for _ in range(min(chunk, terminal - start))
        ]
        connection.executemany(INSERT, rows)
        connection.commit()
    rows = [
        (str(uuid.uuid4()), PAST, PAST, "scheduled", 0, PAST, None, None)
        for _ in range(due)
    ]
    connection.executemany(INSERT, rows)
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()


def reset(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute(
        "UPDATE job_executions SET status = 'scheduled', updated_at = ? "
        "WHERE status = 'pending'",
        (PAST,),
    )
    connection.commit()
    connection.close()


def one_sweep(path: Path, due: int) -> float:
    reset(path)
    jobs, _ = alepha_runtime(sqlite_url(path), sweep_batch_size=due)
    try:
        began = time.perf_counter()
        report = jobs.sweep()
        elapsed = time.perf_counter() - began
    finally:
        jobs.close()
    if report.promoted != due:
        raise RuntimeError(f"the sweep promoted {report.promoted}, not {due}")
    return elapsed * 1000


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(__doc__.splitlines()[0], argv)
    terminal, due = (10_000, 100) if args.quick else (1_000_000, 1_000)
    report = Report(
        f"One sweep: {due:,} due rows beside {terminal:,} terminal rows, or alone",
        args,
    )
    with scratch() as directory:
        big, small = directory / "big.db", directory / "small.db"
        began = time.perf_counter()
        build(big, terminal, due)
        build(small, 0, due)
        report.notes.append(f"built both files in {time.perf_counter() - began:.1f} s")
        report.measure(
            f"sweep, {terminal:,} terminal + {due:,} due",
            "alepha_jobs",
            "ms",
            lambda: one_sweep(big, due),
        )
        report.measure(
            f"sweep, {due:,} due only",
            "alepha_jobs",
            "ms",
            lambda: one_sweep(small, due),
        )
    keys = list(report.figures)
    report.target(Target("big table / small table", keys[0], keys[1], at_most=2))
    report.print()
    return report


if __name__ == "__main__":
    main()
