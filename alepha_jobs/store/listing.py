"""Execution listings (SPEC §10.4): argument checking and the page envelope."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .. import clock
from ..errors import InvalidArgumentError
from ..payloads import text_problem
from .base import STATUSES, Execution, ExecutionQuery
from .queries import SORTS

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000
TRIGGERS = ("scheduled", "manual", "code")


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of executions; ``payload`` and ``logs`` are not loaded."""

    content: list[Execution]
    total_elements: int
    page: int
    size: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total_elements / self.size) if self.size else 0


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?<!-)([A-Z])", r"_\1", name).lower()


def build_query(
    job_name: str | None,
    *,
    status: str | Iterable[str] | None = None,
    trigger: str | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    key: str | None = None,
    sort: str = "-created_at",
    page: int = 0,
    size: int = DEFAULT_PAGE_SIZE,
) -> ExecutionQuery:
    """Check listing arguments and build the store query.

    ``sort`` also accepts the camelCase names of SPEC §10.4 (``-createdAt``).

    :raises InvalidArgumentError: a value is outside what SPEC §10.4 allows.
    """
    statuses = (status,) if isinstance(status, str) else tuple(status or ())
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise InvalidArgumentError(
            f"unknown status {unknown[0]!r}; use {', '.join(STATUSES)}"
        )
    if trigger is not None and trigger not in TRIGGERS:
        raise InvalidArgumentError(
            f"unknown trigger {trigger!r}; use {', '.join(TRIGGERS)}"
        )
    problem = text_problem(key) if isinstance(key, str) else None
    if problem is not None:
        raise InvalidArgumentError(
            f"key filter {key!r} contains {problem}, which no execution can hold"
        )
    sort_key = _snake(sort) if isinstance(sort, str) else sort
    if sort_key not in SORTS:
        raise InvalidArgumentError(f"cannot sort by {sort!r}; use one of {_sorts()}")
    return ExecutionQuery(
        job_name=job_name,
        statuses=statuses,  # type: ignore[arg-type]
        trigger=trigger,  # type: ignore[arg-type]
        started_from=_moment(started_from, "started_from"),
        started_to=_moment(started_to, "started_to"),
        key=key,
        sort=sort_key,
        page=_whole(page, "page", 0, None),
        size=_whole(size, "size", 1, MAX_PAGE_SIZE),
    )


def _sorts() -> str:
    return ", ".join(SORTS)


def _moment(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else clock.require_aware(value, name)


def _whole(value: Any, name: str, minimum: int, maximum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name} must be a whole number >= {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name} must be at most {maximum}")
    return value
