"""Index the Python standard library's source files with alepha_jobs.

One keyed job per file records its size, line count and SHA-256 in a results
table. Transient failures are injected (``--fail-rate``) so retries show. Kill it
with SIGKILL half way and start it again: it finishes the rest without redoing
finished files and without losing any.

    python examples/quickstart.py                 # the stdlib, into ./quickstart.db
    python examples/quickstart.py --root ~/src --fail-rate 0.1
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from alepha_jobs import Backoff, JobContext, Jobs, JobsConfig, Retry

SKIPPED = {"site-packages", "__pycache__"}  # installed packages, bytecode
RESULTS = """
CREATE TABLE IF NOT EXISTS file_index (
    path TEXT PRIMARY KEY, size INTEGER, lines INTEGER, sha256 TEXT,
    attempt INTEGER, runs INTEGER DEFAULT 1
)"""
RECORD = """
INSERT INTO file_index (path, size, lines, sha256, attempt) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (path) DO UPDATE SET size = excluded.size, lines = excluded.lines,
    sha256 = excluded.sha256, attempt = excluded.attempt, runs = runs + 1"""


class IndexFile(BaseModel):
    path: str


class InjectedFailure(Exception):
    """A transient error the example raises on purpose."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parser.add_argument("--root", type=Path, default=stdlib)
    parser.add_argument("--db", type=Path, default=Path("quickstart.db"))
    parser.add_argument("--fail-rate", type=fraction, default=0.02)
    parser.add_argument("--workers", type=counted(1), default=4)
    parser.add_argument(
        "--limit", type=counted(0), default=0, help="index at most N files"
    )
    return parser.parse_args(argv)


def fraction(text: str) -> float:
    """A probability from 0 to 1 (``--fail-rate``)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def counted(minimum: int) -> Callable[[str], int]:
    """A whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number of at least {minimum}"
            )
        return value

    return parse


def build(args: argparse.Namespace) -> tuple[Jobs, object]:
    jobs = Jobs(
        f"sqlite:///{args.db}",
        config=JobsConfig(
            direct_max_concurrency=args.workers,
            sweep_cron="*/2 * * * * *",  # recover killed runs within seconds
            trim_cron="0 * * * *",
        ),
    )
    local = threading.local()

    def results() -> sqlite3.Connection:
        if not hasattr(local, "db"):
            local.db = sqlite3.connect(args.db, timeout=30, isolation_level=None)
        return local.db

    @jobs.job(
        "files.index",
        schema=IndexFile,
        retry=Retry(4, backoff=Backoff(initial=0.05, max=1)),
        timeout=1,
    )
    def index_file(ctx: JobContext[IndexFile]) -> None:
        """Record one file's size, line count and SHA-256."""
        if random.random() < args.fail_rate:
            raise InjectedFailure(f"injected failure on attempt {ctx.attempt}")
        data = Path(ctx.payload.path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        row = (ctx.payload.path, len(data), data.count(b"\n"), digest, ctx.attempt)
        results().execute(RECORD, row)

    return jobs, index_file


def all_files(args: argparse.Namespace) -> list[str]:
    files = []
    for folder, subfolders, names in os.walk(args.root):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED]
        paths = (os.path.join(folder, name) for name in names)
        files.extend(path for path in paths if os.path.isfile(path))
    files.sort()
    return files[: args.limit] if args.limit else files


def pending_files(files: list[str], db: sqlite3.Connection) -> list[str]:
    """Files neither indexed nor still queued by a run that was killed: those
    rows are picked up again as soon as the runtime starts."""
    done = {row[0] for row in db.execute("SELECT path FROM file_index")}
    queued = "SELECT key FROM job_executions WHERE job_name = 'files.index'"
    done.update(row[0] for row in db.execute(queued))
    return [path for path in files if path not in done]


def live_rows(db: sqlite3.Connection) -> int:
    query = "SELECT COUNT(*) FROM job_executions WHERE status IN (?, ?, ?)"
    return db.execute(query, ("pending", "scheduled", "running")).fetchone()[0]


def show_progress(
    db: sqlite3.Connection, total: int, started: float, before: int
) -> None:
    """Print progress until nothing is queued; the rate counts this run's files."""
    tty = sys.stdout.isatty()
    pause = threading.Event()
    while True:
        indexed = indexed_count(db)
        live = live_rows(db)
        rate = (indexed - before) / max(time.monotonic() - started, 1e-9)
        line = f"indexed {indexed}/{total} files, {live} queued or running, "
        line += f"{rate:.0f}/s"
        print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
        if live == 0:
            break
        pause.wait(0.5 if tty else 2.0)
    if tty:
        print()


def indexed_count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM file_index").fetchone()[0])


def summary(
    db: sqlite3.Connection, total: int, elapsed: float, pushed: int, before: int
) -> str:
    """The closing line; jobs/s counts the files indexed by this run (a resumed
    run also finishes what a killed one left queued)."""
    succeeded, retried = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(attempt > 1), 0) FROM file_index"
    ).fetchone()
    failed = db.execute(
        "SELECT COUNT(*) FROM job_executions WHERE status = 'error'"
    ).fetchone()[0]
    return (
        f"files {total}, pushed this run {pushed}, succeeded {succeeded}, "
        f"retried {retried}, failed {failed}, elapsed {elapsed:.2f}s, "
        f"{(succeeded - before) / max(elapsed, 1e-9):.0f} jobs/s"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.root.is_dir():
        print(f"--root {args.root} is not a directory", file=sys.stderr)
        return 2
    jobs, index_file = build(args)
    db = sqlite3.connect(args.db, timeout=30, isolation_level=None)
    db.execute(RESULTS)
    files = all_files(args)
    todo = pending_files(files, db)
    total, before = len(files), indexed_count(db)
    left = max(0, total - before - len(todo))
    print(
        f"indexing {len(todo)} of {total} files under {args.root} into {args.db}"
        + (f" ({left} still queued by an earlier run)" if left else "")
    )
    started = time.monotonic()
    with jobs:
        for path in todo:  # a keyed push: a file still queued from a killed run is
            index_file.push({"path": path}, key=path)  # not queued twice
        show_progress(db, total, started, before)
    print(summary(db, total, time.monotonic() - started, len(todo), before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
