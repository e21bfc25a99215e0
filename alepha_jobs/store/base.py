"""The outbox contract shared by every store, and the records it returns."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

Status = Literal["pending", "scheduled", "running", "ok", "error", "cancelled"]
LIVE_STATUSES: tuple[Status, ...] = ("pending", "scheduled", "running")
TERMINAL_STATUSES: tuple[Status, ...] = ("ok", "error", "cancelled")
STATUSES: tuple[Status, ...] = LIVE_STATUSES + TERMINAL_STATUSES


@dataclasses.dataclass(frozen=True)
class Execution:
    """One row of ``job_executions``; timestamps are aware UTC datetimes.

    Rows returned by :meth:`~alepha_jobs.Jobs.executions` do not load ``payload``
    and ``logs``; those two are ``None`` there.
    """

    id: str
    job_name: str
    status: Status
    created_at: datetime
    updated_at: datetime
    key: str | None = None
    attempt: int = 0
    max_attempts: int = 1
    redispatch_count: int = 0
    payload: dict[str, Any] | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    logs: list[dict[str, Any]] | None = None
    triggered_by: str | None = None
    triggered_by_name: str | None = None
    cancelled_by: str | None = None
    cancelled_by_name: str | None = None

    @property
    def can(self) -> dict[str, bool]:
        """The admin actions this row allows (SPEC §10.5)."""
        return {
            "retry": self.status in ("error", "cancelled"),
            "cancel": self.status in LIVE_STATUSES,
            "delete": self.status in TERMINAL_STATUSES,
        }


@dataclasses.dataclass(frozen=True)
class NewExecution:
    """What a push writes: an insert of a ``pending`` or ``scheduled`` row."""

    id: str
    job_name: str
    payload: dict[str, Any] | None
    max_attempts: int
    scheduled_at: datetime | None = None
    key: str | None = None
    triggered_by: str | None = None
    triggered_by_name: str | None = None
    # ``payload`` as JSON text, when the push already serialised it to check
    # it: a store writes this text rather than serialising ``payload`` again.
    payload_json: str | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    @property
    def status(self) -> Status:
        return "scheduled" if self.scheduled_at is not None else "pending"


@dataclasses.dataclass(frozen=True)
class TerminalRun:
    """A complete terminal row written at the end of a cron inline run (T3)."""

    id: str
    job_name: str
    status: Status
    started_at: datetime
    completed_at: datetime
    error: str | None
    logs: list[dict[str, Any]]
    triggered_by: str | None
    triggered_by_name: str | None


@dataclasses.dataclass(frozen=True)
class Due:
    """A row a sweep phase or the pickup selected: enough to act on it."""

    id: str
    job_name: str
    redispatch_count: int = 0
    attempt: int = 0
    started_at: datetime | None = None
    updated_at: datetime | None = None


@dataclasses.dataclass(frozen=True)
class Group:
    """Count and oldest completion of one (job, terminal status) pair."""

    job_name: str
    status: Status
    count: int
    oldest: datetime | None
    newest: datetime | None


@dataclasses.dataclass(frozen=True)
class ExecutionQuery:
    """Filters, sort and page of an execution listing (SPEC §10.4)."""

    job_name: str | None = None
    statuses: tuple[Status, ...] = ()
    trigger: Literal["scheduled", "manual", "code"] | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    key: str | None = None
    sort: str = "-created_at"
    page: int = 0
    size: int = 20


class Store(abc.ABC):
    """The outbox. Every state change is one guarded statement (SPEC §3.4).

    A method returning ``bool`` reports whether its guard matched; 0 rows is
    "someone else moved the row", never an error.
    """

    url: str

    @abc.abstractmethod
    def close(self) -> None: ...

    # pushes
    @abc.abstractmethod
    def insert(self, rows: Sequence[NewExecution]) -> None: ...

    @abc.abstractmethod
    def insert_keyed(self, row: NewExecution) -> tuple[str, bool]:
        """Insert unless a live row holds ``(job_name, key)``; return (id, created)."""

    @abc.abstractmethod
    def insert_in(self, connection: Any, row: NewExecution) -> str:
        """Insert inside the caller's open transaction on ``connection``; no
        commit. Return the new id, or the id of the live row holding the key."""

    @abc.abstractmethod
    def insert_terminal(self, run: TerminalRun) -> None: ...

    @abc.abstractmethod
    def get(self, execution_id: str) -> Execution | None: ...

    # transitions
    @abc.abstractmethod
    def claim(self, execution_id: str, now: datetime) -> Execution | None:
        """T4/T5: ``pending`` or due ``scheduled`` -> ``running``."""

    #: Whether :meth:`claim_batch` and :meth:`succeed_batch` write each batch in
    #: one transaction (otherwise batching gains nothing).
    batches = False

    # Direct-mode batches. A batch claim leaves ``started_at`` empty: a
    # ``running`` row without a start time is one a batch claimed and nobody
    # recorded as started yet, which is what lets a release or the sweep give
    # its attempt back.
    @abc.abstractmethod
    def claim_batch(self, ids: Sequence[str], now: datetime) -> list[Execution]:
        """T4/T5 for several rows, ``started_at`` left empty; return those
        claimed, in no set order."""

    @abc.abstractmethod
    def succeed_batch(
        self, outcomes: Sequence[tuple[str, list[Any], bool, datetime]], now: datetime
    ) -> list[bool]:
        """:meth:`succeed` for several ``(id, logs, keep, started_at)`` in one
        transaction, recording the start time; one answer each."""

    @abc.abstractmethod
    def mark_started(self, execution_id: str, started_at: datetime) -> bool:
        """Record the start of a batch-claimed row (before a failure is written)."""

    @abc.abstractmethod
    def release_unstarted(self, ids: Sequence[str], now: datetime) -> int:
        """Batch-claimed rows never started back to ``pending``, attempt given
        back; return how many."""

    @abc.abstractmethod
    def release_crashed(self, execution_id: str, now: datetime, note: str) -> bool:
        """The sweep's refund: a batch-claimed row of a dead process back to
        ``pending`` with its attempt and ``error = note``, unless its error
        already is ``note`` (a row refunded once crashes as usual after)."""

    @abc.abstractmethod
    def renew(self, ids: Iterable[str], now: datetime) -> set[str]:
        """T10 for many rows; return the ids still ``running``."""

    @abc.abstractmethod
    def succeed(
        self, execution_id: str, now: datetime, logs: list[Any], keep: bool
    ) -> bool: ...

    @abc.abstractmethod
    def retry_later(
        self,
        execution_id: str,
        now: datetime,
        error: str,
        scheduled_at: datetime,
        logs: list[Any] | None,
    ) -> bool: ...

    @abc.abstractmethod
    def fail(
        self,
        execution_id: str,
        now: datetime,
        error: str,
        logs: list[Any] | None,
        keep: bool,
        from_status: Status = "running",
    ) -> bool: ...

    @abc.abstractmethod
    def park(
        self,
        execution_id: str,
        now: datetime,
        scheduled_at: datetime,
        payload: dict[str, Any] | None,
    ) -> bool: ...

    @abc.abstractmethod
    def promote(self, execution_id: str, now: datetime, due_only: bool) -> bool: ...

    @abc.abstractmethod
    def bump_redispatch(self, execution_id: str, now: datetime) -> bool: ...

    @abc.abstractmethod
    def cancel(
        self, execution_id: str, now: datetime, by: str | None, by_name: str | None
    ) -> bool: ...

    @abc.abstractmethod
    def cancel_by_key(
        self,
        job_name: str,
        key: str,
        now: datetime,
        by: str | None,
        by_name: str | None,
    ) -> str | None: ...

    @abc.abstractmethod
    def delete_cancelled(self, execution_id: str) -> bool: ...

    @abc.abstractmethod
    def delete_terminal(self, ids: Sequence[str]) -> int: ...

    # sweep and pickup
    @abc.abstractmethod
    def due_scheduled(self, now: datetime, limit: int) -> list[Due]: ...

    @abc.abstractmethod
    def stale_pending(self, cutoff: datetime, limit: int) -> list[Due]: ...

    @abc.abstractmethod
    def running(self, cutoff: datetime, limit: int) -> list[Due]: ...

    @abc.abstractmethod
    def ready(self, cutoff: datetime, names: Sequence[str], limit: int) -> list[Due]:
        """Rows another process pushed: ``pending`` untouched since ``cutoff``, or
        ``scheduled`` and due since ``cutoff``."""

    # trim
    @abc.abstractmethod
    def unregistered_ids(
        self, names: Sequence[str], limit: int, live: bool
    ) -> list[str]:
        """Ids of rows whose job is not in ``names``: terminal ones, or all if
        ``live``."""

    @abc.abstractmethod
    def delete_ids(self, ids: Sequence[str]) -> int: ...

    @abc.abstractmethod
    def terminal_groups(self) -> list[Group]: ...

    @abc.abstractmethod
    def ids_beyond(
        self, job_name: str, status: Status, offset: int, limit: int
    ) -> list[str]: ...

    @abc.abstractmethod
    def ids_completed_before(
        self,
        job_name: str,
        status: Status,
        cutoff: datetime,
        spare: str | None,
        limit: int,
    ) -> list[str]: ...

    @abc.abstractmethod
    def newest_id(self, job_name: str, status: Status) -> str | None: ...

    # admin
    @abc.abstractmethod
    def list(self, query: ExecutionQuery) -> tuple[list[Execution], int]: ...

    @abc.abstractmethod
    def live_counts(self) -> dict[str, int]:
        """Live rows per job name (for the orphan warning of the trim)."""
