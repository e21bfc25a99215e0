"""The library's clock: every time read goes through here so freezegun can drive it.

Timestamps are aware UTC datetimes in memory and fixed-width ISO-8601 text with
millisecond precision in SQLite, so that text order is time order.
"""

from __future__ import annotations

from datetime import datetime, timezone

from .errors import InvalidArgumentError

UTC = timezone.utc


def now() -> datetime:
    """Return the current time as an aware UTC datetime, truncated to milliseconds."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def now_text() -> str:
    """:func:`to_text` of :func:`now`, in one step."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def to_text(moment: datetime) -> str:
    """Format an aware datetime as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text[:-6] + "Z"  # "+00:00" off; isoformat truncates like // 1000


def from_text(text: str | None) -> datetime | None:
    """Parse what :func:`to_text` wrote; ``None`` stays ``None``."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def require_aware(moment: datetime, name: str) -> datetime:
    """Return ``moment`` in UTC, refusing a naive datetime instead of guessing its zone.

    :raises InvalidArgumentError: ``moment`` is naive or not a datetime.
    """
    if not isinstance(moment, datetime):
        raise InvalidArgumentError(
            f"{name} must be a datetime, got {type(moment).__name__}"
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidArgumentError(
            f"{name} is a naive datetime ({moment.isoformat()}); pass an aware one, "
            "for example datetime.now(timezone.utc) or dt.replace(tzinfo=ZoneInfo(...))"
        )
    return moment.astimezone(UTC)
