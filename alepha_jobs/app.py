"""``Jobs``: wires the store, the dispatcher, the timers, the sweep and the trim."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel

from . import delivery, lifecycle, payloads, pushing
from . import sweep as _sweep
from . import trim as _trim
from .config import JobsConfig
from .context import AbortSignal, RescheduleIntent
from .cron.expression import CronExpression
from .cron.runner import CronRunner
from .cron.scheduler import Scheduler
from .definition import Handler, Job, JobDefinition, Middleware, define
from .dispatch.base import Dispatcher
from .dispatch.direct import DirectDispatcher
from .dispatch.pickup import Pickup
from .dispatch.redis_queue import RedisQueue
from .dispatch.timers import Timekeeper, Timer
from .durations import DurationLike
from .errors import (
    ConfigurationError,
    InvalidCronExpression,
    JobNotFoundError,
    JobUsageError,
)
from .events import Emitter, Listener
from .execution import Pace, batchable, process, process_many
from .lease import Lease
from .locks.base import LockStore
from .locks.database import DatabaseLockStore
from .options import Retention, Retry
from .store.base import Execution, ExecutionQuery, Store
from .store.listing import Page, build_query
from .store.sqlite import SqliteStore

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///alepha_jobs.db"


def open_store(url: str) -> Store:
    """Open the outbox named by ``url``.

    :raises ConfigurationError: the URL names no supported database.
    :raises StoreError: the database cannot be opened or migrated.
    """
    if url.startswith("sqlite:"):
        return SqliteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        from .store.postgres import PostgresStore

        return PostgresStore(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ConfigurationError(
        f"unsupported database URL scheme {scheme!r} in {url!r}; this version "
        "supports sqlite:///path/to/file.db and postgresql://user@host/database"
    )


def _config_cron(name: str, expression: str) -> CronExpression:
    try:
        return CronExpression(expression)
    except InvalidCronExpression as error:
        raise ConfigurationError(f"{name}: {error}") from None


class Jobs:
    """A job runtime: register jobs, ``start()`` it, push work.

    :param url: the outbox database; default ``ALEPHA_JOBS_DATABASE_URL``, else
        ``sqlite:///alepha_jobs.db``.
    :param config: settings; default :class:`JobsConfig` from the environment.
    :param queue: a ``redis://host:port/db`` URL: queue mode, where any process
        that calls :meth:`start` consumes (options ``?prefix=`` for the key
        prefix, default ``queue``, and ``?concurrency=`` for consumer threads,
        default ``direct_max_concurrency``).
    :param dispatcher: a custom :class:`~alepha_jobs.dispatch.base.Dispatcher`
        (advanced; the default is the direct, in-process pool).
    :param locks: where cron locks live; default the outbox database (with
        ``queue=``, the same Redis server and prefix), so cron runs once per
        instant across every process that shares it.
    :raises ConfigurationError: the URL or a setting is invalid, or ``queue=``
        is given without the ``redis`` extra installed.
    :raises StoreError: the database cannot be opened or is not a database.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        queue: str | None = None,
        config: JobsConfig | None = None,
        dispatcher: Dispatcher | None = None,
        locks: LockStore | None = None,
    ) -> None:
        self.config = config if config is not None else JobsConfig()
        queue_dispatcher = self._open_queue(queue, dispatcher)
        database_url = url or os.environ.get("ALEPHA_JOBS_DATABASE_URL")
        self._housekeeping = {
            "system.jobs.sweep": _config_cron("sweep_cron", self.config.sweep_cron),
            "system.jobs.trim": _config_cron("trim_cron", self.config.trim_cron),
        }
        self.store = open_store(database_url or DEFAULT_DATABASE_URL)
        self.dispatcher = (
            dispatcher
            or queue_dispatcher
            or DirectDispatcher(self.config.direct_max_concurrency)
        )
        self.dispatcher.bind(self.process_execution, self.schedule_local_promotion)
        self.locks = locks if locks is not None else self._default_locks()
        self.cron = CronRunner(self, self.locks)
        self.events = Emitter()
        self.timekeeper = Timekeeper()
        self.lease = Lease(self.store)
        self.pace = Pace()
        if isinstance(self.dispatcher, DirectDispatcher):
            self.dispatcher.bind_batches(self.process_executions, self.batchable)
        self.signals: dict[str, AbortSignal] = {}
        self._promotions: dict[str, Timer] = {}
        self._definitions: dict[str, JobDefinition] = {}
        self._handles: dict[str, Job] = {}
        self._state = threading.Condition()
        self._in_flight = 0
        self._started = False
        self._stopping = False
        self._scheduler: Scheduler | None = None
        self._pickup: Pickup | None = None

    def _open_queue(
        self, queue: str | None, dispatcher: Dispatcher | None
    ) -> Dispatcher | None:
        if queue is None:
            return None
        if dispatcher is not None:
            raise ConfigurationError("pass queue= or dispatcher=, not both")
        return RedisQueue(
            queue, self.config.direct_max_concurrency, lambda: self._stopping
        )

    def _default_locks(self) -> LockStore:
        if isinstance(self.dispatcher, RedisQueue):
            return self.dispatcher.lock_store()
        if isinstance(self.store, SqliteStore):
            return DatabaseLockStore(self.store)
        from .store.postgres import PostgresStore

        if isinstance(self.store, PostgresStore):
            from .locks.postgres import PostgresLockStore

            return PostgresLockStore(self.store)
        raise ConfigurationError(f"no default lock store for {self.store.url!r}")

    # registration

    def job(
        self,
        name: str,
        *,
        description: str | None = None,
        schema: type[BaseModel] | None = None,
        cron: str | None = None,
        timezone: str = "UTC",
        retry: Retry | None = None,
        lock: bool = True,
        timeout: DurationLike | None = None,
        inline: bool = False,
        retention: Retention | None = None,
        use: Sequence[Middleware] = (),
        catch_up: bool = False,
    ) -> Callable[[Handler], Job]:
        """Register the decorated function as the handler of job ``name``.

        :raises RegistrationError: an option breaks a rule of SPEC §1.2.
        """

        def register(handler: Handler) -> Job:
            definition = define(
                handler,
                name=name,
                description=description,
                schema=schema,
                cron=cron,
                timezone=timezone,
                retry=retry,
                lock=lock,
                timeout=timeout,
                inline=inline,
                retention=retention,
                use=use,
                catch_up=catch_up,
                registered=self._definitions.__contains__,
            )
            handle = Job(self, definition)
            self._definitions[name] = definition
            self._handles[name] = handle
            if definition.cron is not None and self._scheduler is not None:
                self._scheduler.add(name, definition.cron, self.cron.scheduled, name)
            logger.debug(
                "registered %s (%s, retries %s)",
                name,
                definition.cron.expression if definition.cron else "queue",
                definition.retry.retries if definition.retry else 0,
            )
            return handle

        return register

    @property
    def registry(self) -> Mapping[str, Job]:
        """Registered jobs by name (read-only)."""
        return MappingProxyType(self._handles)

    def definition(self, name: str) -> JobDefinition | None:
        return self._definitions.get(name)

    def definitions(self) -> list[JobDefinition]:
        return list(self._definitions.values())

    def registered_names(self) -> list[str]:
        return list(self._definitions)

    def _queue_job(self, name: str) -> JobDefinition:
        definition = self._definitions.get(name)
        if definition is None:
            raise JobNotFoundError(f"Job not registered: {name}")
        if definition.kind == "cron":
            raise JobUsageError(
                f"Job '{name}' is a cron job, not queue-mode: it takes no payload; "
                "call trigger() to run it now"
            )
        return definition

    def effective_mode(self, name: str) -> Literal["cron", "direct", "queue"]:
        """``cron`` for cron jobs, else the dispatcher's kind."""
        definition = self._definitions.get(name)
        if definition is None:
            raise JobNotFoundError(f"Job not registered: {name}")
        return "cron" if definition.kind == "cron" else self.dispatcher.kind

    def describe_retention(self, name: str) -> dict[str, Any]:
        definition = self._definitions.get(name)
        if definition is None:
            raise JobNotFoundError(f"Job not registered: {name}")
        return definition.retention.describe(self.config.retention_error_days)

    def on(self, event: str, listener: Listener) -> None:
        """Call ``listener(JobEvent)`` on ``job:begin``, ``job:success``,
        ``job:error``, ``job:cancel`` or ``job:end``."""
        self.events.on(event, listener)

    # pushing

    def push(self, name: str, payload: Any, **options: Any) -> str:
        """Push to job ``name``; see :meth:`Job.push`."""
        return pushing.push(self, self._queue_job(name), payload, **options)

    def push_many(self, name: str, items: Sequence[Any]) -> list[str]:
        """Push many to job ``name``; see :meth:`Job.push_many`."""
        if not items:
            return []
        return pushing.push_many(self, self._queue_job(name), list(items))

    def cancel(
        self,
        execution_id: str,
        *,
        cancelled_by: str | None = None,
        cancelled_by_name: str | None = None,
        job_name: str | None = None,
    ) -> None:
        """Cancel a live execution.

        :raises ExecutionNotFoundError: no such execution.
        :raises InvalidStateError: it already ended.
        """
        pushing.cancel(self, execution_id, cancelled_by, cancelled_by_name, job_name)

    def cancel_by_key(
        self,
        name: str,
        key: str,
        *,
        cancelled_by: str | None = None,
        cancelled_by_name: str | None = None,
    ) -> str | None:
        """Cancel the pending or scheduled row of job ``name`` holding ``key``."""
        definition = self._definitions.get(name)
        if definition is None:
            raise JobNotFoundError(f"Job not registered: {name}")
        return pushing.cancel_by_key(
            self, definition, key, cancelled_by, cancelled_by_name
        )

    def trigger(
        self,
        name: str,
        payload: Any = None,
        *,
        triggered_by: str | None = None,
        triggered_by_name: str | None = None,
    ) -> None:
        """Run job ``name`` now (SPEC §2.5)."""
        definition = self._definitions.get(name)
        if definition is None:
            raise JobNotFoundError(f"Job not registered: {name}")
        if definition.kind == "cron":
            if payload is not None:
                raise JobUsageError(f"Job '{name}' is a cron job: it takes no payload")
            pushing.check_text("triggered_by", triggered_by)
            pushing.check_text("triggered_by_name", triggered_by_name)
            self.cron.tick(definition, None, triggered_by, triggered_by_name)
            return
        if not payload:
            raise JobUsageError(
                f"Job '{name}' is a queue job: a payload is required to trigger it"
            )
        pushing.push(
            self,
            definition,
            payload,
            triggered_by=triggered_by,
            triggered_by_name=triggered_by_name,
        )

    def reschedule_intent(
        self, definition: JobDefinition, inline: bool, payload: Any
    ) -> Callable[..., RescheduleIntent]:
        """What ``JobContext.reschedule`` calls for one run (SPEC §2.6)."""

        def reschedule(
            *, delay: Any, scheduled_at: datetime | None, payload: Any
        ) -> RescheduleIntent:
            if inline or definition.kind == "cron":
                where = "an inline push" if inline else "a cron job"
                raise JobUsageError(
                    f"reschedule() cannot be used in {where}: there is no queued "
                    "row to park; push a new execution instead"
                )
            when = pushing.start_time(delay, scheduled_at)
            if when is None:
                raise JobUsageError("reschedule() needs delay=... or scheduled_at=...")
            data = current if payload is None else _validated(payload)
            return RescheduleIntent(scheduled_at=when, payload=data)

        def _validated(value: Any) -> dict[str, Any]:
            assert definition.schema is not None
            return payloads.validate(definition.name, definition.schema, value)

        current = payload
        return reschedule

    # delivery

    @property
    def stopping(self) -> bool:
        return self._stopping

    def process_execution(self, job_name: str, execution_id: str) -> None:
        """Claim and run one execution (the dispatchers' entry point)."""
        process(self, job_name, execution_id)

    def process_executions(self, job_name: str, execution_ids: list[str]) -> None:
        """Claim and run several executions of one job (direct-mode batches)."""
        process_many(self, job_name, execution_ids)

    def batchable(self, job_name: str) -> bool:
        return batchable(self, job_name)

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a run as in flight, for :meth:`drain` and :meth:`stop`."""
        with self._state:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._state:
                self._in_flight -= 1
                self._state.notify_all()

    def dispatch_safe(self, job_name: str, execution_id: str) -> None:
        """Dispatch now, logging instead of raising (the row is the truth)."""
        delivery.dispatch_safe(self, job_name, execution_id)

    def dispatch_at(self, job_name: str, execution_id: str, when: datetime) -> None:
        """A delayed dispatch; a transport that declines falls back to a timer."""
        delivery.dispatch_at(self, job_name, execution_id, when)

    def schedule_local_promotion(
        self, job_name: str, execution_id: str, delay_seconds: float
    ) -> None:
        """Arm a timer that promotes the row when due (SPEC §4.2); beyond 24 h the
        sweep delivers it instead."""
        delivery.schedule_local_promotion(self, job_name, execution_id, delay_seconds)

    def forget_promotion(self, execution_id: str) -> None:
        """Disarm the local timer of a row that left ``scheduled`` (a cancel)."""
        delivery.forget_promotion(self, execution_id)

    def dispatch_scheduled(self, job_name: str, execution_id: str) -> None:
        """Promote a due ``scheduled`` row (T6) and dispatch it; re-arm if early."""
        delivery.dispatch_scheduled(self, job_name, execution_id)

    # lifecycle

    def start(self, consume: bool = True, schedule: bool = True) -> Jobs:
        """Start the timers, the sweep and trim, and (with ``consume``) the pool.

        Runs one sweep at once. Calling it twice is harmless.

        :param consume: run queue handlers in this process.
        :param schedule: fire cron jobs and the periodic sweep and trim here;
            ``False`` makes a consumer only (``alepha-jobs worker``).
        """
        lifecycle.start(self, consume, schedule)
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop claiming, wait for runs in flight, then abort the rest; all within
        ``timeout`` (default ``drain_timeout``). Return whether everything settled.

        Queued executions stay ``pending`` for another process or the next start.
        """
        return lifecycle.stop(self, timeout)

    def _stop_at_exit(self) -> None:
        self.stop()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until this process has nothing queued, running or waiting on a
        local timer; return ``False`` if ``timeout`` seconds passed first."""
        return lifecycle.drain(self, timeout)

    def __enter__(self) -> Jobs:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # housekeeping and inspection

    def sweep(self) -> _sweep.SweepReport:
        """Run the reconciliation sweep once (SPEC §5.2)."""
        if self._stopping:
            return _sweep.SweepReport()
        return _sweep.sweep(self)

    def trim(self) -> _trim.TrimReport:
        """Run the trim once (SPEC §5.7)."""
        if self._stopping:
            return _trim.TrimReport()
        return _trim.trim(self)

    def get_execution(self, execution_id: str) -> Execution | None:
        """The row with ``execution_id``, or ``None``."""
        if isinstance(execution_id, str) and payloads.text_problem(execution_id):
            return None  # no store can hold it, and Postgres would refuse to look
        return self.store.get(execution_id)

    def executions(self, job_name: str | None = None, **filters: Any) -> Page:
        """A page of executions, filtered and sorted as SPEC §10.4 describes.

        :param filters: ``status`` (one or a list), ``trigger`` (``scheduled``,
            ``manual`` or ``code``), ``started_from``/``started_to`` (inclusive),
            ``key`` (substring), ``sort`` (default ``-created_at``), ``page``
            (from 0) and ``size`` (default 20).
        :raises InvalidArgumentError: a filter value is not allowed.
        """
        if job_name is not None and job_name not in self._definitions:
            raise JobNotFoundError(f"Job not registered: {job_name}")
        query: ExecutionQuery = build_query(job_name, **filters)
        rows, total = self.store.list(query)
        return Page(rows, total, query.page, query.size)

    def close(self) -> None:
        """Stop, then close the lock store and the database connections."""
        self.stop()
        self.locks.close()
        self.dispatcher.close()
        self.store.close()
