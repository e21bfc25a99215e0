"""The trim (SPEC §5.7 with DESIGN §8.2): purge orphans, then enforce retention.

Deletes go by id in chunks of :data:`CHUNK` and stop at :data:`CEILING` per
(job, status) and per purge in one tick; the next tick continues.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import clock
from .retention import Limit
from .store.base import Group, Status

if TYPE_CHECKING:
    from .app import Jobs

logger = logging.getLogger(__name__)

CHUNK = 500
CEILING = 5000


@dataclasses.dataclass(frozen=True)
class TrimReport:
    """Rows the trim deleted: terminal rows of unregistered jobs, and by retention."""

    purged: int = 0
    trimmed: int = 0


def trim(jobs: Jobs) -> TrimReport:
    """Run both phases once; errors are logged, never raised."""
    names = jobs.registered_names()
    if not names:
        return TrimReport()  # a process that declares no job must not empty the table
    purged = trimmed = 0
    try:
        purged = purge(jobs, names, live=False)
        _warn_orphans(jobs, names)
    except Exception:
        logger.exception("trim purge failed", extra={"event": "trim.failed"})
    try:
        trimmed = _enforce(jobs, clock.now())
    except Exception:
        logger.exception("trim retention failed", extra={"event": "trim.failed"})
    _prune_locks(jobs)
    return TrimReport(purged=purged, trimmed=trimmed)


def _prune_locks(jobs: Jobs) -> None:
    """Cron instant claims are never released; drop the expired ones."""
    try:
        jobs.locks.prune()
    except Exception:
        logger.warning("pruning expired cron locks failed", exc_info=True)


def purge(jobs: Jobs, names: list[str], *, live: bool) -> int:
    """Delete rows whose job is not in ``names``; live ones only when ``live``."""
    deleted = 0
    while deleted < CEILING:
        ids = jobs.store.unregistered_ids(names, min(CHUNK, CEILING - deleted), live)
        deleted += jobs.store.delete_ids(ids)
        if len(ids) < CHUNK:
            return deleted
    logger.info(
        "purge of unregistered jobs reached %d rows; the rest waits",
        CEILING,
        extra={"event": "trim.ceiling"},
    )
    return deleted


def _warn_orphans(jobs: Jobs, names: list[str]) -> None:
    registered = set(names)
    orphans = {
        name: count
        for name, count in jobs.store.live_counts().items()
        if name not in registered
    }
    if orphans:
        listed = ", ".join(
            f"{name} ({count})" for name, count in sorted(orphans.items())
        )
        logger.warning(
            "live rows of unregistered jobs are kept: %s; register the jobs again "
            "or run `alepha-jobs purge --unregistered`",
            listed,
            extra={"event": "trim.orphans", "orphans": orphans},
        )


def _enforce(jobs: Jobs, now: datetime) -> int:
    config = jobs.config
    trimmed = 0
    for group in jobs.store.terminal_groups():
        definition = jobs.definition(group.job_name)
        if definition is None or group.count <= 0:
            continue
        limit = definition.retention.limit(
            group.status, config.retention_error_days, config.retention_max_rows
        )
        trimmed += _trim_group(jobs, group, limit, now)
    return trimmed


def _trim_group(jobs: Jobs, group: Group, limit: Limit | None, now: datetime) -> int:
    if limit is None:
        return _by_count(jobs, group, keep=0)
    over = limit.last is not None and group.count > limit.last
    cutoff = now - timedelta(days=limit.days) if limit.days else None
    old = (
        cutoff is not None
        and (group.oldest is None or group.oldest < cutoff)
        and not (limit.keep_newest and group.count <= 1)
    )
    deleted = _by_count(jobs, group, keep=limit.last) if over and limit.last else 0
    if old and cutoff is not None and deleted < CEILING:
        deleted += _by_age(jobs, group, cutoff, limit.keep_newest, CEILING - deleted)
    if deleted >= CEILING:
        logger.info(
            "trim of %s/%s reached %d rows; the rest waits",
            group.job_name,
            group.status,
            CEILING,
            extra={"event": "trim.ceiling", "job": group.job_name},
        )
    return deleted


def _by_count(jobs: Jobs, group: Group, keep: int) -> int:
    excess = group.count - keep
    deleted = 0
    while deleted < min(excess, CEILING):
        size = min(CHUNK, excess - deleted, CEILING - deleted)
        ids = jobs.store.ids_beyond(group.job_name, group.status, keep, size)
        if not ids:
            break
        deleted += jobs.store.delete_ids(ids)
    return deleted


def _by_age(
    jobs: Jobs, group: Group, cutoff: datetime, keep_newest: bool, budget: int
) -> int:
    status: Status = group.status
    spare = jobs.store.newest_id(group.job_name, status) if keep_newest else None
    deleted = 0
    while deleted < budget:
        size = min(CHUNK, budget - deleted)
        ids = jobs.store.ids_completed_before(
            group.job_name, status, cutoff, spare, size
        )
        deleted += jobs.store.delete_ids(ids)
        if len(ids) < size:
            break
    return deleted
