"""Job definitions: the options of ``Jobs.job``, their validation (SPEC §1.2) and
the :class:`Job` handle users push through."""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from . import clock
from .durations import DurationLike, to_timedelta
from .errors import RegistrationError
from .options import PushItem, Retention, Retry
from .retention import EffectiveRetention, check_rule, resolve

if TYPE_CHECKING:
    from .app import Jobs
    from .context import JobContext
    from .cron.expression import CronExpression

NAME_PATTERN = re.compile(
    r"^(system\.)?[a-z0-9]+(-[a-z0-9]+)*\.[a-z0-9]+(-[a-z0-9]+)*$"
)
DESCRIPTION_LIMIT = 255
RESERVED_NAMES = ("system.jobs.sweep", "system.jobs.trim")

Handler = Callable[["JobContext[Any]"], Any]
Middleware = Callable[["JobContext[Any]", Callable[[], Any]], Any]


@dataclasses.dataclass(frozen=True)
class JobDefinition:
    """A registered job: its handler and validated options."""

    name: str
    description: str
    handler: Handler
    schema: type[BaseModel] | None
    cron: CronExpression | None
    retry: Retry | None
    lock: bool
    timeout: timedelta | None
    inline: bool
    retention: EffectiveRetention
    use: tuple[Middleware, ...]
    catch_up: bool = False

    @property
    def kind(self) -> Literal["cron", "queue"]:
        return "cron" if self.cron is not None else "queue"

    @property
    def max_attempts(self) -> int:
        return self.retry.max_attempts if self.retry else 1

    def crash_threshold(self, run_timeout: timedelta) -> timedelta:
        """How long a ``running`` row may go unrenewed before it counts as crashed."""
        return 2 * self.timeout if self.timeout else run_timeout

    def wrapped_handler(self) -> Handler:
        """The handler inside its middlewares, first declared outermost."""
        handler = self.handler
        for middleware in reversed(self.use):
            handler = _wrap(middleware, handler)
        return handler


def _wrap(middleware: Middleware, inner: Handler) -> Handler:
    def call(ctx: JobContext[Any]) -> Any:
        return middleware(ctx, lambda: inner(ctx))

    return call


def define(
    handler: Handler,
    *,
    name: str,
    description: str | None,
    schema: type[BaseModel] | None,
    cron: str | None,
    timezone: str,
    retry: Retry | None,
    lock: bool,
    timeout: DurationLike | None,
    inline: bool,
    retention: Retention | None,
    use: Sequence[Middleware],
    catch_up: bool,
    registered: Callable[[str], bool],
) -> JobDefinition:
    """Validate a job's options in the order of SPEC §1.2 and build its definition.

    :raises RegistrationError: with the message SPEC §1.2 gives for the first
        rule the options break.
    """
    description = _check_identity(handler, name, description, registered)
    _check_shape(name, schema, cron, inline, retry)
    _check_retry(name, retry)
    _check_retention(name, retention)
    if cron is None and timezone != "UTC":
        raise RegistrationError(
            f"Job '{name}': timezone applies to cron jobs only; a queue job's "
            "delay and scheduled_at are absolute (pass an aware datetime)"
        )
    expression = _parse_cron(name, cron, timezone) if cron is not None else None
    fire_times = expression.upcoming(clock.now(), 10) if expression else []
    return JobDefinition(
        name=name,
        description=description,
        handler=_check_handler(name, handler),
        schema=schema,
        cron=expression,
        retry=retry,
        lock=bool(lock),
        timeout=_check_timeout(name, timeout),
        inline=bool(inline),
        retention=resolve(retention, "cron" if cron else "queue", fire_times),
        use=_check_use(name, use),
        catch_up=_check_catch_up(name, cron, catch_up),
    )


