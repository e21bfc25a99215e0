"""Parsing command-line values: ISO datetimes and JSON payloads."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from .errors import CliError


def parse_moment(text: str, option: str) -> datetime:
    """An aware datetime from ISO-8601 (``Z`` accepted); naive ones are refused.

    :raises CliError: not ISO-8601, or no UTC offset.
    """
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CliError(
            f"{option} {text!r} is not an ISO-8601 time such as 2030-03-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CliError(
            f"{option} {text!r} has no UTC offset; add Z or +01:00 so the instant "
            "is not guessed"
        )
    return moment.astimezone(timezone.utc)


def parse_payload(text: str | None) -> dict[str, Any] | None:
    """A JSON object from ``--payload``.

    :raises CliError: not JSON, or not an object.
    """
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(
            f"--payload is not JSON ({error.msg} at column {error.colno}); "
            """pass an object such as '{"user_id": 1}'"""
        ) from None
    if not isinstance(value, dict):
        raise CliError(
            f"--payload must be a JSON object, got {type(value).__name__}; "
            """pass an object such as '{"user_id": 1}'"""
        )
    return value
