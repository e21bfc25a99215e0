"""Shared helpers of the benchmark scripts: arguments, repeats, tables, ratios.

Every figure is the median of ``--runs`` repeats (at least three) with min and max.
Ratios compare medians measured in the same run of the same script, so they hold
on any machine even when absolute numbers do not.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get(
    "ALEPHA_JOBS_BENCH_POSTGRES",
    os.environ.get(
        "ALEPHA_JOBS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
    ),
)
SYNC_LEVELS = ("NORMAL", "FULL")


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, for CI: checks it runs"
    )
    parser.add_argument("--runs", type=int, help="repeats (default 3; 1 with --quick)")
    parser.add_argument(
        "--no-peers", action="store_true", help="measure alepha_jobs alone"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    args.runs = max(1 if args.quick else 3, args.runs)
    return args


@dataclasses.dataclass
class Figure:
    """One measured case: its repeats, in ``unit``."""

    case: str
    system: str
    values: list[float]
    unit: str

    @property
    def median(self) -> float:
        return statistics.median(self.values)


@dataclasses.dataclass
class Target:
    """``numerator / denominator`` (medians) must be >= ``at_least`` or
    <= ``at_most``."""

    label: str
    numerator: str
    denominator: str
    at_least: float | None = None
    at_most: float | None = None


class Report:
    """Collects figures and prints them with ratios and targets."""

    def __init__(self, title: str, args: argparse.Namespace) -> None:
        self.title = title
        self.args = args
        self.figures: dict[str, Figure] = {}
        self.notes: list[str] = []
        self.targets: list[Target] = []

    def measure(
        self,
        key: str,
        system: str,
        unit: str,
        run: Callable[[], float],
    ) -> Figure | None:
        """Call ``run`` ``--runs`` times; each call returns one value in ``unit``."""
        values = []
        for _ in range(self.args.runs):
            values.append(run())
        figure = Figure(key, system, values, unit)
        self.figures[key] = figure
        return figure

    def add(self, key: str, system: str, unit: str, values: list[float]) -> None:
        self.figures[key] = Figure(key, system, values, unit)

    def skip(self, what: str, reason: str) -> None:
        message = f"{what}: skipped ({reason})"
        self.notes.append(message)
        print(message, file=sys.stderr, flush=True)

    def target(self, *targets: Target) -> None:
        self.targets.extend(targets)

    def ratio(self, numerator: str, denominator: str) -> float | None:
        top, bottom = self.figures.get(numerator), self.figures.get(denominator)
        if top is None or bottom is None or bottom.median == 0:
            return None
        return top.median / bottom.median

    def print(self) -> None:
        mode = "quick (tiny sizes; figures mean nothing)" if self.args.quick else ""
        print(f"\n## {self.title}  {mode}".rstrip())
        print(f"runs per figure: {self.args.runs}\n")
        header = ("case", "system", "median", "min", "max", "unit")
        rows = [
            (
                f.case,
                f.system,
                _fmt(f.median),
                _fmt(min(f.values)),
                _fmt(max(f.values)),
                f.unit,
            )
            for f in self.figures.values()
        ]
        _table(header, rows)
        if self.targets:
            print()
            _table(("ratio", "value", "target", "met"), self._target_rows())
        for note in self.notes:
            print(f"note: {note}")
        if self.args.json:
            self.args.json.write_text(json.dumps(self.as_dict(), indent=2))

    def _target_rows(self) -> list[tuple[str, ...]]:
        rows = []
        for target in self.targets:
            value = self.ratio(target.numerator, target.denominator)
            if target.at_least is None and target.at_most is None:
                goal, met = "(no target)", None
            elif target.at_least is not None:
                goal = f">= {target.at_least:g}x"
                met = value is not None and value >= target.at_least
            else:
                goal = f"<= {target.at_most:g}x"
                met = value is not None and value <= (target.at_most or 0)
            shown = "n/a" if value is None else f"{value:.2f}x"
            verdict = "n/a" if value is None else ("yes" if met else "NO")
            if met is None:
                verdict = "-"
            rows.append((target.label, shown, goal, verdict))
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "environment": environment(),
            "figures": [dataclasses.asdict(f) for f in self.figures.values()],
            "ratios": [
                {"label": t.label, "value": self.ratio(t.numerator, t.denominator)}
                for t in self.targets
            ],
            "notes": self.notes,
        }


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [
        max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)
    ]
    line = (
        "| "
        + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
        + " |"
    )
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [str(c).rjust(w) for c, w in zip(row, widths, strict=True)]
        cells[0], cells[1] = str(row[0]).ljust(widths[0]), str(row[1]).ljust(widths[1])
        print("| " + " | ".join(cells) + " |")


def alepha_runtime(
    url: str,
    workers: int = 4,
    handler: Callable[[Any], None] | None = None,
    batch_size: int | None = None,
    **settings: Any,
) -> tuple[Any, Any]:
    """A ``Jobs`` on ``url`` with one queue job, ``bench.noop``, and its handle;
    ``batch_size`` overrides the direct dispatcher's (1 opts out of batches)."""
    from pydantic import BaseModel

    from alepha_jobs import Jobs, JobsConfig
    from alepha_jobs.dispatch.direct import DirectDispatcher

    class Small(BaseModel):
        """The benchmark payload: one small integer."""

        n: int

    config = JobsConfig(direct_max_concurrency=workers, **settings)
    dispatcher = (
        DirectDispatcher(workers)
        if batch_size is None
        else DirectDispatcher(workers, batch_size)
    )
    jobs = Jobs(url, config=config, dispatcher=dispatcher)

    def noop(ctx: Any) -> None:
        if handler is not None:
            handler(ctx)

    jobs.job("bench.noop", schema=Small, description="benchmark job")(noop)
    return jobs, jobs.registry["bench.noop"]