def _check_identity(
    handler: Handler,
    name: str,
    description: str | None,
    registered: Callable[[str], bool],
) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise RegistrationError(
            f"Invalid job name {name!r}: a name is '<domain>.<action>' in lowercase "
            "kebab-case, such as 'emails.send-welcome' (an optional 'system.' "
            "prefix is reserved for framework jobs)"
        )
    text = description if description is not None else _first_doc_line(handler)
    if not isinstance(text, str) or not text.strip():
        raise RegistrationError(
            f"Job '{name}' has no description: pass description=... or give the "
            "handler a docstring whose first line says what it does"
        )
    if len(text) > DESCRIPTION_LIMIT:
        raise RegistrationError(
            f"Job '{name}': description is {len(text)} characters; keep it to "
            f"at most {DESCRIPTION_LIMIT}"
        )
    if registered(name) or name in RESERVED_NAMES:
        raise RegistrationError(f"Job already registered: {name}")
    return text.strip()


def _first_doc_line(handler: Handler) -> str | None:
    doc = inspect.getdoc(handler)
    return doc.strip().splitlines()[0] if doc and doc.strip() else None


def _check_shape(
    name: str,
    schema: type[BaseModel] | None,
    cron: str | None,
    inline: bool,
    retry: Retry | None,
) -> None:
    if cron is not None and schema is not None:
        raise RegistrationError(
            f"Job '{name}' declares both cron and schema: a job is either cron "
            "(fires on a schedule) or queue (runs pushed payloads); split it in two"
        )
    if cron is None and schema is None:
        raise RegistrationError(
            f"Job '{name}' declares neither cron nor schema: give cron='...' for a "
            "scheduled job or schema=SomeModel for a queue job"
        )
    if schema is not None and not (
        isinstance(schema, type) and issubclass(schema, BaseModel)
    ):
        raise RegistrationError(
            f"Job '{name}': schema must be a pydantic BaseModel subclass, got "
            f"{schema!r}"
        )
    if inline and cron is not None:
        raise RegistrationError(
            f"Job '{name}': inline=True with cron makes no sense, a tick has "
            "no caller to block"
        )
    if inline and retry is not None:
        raise RegistrationError(
            f"Job '{name}': inline and retry cannot both be the default; keep "
            "retry and pass inline=True on the pushes that must run in the caller"
        )


def _check_retry(name: str, retry: Retry | None) -> None:
    if retry is None:
        return
    if not isinstance(retry, Retry):
        raise RegistrationError(f"Job '{name}': retry must be a Retry(...)")
    factor = retry.backoff.factor if retry.backoff else 2
    valid = isinstance(factor, (int, float)) and not isinstance(factor, bool)
    if not valid or math.isnan(factor) or factor < 1:
        raise RegistrationError(
            f"Job '{name}': retry backoff factor must be at least 1, got {factor!r}; "
            "a smaller factor would make each retry come sooner than the last"
        )


def _check_retention(name: str, retention: Retention | None) -> None:
    if retention is None:
        return
    if not isinstance(retention, Retention):
        raise RegistrationError(
            f"Job '{name}': retention must be a Retention(ok=..., error=...)"
        )
    for status in ("ok", "error"):
        problem = check_rule(name, status, getattr(retention, status))
        if problem:
            raise RegistrationError(problem)


def _parse_cron(name: str, cron: str, timezone: str) -> CronExpression:
    from .cron.expression import CronExpression

    try:
        return CronExpression(cron, timezone)
    except RegistrationError as error:
        if str(error).startswith("Unknown time zone"):  # the expression is fine
            raise type(error)(f"Job '{name}': {error}") from error
        prefix = f"Invalid cron expression '{cron}'"
        detail = str(error).removeprefix(prefix).lstrip(": ")
        raise type(error)(f"{prefix} for job '{name}': {detail}") from error


def _check_handler(name: str, handler: Handler) -> Handler:
    if not callable(handler):
        raise RegistrationError(f"Job '{name}': the handler must be callable")
    return handler


def _check_timeout(name: str, timeout: DurationLike | None) -> timedelta | None:
    if timeout is None:
        return None
    try:
        value = to_timedelta(timeout, f"timeout of job '{name}'")
    except ValueError as error:
        raise RegistrationError(str(error)) from None
    if value <= timedelta(0):
        raise RegistrationError(f"Job '{name}': timeout must be more than zero")
    return value


