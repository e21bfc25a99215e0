"""The application the command tests point ``--app`` at.

``tests.cli_app:current`` returns the runtime a test installed (CliRunner tests);
``tests.cli_app:build`` builds one from the environment (subprocess tests):
``ALEPHA_JOBS_DATABASE_URL`` and the other ``ALEPHA_JOBS_*`` settings, plus
``CLI_APP_LOG``, a file each run appends a line to.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pydantic import BaseModel

from alepha_jobs import JobContext, Jobs, Retention, Rule

CURRENT: Jobs | None = None


class Echo(BaseModel):
    text: str


class Sleep(BaseModel):
    seconds: float
    release: str | None = None  # a file whose appearance starts the countdown


def record(line: str) -> None:
    path = os.environ.get("CLI_APP_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


def register(jobs: Jobs) -> Jobs:
    """Add the test jobs to ``jobs``."""

    @jobs.job("tests.echo", schema=Echo)
    def echo(ctx: JobContext[Echo]) -> None:
        """Write the text to the log."""
        record(f"echo {ctx.payload.text}")

    @jobs.job("tests.tick", cron="* * * * *")
    def tick(ctx: JobContext[None]) -> None:
        """Record the instant."""
        record(f"tick {ctx.now.isoformat()}")

    @jobs.job("tests.broken", cron="0 0 1 1 *")
    def broken(ctx: JobContext[None]) -> None:
        """Fail every time."""
        raise RuntimeError("broken on purpose")

    @jobs.job("tests.sleep", schema=Sleep, retention=Retention(ok=Rule(last=100)))
    def sleep(ctx: JobContext[Sleep]) -> None:
        """Block like an uncooperative call: the abort signal is ignored."""
        pause = threading.Event()
        release = ctx.payload.release
        while release and not Path(release).exists():
            pause.wait(0.02)
        record(f"sleep {ctx.payload.seconds} started")
        pause.wait(ctx.payload.seconds)
        record(f"sleep {ctx.payload.seconds} done")

    return jobs


def current() -> Jobs:
    assert CURRENT is not None, "the test did not install a runtime"
    return CURRENT


def build() -> Jobs:
    return register(Jobs())
