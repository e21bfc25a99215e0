"""Push, push_many, cancel and cancel_by_key (SPEC §2.1-§2.4)."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from . import clock, payloads
from .definition import JobDefinition, as_push_item
from .durations import DurationLike, to_timedelta
from .errors import (
    DispatchError,
    ExecutionNotFoundError,
    InvalidArgumentError,
    InvalidStateError,
    JobsError,
    JobUsageError,
)
from .execution import process
from .options import PushItem
from .store.base import NewExecution

if TYPE_CHECKING:
    from .app import Jobs

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)
_MILLIS_MASK = (1 << 48) - 1
_LOW_62 = (1 << 62) - 1


def new_id() -> str:
    """A version 7 UUID (RFC 9562): 48 bits of Unix milliseconds, then 74 random
    bits. Ids sort by creation time, so each insert lands at the right edge of
    the id index instead of a random page of it. The time is the library's
    clock; under frozen time the random bits alone keep the ids apart."""
    millis = (clock.now() - _EPOCH) // _MILLISECOND & _MILLIS_MASK
    rand = int.from_bytes(os.urandom(10), "big") >> 6  # 74 bits
    value = (
        millis << 80
        | 0x7 << 76  # version
        | (rand >> 62) << 64  # 12 random bits
        | 0b10 << 62  # RFC variant
        | rand & _LOW_62
    )
    return str(uuid.UUID(int=value))


def start_time(
    delay: DurationLike | None, scheduled_at: datetime | None
) -> datetime | None:
    """When a delayed push may run: ``scheduled_at`` wins over ``delay``."""
    if scheduled_at is not None:
        return clock.require_aware(scheduled_at, "scheduled_at")
    if delay is not None:
        return clock.now() + to_timedelta(delay, "delay")
    return None


def _check_key(key: str | None) -> None:
    if key is not None and (not isinstance(key, str) or not key):
        raise InvalidArgumentError(f"key must be a non-empty string, got {key!r}")
    check_text("key", key)


def check_text(name: str, value: str | None) -> None:
    """Refuse a key or an actor name that no store can hold, on every store."""
    problem = None if value is None else payloads.text_problem(value)
    if problem is not None:
        raise InvalidArgumentError(
            f"{name} {value!r} contains {problem}, which the outbox cannot store"
        )


def prepare(
    definition: JobDefinition,
    payload: Any,
    *,
    delay: DurationLike | None = None,
    scheduled_at: datetime | None = None,
    key: str | None = None,
    inline: bool = False,
    triggered_by: str | None = None,
    triggered_by_name: str | None = None,
) -> NewExecution:
    """Validate everything a push needs before anything is written."""
    assert definition.schema is not None
    data, text = payloads.validate_json(definition.name, definition.schema, payload)
    _check_key(key)
    check_text("triggered_by", triggered_by)
    check_text("triggered_by_name", triggered_by_name)
    if inline and (delay is not None or scheduled_at is not None):
        raise JobUsageError(
            f"push to '{definition.name}' asks for inline and a delay: an inline "
            "push runs now in the caller. Pick one"
        )
    return NewExecution(
        id=new_id(),
        job_name=definition.name,
        payload=data,
        payload_json=text,
        max_attempts=1 if inline else definition.max_attempts,
        scheduled_at=start_time(delay, scheduled_at),
        key=key,
        triggered_by=triggered_by,
        triggered_by_name=triggered_by_name,
    )


def push(
    jobs: Jobs,
    definition: JobDefinition,
    payload: Any,
    *,
    inline: bool | None = None,
    connection: Any = None,
    **options: Any,
) -> str:
    """SPEC §2.1.1: validate, write the row, then run inline or dispatch."""
    run_inline = definition.inline if inline is None else bool(inline)
    row = prepare(definition, payload, inline=run_inline, **options)
    if connection is not None:
        if run_inline:
            raise JobUsageError("inline=True cannot join the caller's transaction")
        return jobs.store.insert_in(connection, row)
    if row.key is not None:
        execution_id, created = jobs.store.insert_keyed(row)
        if not created:
            return execution_id
    else:
        jobs.store.insert([row])
    if run_inline:
        process(jobs, definition.name, row.id, inline=True)
    elif row.scheduled_at is not None:
        jobs.dispatch_at(definition.name, row.id, row.scheduled_at)
    else:
        _dispatch_now(jobs, [(definition.name, row.id)])
    return row.id


def _dispatch_now(jobs: Jobs, items: list[tuple[str, str]]) -> None:
    """Dispatch errors reach the caller; the rows already exist for the sweep."""
    if jobs.stopping or not items:
        return
    try:
        jobs.dispatcher.dispatch_many(items)
    except JobsError:
        raise
    except Exception as error:
        raise DispatchError(
            f"dispatch of {len(items)} execution(s) failed: {error}; the rows are "
            "saved and the sweep will deliver them"
        ) from error


def push_many(jobs: Jobs, definition: JobDefinition, items: Sequence[Any]) -> list[str]:
    """SPEC §2.2: validate all, keyed items one by one, the rest in one insert."""
    if definition.inline:
        raise JobUsageError(
            f"job '{definition.name}' declares inline=True, which push_many cannot "
            "honour: push the items one by one, or drop inline from the job"
        )
    prepared = [_prepare_item(definition, as_push_item(item)) for item in items]
    keyed = [row for row in prepared if row.key is not None]
    bulk = [row for row in prepared if row.key is None]
    ids = [_push_keyed(jobs, definition, row) for row in keyed]
    if bulk:
        jobs.store.insert(bulk)
    for row in bulk:
        if row.scheduled_at is not None:
            jobs.dispatch_at(definition.name, row.id, row.scheduled_at)
    _dispatch_now(jobs, [(r.job_name, r.id) for r in bulk if r.scheduled_at is None])
    return ids + [row.id for row in bulk]


def _prepare_item(definition: JobDefinition, item: PushItem) -> NewExecution:
    return prepare(
        definition,
        item.payload,
        delay=item.delay,
        scheduled_at=item.scheduled_at,
        key=item.key,
    )


def _push_keyed(jobs: Jobs, definition: JobDefinition, row: NewExecution) -> str:
    execution_id, created = jobs.store.insert_keyed(row)
    if created and row.scheduled_at is not None:
        jobs.dispatch_at(definition.name, execution_id, row.scheduled_at)
    elif created:
        _dispatch_now(jobs, [(definition.name, execution_id)])
    return execution_id


def cancel(
    jobs: Jobs,
    execution_id: str,
    by: str | None,
    by_name: str | None,
    job_name: str | None = None,
) -> None:
    """SPEC §2.3: write ``cancelled`` first, then abort a handler running here."""
    check_text("cancelled_by", by)
    check_text("cancelled_by_name", by_name)
    row = jobs.get_execution(execution_id)
    if row is None or (job_name is not None and row.job_name != job_name):
        raise ExecutionNotFoundError(f"Execution not found: {execution_id}")
    if row.status not in ("pending", "scheduled", "running"):
        raise InvalidStateError(f"Cannot cancel execution in '{row.status}' status")
    if not jobs.store.cancel(execution_id, clock.now(), by, by_name):
        current = jobs.store.get(execution_id)
        status = current.status if current else "deleted"
        raise InvalidStateError(f"Cannot cancel execution in '{status}' status")
    jobs.forget_promotion(execution_id)
    signal = jobs.signals.get(execution_id)
    if signal is not None:
        signal.abort("cancelled")
    elif row.status != "running" and not _records_error(jobs, row.job_name):
        jobs.store.delete_cancelled(execution_id)
    logger.info(
        "%s %s cancelled",
        row.job_name,
        execution_id,
        extra={"event": "execution.cancelled", "job": row.job_name},
    )


def cancel_by_key(
    jobs: Jobs,
    definition: JobDefinition,
    key: str,
    by: str | None,
    by_name: str | None,
) -> str | None:
    """SPEC §2.4: cancel the pending or scheduled row holding ``key``, never a
    running one."""
    _check_key(key)
    check_text("cancelled_by", by)
    check_text("cancelled_by_name", by_name)
    execution_id = jobs.store.cancel_by_key(
        definition.name, key, clock.now(), by, by_name
    )
    if execution_id is None:
        return None
    jobs.forget_promotion(execution_id)
    logger.info(
        "%s %s cancelled by key %r",
        definition.name,
        execution_id,
        key,
        extra={"event": "execution.cancelled", "job": definition.name},
    )
    if not definition.retention.records("error"):
        jobs.store.delete_cancelled(execution_id)
    return execution_id


def _records_error(jobs: Jobs, job_name: str) -> bool:
    definition = jobs.definition(job_name)
    return definition is None or definition.retention.records("error")
