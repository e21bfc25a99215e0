"""Parsing command-line values: ISO datetimes and JSON payloads."""

from __future__ import annotations

import json
from typing import Any

from ..admin.serial import parse_moment
from .errors import CliError

__all__ = ["parse_moment", "parse_payload"]


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
