"""A cron instant runs once across real processes (DESIGN §1, SPEC §6.2).

Four OS processes (tests/cron_worker.py) start a runtime on one SQLite file, each
with the same every-second cron job, and share the default lock store (rows of
``job_locks``). Every instant that all of them covered must run exactly once.
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

from .conftest import wait_until

WORKER = Path(__file__).resolve().parent / "cron_worker.py"
WORKERS = 4
SECONDS = 10.0

pytestmark = pytest.mark.slow


def launch(db: Path, *timeout: float) -> list[subprocess.Popen[str]]:
    command = [sys.executable, str(WORKER), str(db), str(SECONDS)]
    command += [str(value) for value in timeout]
    return [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(WORKERS)
    ]


def read(db: Path, query: str) -> list[tuple[Any, ...]]:
    try:
        with closing(sqlite3.connect(db, timeout=60)) as connection:
            return connection.execute(query).fetchall()
    except sqlite3.OperationalError:
        return []  # the side tables do not exist yet


def runs(db: Path) -> list[tuple[int, str]]:
    return [(int(p), str(i)) for p, i in read(db, "SELECT pid, instant FROM cron_runs")]


def finish(processes: list[subprocess.Popen[str]]) -> list[str]:
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=120)
        outputs.append(output)
    return outputs


def covered_instants(db: Path) -> list[str]:
    """Whole seconds after the last runtime started and at least a second before
    the first surviving runtime began to stop: every live worker covered them."""
    rows = read(db, "SELECT started, stopped FROM cron_workers")
    started = max(float(start) for start, _ in rows)
    stopped = min(float(stop) for _, stop in rows if stop is not None)
    first, last = int(started) + 1, int(stopped) - 1
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return [
        (epoch + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        for second in range(first, last + 1)
    ]


def figures(label: str, db: Path) -> tuple[list[str], list[str], list[str]]:
    """Print and return (expected instants, instants run twice or more, missed)."""
    expected = covered_instants(db)
    counts = Counter(instant for _, instant in runs(db))
    twice = sorted(instant for instant, count in counts.items() if count > 1)
    missed = [instant for instant in expected if counts[instant] == 0]
    ran = sum(1 for instant in expected if counts[instant] > 0)
    winners = Counter(pid for pid, _ in runs(db))
    print(
        f"\n{label}: instants expected {len(expected)}, run {ran}, "
        f"run twice {len(twice)}, missed {len(missed)} {missed}; "
        f"rows {sum(counts.values())}, runs per process {dict(winners)}"
    )
    return expected, twice, missed


def test_four_processes_run_every_covered_instant_exactly_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "jobs.db"
    outputs = finish(launch(db))

    expected, twice, missed = figures("four processes", db)
    assert len(read(db, "SELECT pid FROM cron_workers")) == WORKERS, outputs
    assert len(expected) >= 5, "the four runtimes barely overlapped"
    assert twice == [], outputs
    assert missed == [], outputs


def test_a_process_killed_half_way_never_causes_a_duplicate(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    processes = launch(db)
    assert wait_until(lambda: len(runs(db)) >= 5, timeout=60)

    # Kill in the middle of a second: the winner of an instant holds the run lock
    # only for the few milliseconds its handler takes, and a process killed while
    # holding it would block the job on every replica until the lock's TTL (5
    # minutes here) expires, which is SPEC §6.2's documented recovery, not a bug.
    assert wait_until(lambda: 0.4 <= time.time() % 1 <= 0.6, timeout=2)
    victim = runs(db)[-1][0]  # the process that ran the latest instant
    os.kill(victim, signal.SIGKILL)
    killed_at = datetime.now(timezone.utc)
    outputs = finish(processes)

    expected, twice, missed = figures(f"one of four killed at {killed_at}", db)
    by_pid = {process.pid: process.returncode for process in processes}
    assert by_pid[victim] == -signal.SIGKILL
    assert all(code == 0 for pid, code in by_pid.items() if pid != victim), outputs
    assert twice == [], outputs
    # At most the one instant the victim had claimed and not yet recorded when it
    # died can be lost: its claim outlives it, so no survivor runs that instant.
    assert len(missed) <= 1, outputs
    assert len(expected) >= 5


def test_a_process_killed_mid_run_blocks_the_job_only_until_its_lock_expires(
    tmp_path: Path,
) -> None:
    """SPEC §6.2: the run lock of a run whose process died is never released; it
    expires after ``2 x timeout`` (2 s here), and every replica skips the job until
    then. Nothing runs twice, and the ticks resume on the survivors."""
    db = tmp_path / "jobs.db"
    processes = launch(db, 1.0)
    assert wait_until(lambda: len(runs(db)) >= 4, timeout=60)
    seen = len(runs(db))
    assert wait_until(lambda: len(runs(db)) > seen, timeout=5)
    victim, instant = runs(db)[-1]  # recorded, now holding on for 0.3 s
    os.kill(victim, signal.SIGKILL)
    outputs = finish(processes)

    expected, twice, missed = figures(f"one of four killed mid-run {instant}", db)
    killed = datetime.strptime(instant, "%Y-%m-%dT%H:%M:%S.000Z")
    assert twice == [], outputs
    assert all(killed < datetime.strptime(m, "%Y-%m-%dT%H:%M:%S.000Z") for m in missed)
    assert len(missed) <= 3, outputs  # the instants inside the lock's 2 s TTL
    resumed = killed + timedelta(seconds=2)  # the run lock has expired by then
    later = [i for _, i in runs(db) if i > resumed.strftime("%Y-%m-%dT%H:%M:%S.000Z")]
    assert later, f"the ticks did not resume: {outputs}"
