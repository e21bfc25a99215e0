"""Every benchmark script runs in ``--quick`` mode on alepha_jobs alone and prints
its table (issue 7). Figures are not checked: nothing here is timed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(path.name for path in BENCHMARKS.glob("bench_*.py"))
HEADER = "| case"


def test_every_benchmark_is_covered() -> None:
    assert SCRIPTS == [
        "bench_drain.py",
        "bench_latency.py",
        "bench_memory.py",
        "bench_postgres.py",
        "bench_push.py",
        "bench_sweep.py",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_quick_run_prints_a_table(script: str, tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--no-peers"]
        + ["--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)},
    )
    assert result.returncode == 0, result.stderr
    if "unreachable" in result.stderr and not os.environ.get(
        "ALEPHA_JOBS_REQUIRE_SERVICES"
    ):
        pytest.skip(f"{script}: Postgres unreachable")
    rows = table(result.stdout)
    assert rows, result.stdout
    assert {row[1] for row in rows} <= {"alepha_jobs", "sqlite3", "psycopg", "-"}, rows
    assert any(row[1] == "alepha_jobs" for row in rows)
    assert all(float(row[2].replace(",", "")) >= 0 for row in rows)
    assert figures.exists()


def table(output: str) -> list[list[str]]:
    """The rows of the figures table: case, system, median, min, max, unit."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    assert header == ["case", "system", "median", "min", "max", "unit"]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.slow
def test_peers_are_skipped_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_push.py"), "--quick", "--no-peers"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)},
    )
    assert result.returncode == 0, result.stderr
    assert "huey: skipped (--no-peers)" in result.stderr
    assert "note: huey: skipped" in result.stdout
    assert "| push NORMAL" in result.stdout
