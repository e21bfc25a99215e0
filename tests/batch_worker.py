"""A direct-mode runtime killed mid-batch, for tests/test_batches.py:

    python -m tests.batch_worker URL OUT COUNT BLOCK_AT

It runs the default dispatcher with 2 workers. Each run appends its payload
number to ``OUT``; the run numbered ``BLOCK_AT`` hangs after writing it, so a
test can SIGKILL the process with a batch half done. Five warm-up runs first
(numbered below zero) teach the runtime that the job is quick.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from pydantic import BaseModel

from alepha_jobs import JobContext, Jobs, JobsConfig, Retention, Rule

NAME = "tests.batched"
NEVER = "0 0 1 1 *"
WORKERS = 2
KEEP = Retention(ok=Rule(last=10_000), error=Rule(last=10_000))


class Numbered(BaseModel):
    n: int


def runtime(url: str, out: str, block_at: int | None) -> tuple[Jobs, Any]:
    """A runtime whose job ``NAME`` records each run in ``out``; its crash
    threshold is half a second (the job's timeout is 250 ms)."""
    config = JobsConfig(
        direct_max_concurrency=WORKERS, sweep_cron=NEVER, trim_cron=NEVER
    )
    jobs = Jobs(url, config=config)

    @jobs.job(NAME, schema=Numbered, retention=KEEP, timeout="250ms")
    def numbered(ctx: JobContext[Numbered]) -> None:
        """Append the number; hang on ``block_at``."""
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(f"{ctx.payload.n}\n")
        if ctx.payload.n == block_at:
            threading.Event().wait()

    return jobs, numbered


def main(url: str, out: str, count: int, block_at: int) -> None:
    jobs, numbered = runtime(url, out, block_at)
    jobs.start()
    numbered.push_many([{"n": n} for n in range(-5, 0)])
    jobs.drain(30)
    numbered.push_many([{"n": n} for n in range(count)])
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
