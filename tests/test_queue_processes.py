"""Queue mode across real processes (issue 6), run by tests/queue_worker.py.

- A consumer SIGKILLed after it popped a message and before it claimed the row:
  the message is gone, the row stays ``pending``, and the sweep re-dispatches it
  once ``stale_threshold`` has passed (within the re-dispatch cap).
- Two producer processes push 5,000 jobs each while three worker processes
  consume, all on one SQLite file: every job runs exactly once and none is lost.
  Run with ``pytest -s`` to see the figures.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from alepha_jobs import JobContext, Jobs, JobsConfig, Retention, Rule

from .conftest import NEVER, wait_until
from .queue_worker import NAME, Numbered
from .redis_service import queue_url

WORKER = Path(__file__).resolve().parent / "queue_worker.py"
PRODUCERS = 2
PER_PRODUCER = 5000
WORKERS = 3

pytestmark = pytest.mark.slow


def launch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line, f"process {process.pid} exited: {process.communicate()[0]}"
    return line


def outbox_rows(db: Path) -> int:
    try:
        with closing(sqlite3.connect(db, timeout=60)) as connection:
            return int(
                connection.execute("SELECT COUNT(*) FROM job_executions").fetchone()[0]
            )
    except sqlite3.OperationalError:
        return -1


def test_a_consumer_killed_between_pop_and_claim_loses_no_row(
    tmp_path: Path, prefix: str, redis_client: Any
) -> None:
    db = f"sqlite:///{tmp_path}/jobs.db"
    queue = queue_url(prefix, concurrency=1)
    stalled = launch("stall", db, queue)
    jobs = Jobs(
        db,
        queue=queue,
        config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER, stale_threshold="1 hour"),
    )
    handled: list[int] = []

    @jobs.job(NAME, schema=Numbered, retention=Retention(ok=Rule(last=10)))
    def numbered(ctx: JobContext[Numbered]) -> None:
        """Record the payload."""
        handled.append(ctx.payload.n)

    try:
        assert first_line(stalled) == "ready"
        execution_id = numbered.push({"n": 1})
        assert first_line(stalled) == f"popped {execution_id}"
        os.kill(stalled.pid, signal.SIGKILL)
        stalled.wait(10)

        assert redis_client.llen(f"{prefix}:api:jobs:dispatch") == 0
        assert redis_client.zcard(f"{prefix}:api:jobs:dispatch:delayed") == 0
        jobs.start()  # its start-up sweep: not stale yet, nothing re-dispatched
        row = jobs.get_execution(execution_id)
        assert row is not None and (row.status, row.redispatch_count) == ("pending", 0)
        assert handled == []

        later = datetime.now(timezone.utc) + timedelta(hours=1, seconds=1)
        with freeze_time(later):
            report = jobs.sweep()
            assert report.redispatched == 1
            assert wait_until(lambda: handled == [1])
        assert jobs.drain(10)
    finally:
        if stalled.poll() is None:
            stalled.kill()
        jobs.close()

    reader = Jobs(db, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))
    try:
        row = reader.get_execution(execution_id)
    finally:
        reader.close()
    assert row is not None
    assert (row.status, row.attempt, row.redispatch_count) == ("ok", 1, 1)
    assert handled == [1]


def test_two_producers_and_three_workers_run_every_job_exactly_once(
    tmp_path: Path, prefix: str
) -> None:
    db_path = tmp_path / "jobs.db"
    db = f"sqlite:///{db_path}"
    queue = queue_url(prefix, concurrency=4)
    outs = [tmp_path / f"runs-{i}.txt" for i in range(WORKERS)]
    workers = [launch("worker", db, queue, str(out)) for out in outs]
    producers: list[subprocess.Popen[str]] = []
    total = PRODUCERS * PER_PRODUCER
    try:
        for process in workers:
            assert first_line(process) == "ready"
        began = time.perf_counter()
        producers = [
            launch("producer", db, queue, str(i * PER_PRODUCER), str(PER_PRODUCER))
            for i in range(PRODUCERS)
        ]
        pushed = [p.communicate(timeout=120)[0] for p in producers]
        assert all(p.returncode == 0 for p in producers), pushed

        def ran() -> int:
            return sum(len(o.read_text().split()) for o in outs if o.exists())

        assert wait_until(lambda: ran() >= total and outbox_rows(db_path) == 0, 120)
        elapsed = time.perf_counter() - began
    finally:
        for process in workers + producers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=60)[0] for p in workers]

    counts = Counter(int(n) for o in outs for n in o.read_text().split())
    per_worker = [len(o.read_text().split()) for o in outs]
    once = sum(1 for n in range(total) if counts[n] == 1)
    twice = sorted(n for n, c in counts.items() if c > 1)
    lost = [n for n in range(total) if counts[n] == 0]
    print(
        f"\nqueue mode, {PRODUCERS} producers x {PER_PRODUCER}, {WORKERS} workers x 4 "
        f"threads, SQLite: jobs {total}, ran once {once}, ran twice {len(twice)}, "
        f"lost {len(lost)}, elapsed {elapsed:.1f}s, {total / elapsed:.0f} jobs/s; "
        f"runs per worker {per_worker}; producers: {[p.strip() for p in pushed]}"
    )
    assert all(p.returncode == 0 for p in workers), outputs
    assert twice == [] and lost == []
    assert once == total
    assert outbox_rows(db_path) == 0
