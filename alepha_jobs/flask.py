"""Flask integration: ``JobsExtension``, ``flask jobs ...``, the admin API and the
serverless cron route (DESIGN §8.8).

The runtime starts only in a process that serves: on its first request, at once
in the debug reloader's child, or from gunicorn's ``post_worker_init`` hook
(:func:`gunicorn_post_worker_init`); never in the reloader's parent, in the
gunicorn master or in ``flask`` commands. It stops when the process exits.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import threading
from typing import Any

import click
from flask import Blueprint, Flask, Response, request
from flask.cli import AppGroup, ScriptInfo

from .admin import AdminService
from .admin.http import admin_blueprint, bearer, same
from .admin.serial import parse_moment
from .app import Jobs
from .cli import ALL_COMMANDS
from .cli.export import COMMAND_KEY
from .cli.loading import set_loader
from .config import ENV_PREFIX, JobsConfig
from .cron.external import run_tick
from .errors import ConfigurationError, JobNotFoundError, JobsError, JobUsageError

logger = logging.getLogger(__name__)

EXTENSION_KEY = "alepha_jobs"
CRON_PREFIX = "/_alepha/cron"
SETTINGS = {field.name for field in dataclasses.fields(JobsConfig)} - {"random"}


def config_from(app: Flask) -> JobsConfig:
    """``JobsConfig`` from ``ALEPHA_JOBS_<SETTING>`` keys of ``app.config``; the
    environment and the defaults fill the rest."""
    values = {
        name: app.config[f"{ENV_PREFIX}{name.upper()}"]
        for name in SETTINGS
        if f"{ENV_PREFIX}{name.upper()}" in app.config
    }
    return JobsConfig(**values)


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


class JobsExtension:
    """Wire a :class:`Jobs` runtime into a Flask app.

    ``app.config`` keys: ``ALEPHA_JOBS_DATABASE_URL``, any ``ALEPHA_JOBS_<SETTING>``
    of :class:`JobsConfig`, ``ALEPHA_JOBS_START`` (``"auto"``, true or false),
    ``ALEPHA_JOBS_CONSUME`` and ``ALEPHA_JOBS_SCHEDULE`` (default true),
    ``ALEPHA_JOBS_ADMIN_TOKEN`` / ``ALEPHA_JOBS_ADMIN_READ_TOKEN`` (mount the admin
    API under ``/admin/jobs``), ``ALEPHA_JOBS_CRON_ROUTE`` (mount
    ``/_alepha/cron/<name>``) and ``CRON_SECRET``.

    :param jobs: an existing runtime; by default one is built from ``app.config``.
    """

    def __init__(self, app: Flask | None = None, *, jobs: Jobs | None = None) -> None:
        self._jobs = jobs
        self._lock = threading.Lock()
        self._started_pid: int | None = None
        self._consume = True
        self._schedule = True
        if app is not None:
            self.init_app(app)

    @property
    def jobs(self) -> Jobs:
        if self._jobs is None:
            raise ConfigurationError(
                "JobsExtension has no runtime yet: call init_app(app) or pass jobs="
            )
        return self._jobs

    def job(self, name: str, **options: Any) -> Any:
        """Shortcut for ``extension.jobs.job(...)``."""
        return self.jobs.job(name, **options)

    def init_app(self, app: Flask) -> None:
        """Build or adopt the runtime, mount the routes, plan the start."""
        if self._jobs is None:
            url = app.config.get(f"{ENV_PREFIX}DATABASE_URL")
            self._jobs = Jobs(url, config=config_from(app))
        app.extensions[EXTENSION_KEY] = self
        self._consume = _flag(app.config.get(f"{ENV_PREFIX}CONSUME", True), "CONSUME")
        self._schedule = _flag(
            app.config.get(f"{ENV_PREFIX}SCHEDULE", True), "SCHEDULE"
        )
        app.cli.add_command(self.cli_group())
        token = app.config.get(f"{ENV_PREFIX}ADMIN_TOKEN")
        if token:
            read_token = app.config.get(f"{ENV_PREFIX}ADMIN_READ_TOKEN")
            service = AdminService(self.jobs)
            app.register_blueprint(admin_blueprint(service, token, read_token))
        if _flag(app.config.get(f"{ENV_PREFIX}CRON_ROUTE", False), "CRON_ROUTE"):
            app.register_blueprint(cron_blueprint(self))
        self._plan_start(app)

    def _plan_start(self, app: Flask) -> None:
        mode = app.config.get(f"{ENV_PREFIX}START", "auto")
        if isinstance(mode, str) and mode.strip().lower() == "auto":
            if os.environ.get("WERKZEUG_RUN_MAIN") == "true":
                self.start()  # the debug reloader's child: it serves
            else:
                app.before_request(self._start_on_request)
        elif _flag(mode, "START"):
            self.start()

    def _start_on_request(self) -> None:
        if self._started_pid != os.getpid():
            self.start()

    def start(self) -> Jobs:
        """Start the runtime in this process (once); safe to call again."""
        with self._lock:
            if self._started_pid == os.getpid():
                return self.jobs
            if self._started_pid is not None:
                raise ConfigurationError(
                    "the jobs runtime was started before this process forked "
                    "(gunicorn --preload with ALEPHA_JOBS_START=true?); leave "
                    "ALEPHA_JOBS_START at 'auto' so each worker starts its own"
                )
            self.jobs.start(consume=self._consume, schedule=self._schedule)
            self._started_pid = os.getpid()
            logger.info(
                "alepha_jobs started in pid %d",
                self._started_pid,
                extra={"event": "flask.started", "pid": self._started_pid},
            )
            return self.jobs

    def stop(self) -> None:
        """Stop the runtime (it also stops by itself when the process exits)."""
        with self._lock:
            if self._started_pid == os.getpid():
                self.jobs.stop()
            self._started_pid = None

    def cli_group(self) -> click.Group:
        """``flask jobs ...``: the commands of ``alepha-jobs`` for this app."""

        @click.group("jobs", cls=AppGroup)
        @click.pass_context
        def group(ctx: click.Context) -> None:
            """Background jobs: run, inspect and administer them."""
            set_loader(ctx, lambda: self.jobs)
            info = ctx.find_object(ScriptInfo)
            program = shutil.which("flask") or "flask"
            path = info.app_import_path if info is not None else None
            app_part = f" --app {shlex.quote(path)}" if path else ""
            ctx.meta[COMMAND_KEY] = f"{program}{app_part} jobs"

        for command in ALL_COMMANDS:
            group.add_command(command)
        return group


def cron_blueprint(
    extension: JobsExtension | Jobs, secret: str | None = None
) -> Blueprint:
    """``/_alepha/cron/<name>`` (any method): one tick for an external scheduler.

    ``CRON_SECRET`` (``secret``, else ``app.config``, else the environment), when
    set, must arrive as ``Authorization: Bearer <secret>``: else 401. An optional
    ``scheduled_at`` (query, form or JSON) names the instant; without it the
    current minute stands in. 200 ``ok``, also for a name nobody registered; 500
    ``cron failed`` when the tick raised.
    """
    blueprint = Blueprint("alepha_jobs_cron", __name__, url_prefix=CRON_PREFIX)
    methods = ["GET", "POST", "PUT"]

    def jobs() -> Jobs:
        return extension if isinstance(extension, Jobs) else extension.jobs

    @blueprint.route("/<path:name>", methods=methods)
    def tick(name: str) -> Response:
        expected = secret or _configured_secret()
        given = bearer(request.headers.get("Authorization"))
        if expected and not same(given, expected):
            return Response("Unauthorized", 401, mimetype="text/plain")
        try:
            text = _scheduled_at()
            instant = parse_moment(text, "scheduled_at") if text else None
        except JobsError as error:
            return Response(str(error), 400, mimetype="text/plain")
        try:
            result = run_tick(jobs(), name, instant)
        except (JobNotFoundError, JobUsageError) as error:
            logger.warning("cron route: %s", error, extra={"event": "cron.unknown"})
            return Response("ok", 200, mimetype="text/plain")
        except Exception:
            logger.exception(
                "cron route: %s failed", name, extra={"event": "cron.route_failed"}
            )
            return Response("cron failed", 500, mimetype="text/plain")
        response = Response("ok", 200, mimetype="text/plain")
        response.headers["X-Alepha-Cron-Ran"] = "true" if result.ran else "false"
        return response

    return blueprint


def _configured_secret() -> str | None:
    from flask import current_app

    value = current_app.config.get("CRON_SECRET") or os.environ.get("CRON_SECRET")
    return str(value) if value else None


def _scheduled_at() -> str | None:
    value = request.args.get("scheduled_at") or request.form.get("scheduled_at")
    if value:
        return value
    body = request.get_json(silent=True)
    if isinstance(body, dict) and body.get("scheduled_at"):
        return str(body["scheduled_at"])
    return None


def _extension_of(wsgi: Any) -> JobsExtension | None:
    for _ in range(10):  # unwrap WSGI middlewares that keep .app
        extensions = getattr(wsgi, "extensions", None)
        if isinstance(extensions, dict) and EXTENSION_KEY in extensions:
            return extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
        wsgi = getattr(wsgi, "app", None) or getattr(wsgi, "wsgi_app", None)
        if wsgi is None:
            return None
    return None


def gunicorn_post_worker_init(worker: Any) -> None:
    """gunicorn hook: start the runtime as each worker boots (not on its first
    request). In ``gunicorn.conf.py``: ``from alepha_jobs.flask import
    gunicorn_post_worker_init as post_worker_init``."""
    extension = _extension_of(worker.wsgi)
    if extension is not None:
        extension.start()


def gunicorn_worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: drain and stop the runtime as the worker leaves."""
    extension = _extension_of(getattr(worker, "wsgi", None))
    if extension is not None:
        extension.stop()
