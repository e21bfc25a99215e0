"""A Flask app for the gunicorn test: a cron job every second records which worker
ran which instant. Settings come from the environment (``FLASK_CRON_APP_DB``,
``FLASK_CRON_APP_LOG``)."""

from __future__ import annotations

import os

from flask import Flask

from alepha_jobs import JobContext
from alepha_jobs.flask import JobsExtension

NEVER = "0 0 1 1 *"

app = Flask(__name__)
app.config.from_mapping(
    ALEPHA_JOBS_DATABASE_URL=os.environ["FLASK_CRON_APP_DB"],
    ALEPHA_JOBS_SWEEP_CRON=NEVER,
    ALEPHA_JOBS_TRIM_CRON=NEVER,
    ALEPHA_JOBS_DRAIN_TIMEOUT=2,
)
extension = JobsExtension(app)


def record(line: str) -> None:
    # One short O_APPEND write per line: lines from the workers never interleave.
    with open(os.environ["FLASK_CRON_APP_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\n")


@extension.jobs.job("tests.every-second", cron="* * * * * *")
def every_second(ctx: JobContext[None]) -> None:
    """Record the instant and the worker."""
    record(f"tick {os.getpid()} {ctx.now.isoformat()}")


@app.get("/")
def index() -> dict[str, int]:
    return {"pid": os.getpid()}
