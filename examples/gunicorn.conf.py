"""gunicorn settings for examples/flask_app.py: each worker starts its own jobs
runtime as it boots and drains it as it leaves. Cron still runs once per instant:
the instant claim lives in the shared database."""

from alepha_jobs.flask import gunicorn_post_worker_init as post_worker_init  # noqa: F401
from alepha_jobs.flask import gunicorn_worker_exit as worker_exit  # noqa: F401

workers = 3
bind = "127.0.0.1:8000"
graceful_timeout = 15  # more than ALEPHA_JOBS_DRAIN_TIMEOUT
