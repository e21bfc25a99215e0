"""Latency: push to handler start, p50 and p99, for jobs pushed 5 ms apart to an
idle runtime with 4 workers.

alepha_jobs in direct mode on SQLite and on Postgres, huey (``SqliteHuey``, a
consumer with 4 thread workers) and procrastinate (Postgres, a worker with
concurrency 4 on its own thread). Each run measures every job; the figures are
the median, min and max over runs of each run's p50 and p99.

    python benchmarks/bench_latency.py            # 500 jobs, 3 runs
    python benchmarks/bench_latency.py --quick
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    Report,
    Target,
    alepha_runtime,
    parse_args,
    peer,
    percentile,
    postgres_admin,
    postgres_database,
    scratch,
    sqlite_url,
)
from bench_push import huey_app

WORKERS = 4
SPACING = 0.005


class Clockings:
    """Push and start instants of every job, by its number."""

    def __init__(self, count: int) -> None:
        self.pushed = [0.0] * count
        self.started = [0.0] * count
        self.left = count
        self.done = threading.Event()
        self.lock = threading.Lock()

    def start(self, n: int) -> None:
        self.started[n] = time.perf_counter()
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.done.set()

    def push_all(self, push: Callable[[int], None]) -> None:
        for n in range(len(self.pushed)):
            self.pushed[n] = time.perf_counter()
            push(n)
            pause = self.pushed[n] + SPACING - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        if not self.done.wait(120):
            raise RuntimeError(f"{self.left} jobs never started")

    def quantiles(self) -> tuple[float, float]:
        waits = [(s - p) * 1000 for p, s in zip(self.pushed, self.started, strict=True)]
        return percentile(waits, 0.5), percentile(waits, 0.99)


def alepha_latency(url: str, count: int) -> tuple[float, float]:
    clockings = Clockings(count)
    jobs, noop = alepha_runtime(
        url, workers=WORKERS, handler=lambda ctx: clockings.start(ctx.payload.n)
    )
    jobs.start()
    try:
        clockings.push_all(lambda n: noop.push({"n": n}))
    finally:
        jobs.close()
    return clockings.quantiles()


def huey_latency(huey: Any, path: Path, count: int) -> tuple[float, float]:
    from huey.consumer import Consumer

    clockings = Clockings(count)
    app = huey_app(huey, path, None)

    @app.task()  # type: ignore[misc]
    def noop(n: int) -> None:
        clockings.start(n)

    consumer = Consumer(app, workers=WORKERS, worker_type="thread", periodic=False)
    consumer.start()
    time.sleep(0.5)  # let the workers reach their idle polling
    try:
        clockings.push_all(noop)
    finally:
        consumer.stop(graceful=True)
        app.storage.close()
    return clockings.quantiles()


def procrastinate_latency(
    procrastinate: Any, url: str, count: int
) -> tuple[float, float]:
    from bench_postgres import ProcrastinateWorker, procrastinate_app

    clockings = Clockings(count)
    pusher, noop = procrastinate_app(procrastinate, url)
    with ProcrastinateWorker(procrastinate, url, clockings.start), pusher.open():
        clockings.push_all(lambda n: noop.defer(n=n))
    return clockings.quantiles()


def record(
    report: Report, name: str, system: str, run: Callable[[], tuple[float, float]]
) -> None:
    p50s, p99s = [], []
    for _ in range(report.args.runs):
        p50, p99 = run()
        p50s.append(p50)
        p99s.append(p99)
    report.add(f"{name} p50", system, "ms", p50s)
    report.add(f"{name} p99", system, "ms", p99s)


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(__doc__.splitlines()[0], argv)
    count = 40 if args.quick else 500
    report = Report(
        f"Latency push -> handler start, {count} jobs {SPACING * 1000:g} ms apart",
        args,
    )
    huey = peer("huey", report)
    runs = iter(range(1_000))
    with scratch() as directory:

        def db(prefix: str) -> Path:
            return directory / f"{prefix}-{next(runs)}.db"

        record(
            report,
            "direct SQLite",
            "alepha_jobs",
            lambda: alepha_latency(sqlite_url(db("alepha")), count),
        )
        if huey is not None:
            record(
                report, "huey", "huey", lambda: huey_latency(huey, db("huey"), count)
            )
    admin = postgres_admin()
    if admin is None:
        report.skip("Postgres latency", "server unreachable")
    else:
        procrastinate = peer("procrastinate", report)
        try:
            with postgres_database(admin) as url:
                record(
                    report,
                    "direct Postgres",
                    "alepha_jobs",
                    lambda: alepha_latency(url, count),
                )
            if procrastinate is not None:
                from bench_postgres import procrastinate_install

                with postgres_database(admin) as url:
                    procrastinate_install(procrastinate, url)
                    record(
                        report,
                        "procrastinate",
                        "procrastinate",
                        lambda: procrastinate_latency(procrastinate, url, count),
                    )
        finally:
            admin.close()
    report.add("1 ms (target)", "-", "ms", [1.0])
    report.add("10 ms (target)", "-", "ms", [10.0])
    report.target(
        Target("direct SQLite p50 / 1 ms", "direct SQLite p50", "1 ms (target)",
               at_most=1),
        Target("direct SQLite p99 / 10 ms", "direct SQLite p99", "10 ms (target)",
               at_most=1),
        Target("direct SQLite p50 / huey p50", "direct SQLite p50", "huey p50",
               at_most=1),
        Target("direct SQLite p50 / procrastinate p50", "direct SQLite p50",
               "procrastinate p50", at_most=1),
    )  # fmt: skip
    report.print()
    return report


if __name__ == "__main__":
    main()