def timed_pushes(runtime: tuple[Any, Any], count: int) -> float:
    """Push ``count`` payloads one at a time through ``runtime`` (an
    :func:`alepha_runtime`, closed afterwards); pushes per second."""
    jobs, noop = runtime
    try:
        began = time.perf_counter()
        for n in range(count):
            noop.push({"n": n})
        return count / (time.perf_counter() - began)
    finally:
        jobs.close()


def timed_drain(runtime: tuple[Any, Any], count: int) -> float:
    """Start ``runtime`` (an :func:`alepha_runtime`, closed afterwards), then time
    ``push_many`` of ``count`` payloads until ``drain()`` returns; jobs per second.
    """
    jobs, noop = runtime
    jobs.start()
    try:
        # a few runs first, so the runtime knows the handler is quick
        noop.push_many([{"n": n} for n in range(20)])
        jobs.drain(timeout=60)
        items = [{"n": n} for n in range(count)]
        began = time.perf_counter()
        noop.push_many(items)
        if not jobs.drain(timeout=600):
            raise RuntimeError("alepha_jobs did not drain within 600 s")
        return count / (time.perf_counter() - began)
    finally:
        jobs.close()


def sqlite_targets(
    ours: str,
    huey: str,
    raw: tuple[str, str],
    huey_at_least: float,
    raw_at_least: float,
) -> list[Target]:
    """``ours`` against huey's ``huey`` (its default and both NORMAL) and against
    the raw figure at each sync level; ``raw`` is its (label, case) pair."""
    raw_label, raw_case = raw
    return [
        Target(f"{ours} / {huey} (default)", f"{ours} NORMAL",
               f"{huey} default (FULL)", at_least=huey_at_least),
        Target(f"{ours} / {huey}, both NORMAL", f"{ours} NORMAL",
               f"{huey} NORMAL", at_least=huey_at_least),
        *(
            Target(f"{ours} / {raw_label}, {sync}", f"{ours} {sync}",
                   f"{raw_case} {sync}", at_least=raw_at_least)
            for sync in SYNC_LEVELS
        ),
    ]  # fmt: skip


def sqlite_url(path: Path, sync: str = "NORMAL") -> str:
    return f"sqlite:///{path}?synchronous={sync.lower()}"


def peer(module: str, report: Report) -> Any:
    """Import a peer library, or note that it is skipped and return ``None``."""
    if report.args.no_peers:
        report.skip(module, "--no-peers")
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        report.skip(module, "not installed: pip install -r benchmarks/requirements.txt")
        return None


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A temporary directory for database files, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="alepha-bench-") as directory:
        yield Path(directory)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def postgres_admin() -> Any:
    """An autocommit connection to the benchmark server, or ``None``."""
    try:
        import psycopg

        return psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=2)
    except Exception as error:  # ImportError or any connection error
        print(f"Postgres at {PG_SERVER} unreachable: {error}", file=sys.stderr)
        return None


@contextlib.contextmanager
def postgres_database(admin: Any) -> Iterator[str]:
    """A fresh database of our own on the benchmark server, dropped afterwards.

    Peers install types, functions and triggers; a database of their own keeps
    them away from everyone else's schemas.
    """
    name = f"alepha_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(PG_SERVER, name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def environment() -> dict[str, str]:
    import sqlite3

    versions = {}
    for name in ("alepha_jobs", "huey", "procrastinate", "pgqueuer", "psycopg"):
        try:
            from importlib.metadata import version

            dist = "alepha-jobs" if name == "alepha_jobs" else name
            versions[name] = version(dist)
        except Exception:
            versions[name] = "-"
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.system()}",
        **versions,
    }
