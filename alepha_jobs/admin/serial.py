"""Plain-data forms shared by the command and the HTTP API."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone
from typing import Any

from ..errors import InvalidArgumentError
from ..store.base import Execution


def to_jsonable(value: Any) -> Any:
    """Datetimes as ISO-8601, executions as dicts with ``can``, recursively."""
    if isinstance(value, Execution):
        data = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        data["can"] = value.can
        return to_jsonable(data)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def parse_moment(text: str, name: str) -> datetime:
    """An aware UTC datetime from ISO-8601 (``Z`` accepted); naive ones refused.

    :raises InvalidArgumentError: not ISO-8601, or no UTC offset.
    """
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidArgumentError(
            f"{name} {text!r} is not an ISO-8601 time such as 2030-03-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidArgumentError(
            f"{name} {text!r} has no UTC offset; add Z or +01:00 so the instant "
            "is not guessed"
        )
    return moment.astimezone(timezone.utc)
