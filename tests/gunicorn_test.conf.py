"""gunicorn settings for tests/test_gunicorn.py: the example's hooks, plus a line
in the log once each worker's runtime started."""

import os

from alepha_jobs.flask import gunicorn_post_worker_init, gunicorn_worker_exit

workers = 3
graceful_timeout = 10
worker_exit = gunicorn_worker_exit


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    gunicorn_post_worker_init(worker)
    with open(os.environ["FLASK_CRON_APP_LOG"], "a", encoding="utf-8") as log:
        log.write(f"booted {os.getpid()}\n")
