"""A process for tests/test_queue_processes.py, in one of three roles:

    python tests/queue_worker.py worker   DB QUEUE OUT
    python tests/queue_worker.py producer DB QUEUE FIRST COUNT
    python tests/queue_worker.py stall    DB QUEUE

``worker`` starts a queue-mode runtime that consumes until SIGTERM, then stops
(draining) and exits; each run appends its payload number to ``OUT``. It prints
``ready`` once consuming. ``producer`` pushes COUNT jobs numbered from FIRST
without starting a runtime (a web process, say), one ``push`` each, and prints
the seconds it took. ``stall`` consumes with one thread that pops a message,
prints ``popped <execution id>`` and then hangs before claiming it, so a test
can SIGKILL it at exactly that point.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import Any

from pydantic import BaseModel

from alepha_jobs import JobContext, Jobs, JobsConfig

NAME = "tests.numbered"
NEVER = "0 0 1 1 *"


class Numbered(BaseModel):
    n: int


def runtime(db: str, queue: str, record: Any = None) -> Jobs:
    jobs = Jobs(
        db,
        queue=queue,
        config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER, drain_timeout=30),
    )

    @jobs.job(NAME, schema=Numbered)
    def numbered(ctx: JobContext[Numbered]) -> None:
        """Record which payload ran."""
        if record is not None:
            record(ctx.payload.n)

    return jobs


def worker(db: str, queue: str, out: str) -> None:
    lock = threading.Lock()
    sink = open(out, "a", buffering=1)  # noqa: SIM115 (closed below)

    def record(n: int) -> None:
        with lock:
            sink.write(f"{n}\n")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    jobs = runtime(db, queue, record)
    jobs.start()
    print("ready", flush=True)
    stop.wait()
    jobs.stop()
    sink.close()


def producer(db: str, queue: str, first: int, count: int) -> None:
    jobs = runtime(db, queue)
    began = time.perf_counter()
    for n in range(first, first + count):
        jobs.push(NAME, {"n": n})
    print(f"pushed {count} in {time.perf_counter() - began:.2f}s", flush=True)
    jobs.close()


def stall(db: str, queue: str) -> None:
    jobs = runtime(db, queue)

    def popped_then_hang(job_name: str, execution_id: str) -> None:
        print(f"popped {execution_id}", flush=True)
        threading.Event().wait()

    jobs.start()
    jobs.dispatcher.bind(popped_then_hang, jobs.schedule_local_promotion)
    print("ready", flush=True)
    threading.Event().wait()


def main(role: str, *args: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(message)s")
    if role == "worker":
        worker(*args)
    elif role == "producer":
        producer(args[0], args[1], int(args[2]), int(args[3]))
    elif role == "stall":
        stall(*args)
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
