"""The README's tour runs as written, in a fresh directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.slow


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_tour_and_the_cron_example_run_as_written(tmp_path: Path) -> None:
    blocks = python_blocks()
    # by content, not position: other sections (Postgres, queue mode) have blocks too
    tour = next(b for b in blocks if b.startswith("from pydantic import BaseModel"))
    cron = next(b for b in blocks if b.startswith('@jobs.job("reports.nightly"'))
    # The tour ends with jobs.stop(); a stopped runtime runs no cron, so the cron
    # example gets a runtime of its own on the same file.
    stub = """
jobs = Jobs("sqlite:///jobs.db")


def build_report(for_day: object) -> None:
    print("report")

"""
    script = tmp_path / "tour.py"
    script.write_text(tour + stub + cron)

    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    # Worker threads print concurrently, so lines may interleave.
    welcomed = sorted(re.findall(r"welcome (\d)", result.stdout))
    assert welcomed == ["1", "3", "4", "5"], result.stdout
    assert "report" in result.stdout
    assert (tmp_path / "jobs.db").exists()
