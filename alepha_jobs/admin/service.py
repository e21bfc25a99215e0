"""The admin service (SPEC §10): what the command and the HTTP API both call.

Every method takes and returns plain data, so the command prints it and the
blueprint serialises it without knowing the store.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import clock
from ..errors import (
    ExecutionNotFoundError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
)
from ..store.base import Execution, Group
from ..store.listing import Page

if TYPE_CHECKING:
    from ..app import Jobs

BULK_LIMIT = 100
UPCOMING = 3


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who asks: recorded as ``triggered_by``/``cancelled_by`` and their names."""

    id: str | None = None
    name: str | None = None


def check_id(execution_id: str) -> str:
    """Return ``execution_id`` if it is a UUID.

    :raises InvalidArgumentError: it is not.
    """
    try:
        return str(uuid.UUID(str(execution_id)))
    except ValueError:
        raise InvalidArgumentError(
            f"execution id {execution_id!r} is not a UUID; copy it from "
            "`alepha-jobs executions`"
        ) from None


def iso_duration(value: timedelta | None) -> str | None:
    """``timedelta(seconds=90)`` -> ``PT1M30S`` (SPEC §10.3 ``timeout``)."""
    if value is None:
        return None
    days, rest = divmod(value.total_seconds(), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{int(days)}D" if days else ""
    parts = [
        f"{int(hours)}H" if hours else "",
        f"{int(minutes)}M" if minutes else "",
        f"{seconds:g}S" if seconds else "",
    ]
    time = "".join(parts)
    return f"P{date}{'T' + time if time else ''}" if date or time else "PT0S"


def recent_counts(groups: Iterable[Group]) -> dict[str, dict[str, Any]]:
    """Per job: ``ok`` and ``error`` counts, ``last_run`` and ``last_status``
    (SPEC §10.3); cancelled rows are not counted."""
    recent: dict[str, dict[str, Any]] = {}
    for group in groups:
        if group.status not in ("ok", "error"):
            continue
        entry = recent.setdefault(group.job_name, _empty_recent())
        entry[group.status] = int(group.count)
        newest = group.newest
        if newest is not None and (
            entry["last_run"] is None or newest > entry["last_run"]
        ):
            entry["last_run"], entry["last_status"] = newest, group.status
    return recent


def _empty_recent() -> dict[str, Any]:
    return {"ok": 0, "error": 0, "last_run": None, "last_status": None}


class AdminService:
    """Listing, retry, cancel and delete for one :class:`~alepha_jobs.Jobs`."""

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    # reading

    def list_jobs(self) -> list[dict[str, Any]]:
        """Every registered job with its mode, schedule and recent counts."""
        recent = recent_counts(self.jobs.store.terminal_groups())
        now = clock.now()
        return [
            self._registration(definition.name, recent, now)
            for definition in self.jobs.definitions()
        ]

    def _registration(
        self, name: str, recent: dict[str, dict[str, Any]], now: datetime
    ) -> dict[str, Any]:
        definition = self.jobs.definition(name)
        assert definition is not None
        cron = definition.cron
        return {
            "name": name,
            "description": definition.description,
            "type": self.jobs.effective_mode(name),
            "cron": cron.expression if cron else None,
            "timezone": str(cron.timezone) if cron else None,
            "next": cron.upcoming(now, UPCOMING) if cron else [],
            "timeout": iso_duration(definition.timeout),
            "retry": (
                {"retries": definition.retry.retries} if definition.retry else None
            ),
            "retention": self.jobs.describe_retention(name),
            "recent": recent.get(name, _empty_recent()),
        }

    def job(self, name: str) -> dict[str, Any]:
        """One registration; :raises JobNotFoundError: not registered."""
        self._require_job(name)
        recent = recent_counts(self.jobs.store.terminal_groups())
        return self._registration(name, recent, clock.now())

    def executions(self, name: str | None = None, **query: Any) -> Page:
        """A page of rows without ``payload`` and ``logs`` (SPEC §10.4)."""
        return self.jobs.executions(name, **query)

    def execution(self, execution_id: str) -> Execution:
        """The full row.

        :raises ExecutionNotFoundError: no such row.
        """
        row = self.jobs.get_execution(check_id(execution_id))
        if row is None:
            raise ExecutionNotFoundError(f"Execution not found: {execution_id}")
        return row

    # acting

    def trigger(self, name: str, payload: Any = None, actor: Actor = Actor()) -> None:
        """Run job ``name`` now: a cron tick, or a push of ``payload``."""
        self._require_job(name)
        self.jobs.trigger(
            name, payload, triggered_by=actor.id, triggered_by_name=actor.name
        )

    def retry(self, execution_id: str, actor: Actor = Actor()) -> str | None:
        """Run a failed or cancelled execution again as a new one (SPEC §10.2).

        Return the new execution id (``None`` for a cron job, which re-runs
        through a trigger).

        :raises InvalidStateError: the row is not ``error`` or ``cancelled``.
        :raises JobNotFoundError: its job is no longer registered.
        """
        row = self.execution(execution_id)
        if row.status not in ("error", "cancelled"):
            raise InvalidStateError(
                f"Cannot retry execution in '{row.status}' status; only failed or "
                "cancelled executions can be retried"
            )
        self._require_job(row.job_name)
        if row.payload is not None:
            return self.jobs.push(
                row.job_name,
                row.payload,
                triggered_by=actor.id,
                triggered_by_name=actor.name,
            )
        self.jobs.trigger(
            row.job_name, triggered_by=actor.id, triggered_by_name=actor.name
        )
        return None

    def cancel(self, execution_id: str, actor: Actor = Actor()) -> None:
        """Cancel a live execution (SPEC §2.3)."""
        self.jobs.cancel(
            check_id(execution_id),
            cancelled_by=actor.id,
            cancelled_by_name=actor.name,
        )

    def delete(self, execution_id: str) -> None:
        """Delete one finished row.

        :raises ExecutionNotFoundError: no such row.
        :raises InvalidStateError: the row is live (``Cancel it first``).
        """
        execution_id = check_id(execution_id)
        if self.jobs.store.delete_terminal([execution_id]):
            return
        row = self.jobs.get_execution(execution_id)
        if row is None:
            raise ExecutionNotFoundError(f"Execution not found: {execution_id}")
        raise InvalidStateError(
            f"Execution {execution_id} is '{row.status}' and cannot be deleted. "
            "Cancel it first"
        )

    def delete_many(self, ids: Sequence[str]) -> dict[str, int]:
        """Delete the finished rows among ``ids``; the others are skipped."""
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise InvalidArgumentError("ids must be a list of execution ids")
        if len(ids) > BULK_LIMIT:
            raise InvalidArgumentError(
                f"at most {BULK_LIMIT} ids per bulk delete, got {len(ids)}"
            )
        unique = list(dict.fromkeys(check_id(i) for i in ids))
        if not unique:
            return {"deleted": 0, "skipped": 0}
        deleted = self.jobs.store.delete_terminal(unique)
        return {"deleted": deleted, "skipped": len(unique) - deleted}

    def _require_job(self, name: str) -> None:
        if self.jobs.definition(name) is None:
            raise JobNotFoundError(f"Job not found: {name}")
