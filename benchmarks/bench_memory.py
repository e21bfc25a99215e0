"""Memory: peak RSS of a process draining a backlog of no-op jobs, against huey.

Each figure comes from a fresh child process that fills an SQLite queue (rows
pushed in chunks of 1,000, nobody consuming), then drains it with 4 workers and
reports its peak resident set size (``ru_maxrss``). alepha_jobs drains through
the pickup of a started runtime, which takes only as many rows as it has idle
workers; huey through a consumer with 4 thread workers. Measured at three sizes
to show whether memory stays flat as the count grows.

    python benchmarks/bench_memory.py            # 25,000 / 50,000 / 100,000 jobs
    python benchmarks/bench_memory.py --quick
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import (
    Report,
    Target,
    alepha_runtime,
    parse_args,
    peer,
    scratch,
    sqlite_url,
)

WORKERS = 4
CHUNK = 1_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def alepha_child(path: Path, count: int) -> None:
    done = threading.Event()
    left = [count]
    lock = threading.Lock()

    def ran(ctx: object) -> None:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    jobs, noop = alepha_runtime(
        sqlite_url(path), workers=WORKERS, handler=ran, pickup_delay=0.05
    )
    for start in range(0, count, CHUNK):
        noop.push_many([{"n": n} for n in range(start, min(count, start + CHUNK))])
    jobs.start()
    finished = done.wait(1_800)
    jobs.close()
    if not finished:
        raise RuntimeError(f"{left[0]} jobs not run")


def huey_child(path: Path, count: int) -> None:
    import huey
    from bench_push import huey_app
    from huey.consumer import Consumer

    app = huey_app(huey, path, None)
    done = threading.Event()
    left = [count]
    lock = threading.Lock()

    @app.task()  # type: ignore[misc]
    def noop(n: int) -> None:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    for n in range(count):
        noop(n)
    consumer = Consumer(app, workers=WORKERS, worker_type="thread", periodic=False)
    consumer.start()
    finished = done.wait(1_800)
    consumer.stop(graceful=True)
    if not finished:
        raise RuntimeError(f"{left[0]} jobs not run")


def child(system: str, path: str, count: int) -> None:
    began = time.perf_counter()
    {"alepha_jobs": alepha_child, "huey": huey_child}[system](Path(path), count)
    elapsed = time.perf_counter() - began
    print(json.dumps({"peak_mb": peak_rss_mb(), "seconds": elapsed}))


def measure(system: str, directory: Path, count: int, run: int) -> float:
    path = directory / f"{system}-{count}-{run}.db"
    output = subprocess.run(
        [sys.executable, __file__, "--child", system, str(path), str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path.unlink()
    return float(json.loads(output.strip().splitlines()[-1])["peak_mb"])


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(__doc__.splitlines()[0], argv)
    sizes = (500, 1_000, 2_000) if args.quick else (25_000, 50_000, 100_000)
    report = Report(f"Peak RSS draining {sizes[-1]:,} jobs, {WORKERS} workers", args)
    huey = peer("huey", report)
    runs = iter(range(1_000))
    with scratch() as directory:
        for count in sizes:
            report.measure(
                f"alepha_jobs {count:,}",
                "alepha_jobs",
                "MB",
                lambda count=count: measure(
                    "alepha_jobs", directory, count, next(runs)
                ),
            )
        if huey is not None:
            for count in (sizes[0], sizes[-1]):
                report.measure(
                    f"huey {count:,}",
                    "huey",
                    "MB",
                    lambda count=count: measure("huey", directory, count, next(runs)),
                )
    small, large = f"{sizes[0]:,}", f"{sizes[-1]:,}"
    report.target(
        Target(f"alepha_jobs / huey at {large}", f"alepha_jobs {large}",
               f"huey {large}", at_most=1.5),
        Target(f"alepha_jobs {large} / {small} (flat)", f"alepha_jobs {large}",
               f"alepha_jobs {small}", at_most=1.1),
    )  # fmt: skip
    report.print()
    return report


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
