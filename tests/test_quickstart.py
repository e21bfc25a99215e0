"""The README's main example, on the standard library tree, killed and resumed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from alepha_jobs.dispatch.direct import BATCH_SIZE
from tests.conftest import wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
LIMIT = 1500
WORKERS = 4

pytestmark = pytest.mark.slow


def run(db: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, str(EXAMPLE), "--db", str(db), "--limit", str(LIMIT)]
    return subprocess.Popen(
        [*command, "--workers", str(WORKERS), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def indexed(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as connection:
            return connection.execute("SELECT COUNT(*) FROM file_index").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # the table does not exist yet


def test_example_indexes_every_file_and_reports_a_summary(tmp_path: Path) -> None:
    process = run(tmp_path / "jobs.db")
    output, _ = process.communicate(timeout=300)

    assert process.returncode == 0, output
    assert indexed(tmp_path / "jobs.db") == LIMIT
    summary = output.strip().splitlines()[-1]
    assert f"files {LIMIT}" in summary and f"succeeded {LIMIT}" in summary
    assert "failed 0" in summary and "jobs/s" in summary


def test_sigkill_half_way_then_restart_finishes_without_loss(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    first = run(db)
    assert wait_until(lambda: indexed(db) >= LIMIT // 3, timeout=120)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=30)
    done_before = indexed(db)
    assert 0 < done_before < LIMIT, "the kill must land half way"
    with sqlite3.connect(db) as connection:  # indexed, or queued by the first run
        accounted = connection.execute(
            "SELECT COUNT(*) FROM (SELECT path FROM file_index"
            " UNION SELECT key FROM job_executions WHERE key IS NOT NULL)"
        ).fetchone()[0]

    second = run(db)
    output, _ = second.communicate(timeout=300)

    assert second.returncode == 0, output
    with sqlite3.connect(db) as connection:
        files = connection.execute("SELECT COUNT(*) FROM file_index").fetchone()[0]
        redone = connection.execute(
            "SELECT COUNT(*) FROM file_index WHERE runs > 1"
        ).fetchone()[0]
        live = connection.execute(
            "SELECT COUNT(*) FROM job_executions WHERE status <> 'ok'"
        ).fetchone()[0]
    assert files == LIMIT  # nothing lost
    assert live == 0  # nothing left queued, running or failed
    # Only runs in flight at the kill may run twice (at-least-once): with
    # batches, up to a batch per worker whose successes were not yet written.
    assert redone <= WORKERS * BATCH_SIZE
    assert f"pushed this run {LIMIT - accounted}" in output


@pytest.mark.parametrize(
    ("option", "value"),
    [("--workers", "0"), ("--fail-rate", "2"), ("--fail-rate", "x"), ("--limit", "-1")],
)
def test_bad_options_are_a_usage_error(tmp_path: Path, option: str, value: str) -> None:
    process = run(tmp_path / "jobs.db", option, value)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 2
    assert option in output and "Traceback" not in output
    assert not (tmp_path / "jobs.db").exists()