def _check_use(name: str, use: Sequence[Middleware]) -> tuple[Middleware, ...]:
    middlewares = tuple(use or ())
    if not all(callable(middleware) for middleware in middlewares):
        raise RegistrationError(
            f"Job '{name}': use=[...] takes callables middleware(ctx, call_next)"
        )
    return middlewares


def _check_catch_up(name: str, cron: str | None, catch_up: bool) -> bool:
    if catch_up and cron is None:
        raise RegistrationError(f"Job '{name}': catch_up applies to cron jobs only")
    return bool(catch_up)


class Job:
    """The handle ``@jobs.job(...)`` returns: push, cancel and trigger one job."""

    def __init__(self, jobs: Jobs, definition: JobDefinition) -> None:
        self._jobs = jobs
        self.definition = definition

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def description(self) -> str:
        return self.definition.description

    @property
    def kind(self) -> Literal["cron", "queue"]:
        return self.definition.kind

    @property
    def mode(self) -> Literal["cron", "direct", "queue"]:
        """Who runs it: ``cron``, ``direct`` (this process's pool) or ``queue``."""
        return self._jobs.effective_mode(self.name)

    def describe_retention(self) -> dict[str, Any]:
        """The retention this job's terminal rows follow (SPEC §5.6)."""
        return self._jobs.describe_retention(self.name)

    def push(
        self,
        payload: Any,
        *,
        delay: DurationLike | None = None,
        scheduled_at: datetime | None = None,
        key: str | None = None,
        inline: bool | None = None,
        connection: Any = None,
    ) -> str:
        """Write an execution row and hand it to the dispatcher; return its id.

        :param payload: a schema instance or a dict that validates against it.
        :param delay: run no earlier than now + delay.
        :param scheduled_at: run no earlier than this aware datetime (wins over
            ``delay``).
        :param key: deduplicate: while a live row holds this key, return its id.
        :param inline: run in the caller and return once the handler finished.
        :param connection: an open database connection whose transaction the row
            joins; the job exists only if the caller commits.
        :raises PayloadError: the payload fails the schema; nothing was written.
        :raises JobUsageError: a cron job, or ``inline`` with a delay.
        """
        return self._jobs.push(
            self.name,
            payload,
            delay=delay,
            scheduled_at=scheduled_at,
            key=key,
            inline=inline,
            connection=connection,
        )

    def push_many(self, items: Sequence[Any]) -> list[str]:
        """Push many payloads (or :class:`PushItem`) in one transaction.

        Keyed items come first in the returned ids, then the others in order.
        """
        return self._jobs.push_many(self.name, items)

    def cancel(
        self,
        execution_id: str,
        *,
        cancelled_by: str | None = None,
        cancelled_by_name: str | None = None,
    ) -> None:
        """Cancel a pending, scheduled or running execution of this job."""
        self._jobs.cancel(
            execution_id,
            cancelled_by=cancelled_by,
            cancelled_by_name=cancelled_by_name,
            job_name=self.name,
        )

    def cancel_by_key(
        self,
        key: str,
        *,
        cancelled_by: str | None = None,
        cancelled_by_name: str | None = None,
    ) -> str | None:
        """Cancel the pending or scheduled row holding ``key``; return its id."""
        return self._jobs.cancel_by_key(
            self.name,
            key,
            cancelled_by=cancelled_by,
            cancelled_by_name=cancelled_by_name,
        )

    def trigger(
        self,
        payload: Any = None,
        *,
        triggered_by: str | None = None,
        triggered_by_name: str | None = None,
    ) -> None:
        """Run now: a cron tick without an instant, or a push of ``payload``."""
        self._jobs.trigger(
            self.name,
            payload,
            triggered_by=triggered_by,
            triggered_by_name=triggered_by_name,
        )

    def __repr__(self) -> str:
        return f"<Job {self.name} ({self.kind})>"


def as_push_item(item: Any) -> PushItem:
    return item if isinstance(item, PushItem) else PushItem(item)
