"""Cron expressions in a time zone, with Debian cron's daylight-saving policy.

Fire times are computed from the wall clock of the expression's zone and mapped to
real instants as Debian's cron(8) does:

- a *fixed-time* job (neither the minute nor the hour field starts with ``*``) whose
  time falls in a skipped hour runs once, right after the jump, and in a repeated
  hour runs once, at the first occurrence;
- any other job follows the wall clock: it runs in both occurrences of a repeated
  hour and not at all for times that do not exist.

An instant is identified by its UTC time: :meth:`CronExpression.next` is strictly
after its argument and never yields two fire times for one instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidArgumentError, InvalidCronExpression
from ._fields import SEARCH_YEARS, CronFields, parse

__all__ = ["CronExpression", "next_fire"]

_UTC = timezone.utc


class CronExpression:
    """A cron schedule in an IANA time zone.

    Five fields (minute, hour, day-of-month, month, day-of-week), or six with the
    second first; the aliases ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``,
    ``@daily``, ``@midnight`` and ``@hourly``; ``L``, ``W``, ``LW``, ``#`` and
    ``nL``; month and day names; Sunday as 0 or 7. Day-of-month and day-of-week
    combine with OR, unless either starts with ``*``, which makes them combine with
    AND (Vixie cron).

    :param expr: the cron expression.
    :param timezone: the IANA name of the zone whose wall clock the fields describe.
    :raises InvalidCronExpression: the expression cannot be parsed, can never fire,
        or the zone is unknown.
    """

    __slots__ = ("_expression", "_fields", "_zone")

    def __init__(self, expr: str, timezone: str = "UTC") -> None:
        self._fields = parse(expr)
        self._expression = expr.strip()
        self._zone = _load_zone(timezone, self._expression)

    @property
    def expression(self) -> str:
        """The expression as given, without surrounding whitespace."""
        return self._expression

    @property
    def timezone(self) -> ZoneInfo:
        """The zone whose wall clock the fields describe."""
        return self._zone

    @property
    def has_seconds(self) -> bool:
        """Whether the expression has six fields, the second first."""
        return self._fields.has_seconds

    def next(self, after: datetime) -> datetime:
        """Return the first fire time strictly after ``after``.

        :param after: an aware datetime, in any zone.
        :return: an aware datetime in the expression's zone.
        :raises InvalidArgumentError: ``after`` is naive.
        :raises InvalidCronExpression: the expression never fires in this zone
            within 400 years, as when every time it names is skipped by daylight
            saving.
        """
        try:
            instant = next_fire(self._fields, self._zone, _to_utc(after))
        except OverflowError:
            raise InvalidArgumentError(
                f"{after.isoformat()} is too close to the end of the datetime range"
            ) from None
        if instant is None:
            raise InvalidCronExpression(
                f"Cron expression '{self._expression}' never fires in time zone "
                f"'{self._zone.key}' within {SEARCH_YEARS} years after "
                f"{after.isoformat()}: daylight saving skips every time it names"
            )
        return instant.astimezone(self._zone)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """Return the next ``count`` fire times strictly after ``after``, in order.

        :raises InvalidArgumentError: ``after`` is naive or ``count`` is negative.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidArgumentError(
                f"count must be a whole number of at least 0, got {count!r}"
            )
        times: list[datetime] = []
        for _ in range(count):
            after = self.next(after)
            times.append(after)
        return times

    def __repr__(self) -> str:
        return f"CronExpression({self._expression!r}, timezone={self._zone.key!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronExpression):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[str, str]:
        return self._expression, self._zone.key


def next_fire(fields: CronFields, zone: ZoneInfo, after: datetime) -> datetime | None:
    """Return the first fire instant strictly after ``after``, in UTC.

    Wall-clock candidates are scanned in order. Each maps to a *floor*, its first
    real instant (or the jump, for a skipped time), and floors never decrease along
    the scan, so the first candidate whose floor is past the best instant found
    ends the search.

    :param fields: the parsed expression.
    :param zone: the zone of the wall clock.
    :param after: an aware UTC datetime.
    :return: the instant, or ``None`` if nothing fires within
        :data:`~alepha_jobs.cron._fields.SEARCH_YEARS` years.
    """
    best: datetime | None = None
    for wall in fields.walls(_scan_start(after, zone)):
        instants, floor = _fire_instants(wall, zone, fields.fixed_time)
        if best is not None and floor >= best:
            return best
        best = _earliest_after(instants, after, best)
        if best == floor:
            return best
    return best


def _scan_start(after: datetime, zone: ZoneInfo) -> datetime:
    """Return the earliest wall-clock time that may still fire after ``after``.

    If ``after`` is the first pass through a repeated hour, the second pass of
    earlier wall-clock times is still to come, so the scan starts one shift back.
    """
    wall = after.astimezone(zone).replace(tzinfo=None)
    start = (after + _offset(wall.replace(tzinfo=zone, fold=1))).replace(tzinfo=None)
    return min(start, wall).replace(microsecond=0)


def _fire_instants(
    wall: datetime, zone: ZoneInfo, fixed_time: bool
) -> tuple[tuple[datetime, ...], datetime]:
    """Apply the daylight-saving policy to one wall-clock time.

    :return: the UTC instants it fires at, and its floor.
    """
    first, second = _offsets(wall, zone)
    if first == second:
        instant = (wall - first).replace(tzinfo=_UTC)
        return (instant,), instant
    if first > second:
        earlier = (wall - first).replace(tzinfo=_UTC)
        later = (wall - second).replace(tzinfo=_UTC)
        return ((earlier,) if fixed_time else (earlier, later)), earlier
    jump = _jump_instant(wall, first, second, zone)
    return ((jump,) if fixed_time else ()), jump


def _offsets(wall: datetime, zone: ZoneInfo) -> tuple[timedelta, timedelta]:
    """Return the UTC offsets of both readings of ``wall`` (``fold`` 0 and 1).

    Equal offsets: the time exists once. The first larger: it is repeated. The first
    smaller: it falls in a gap.
    """
    first = _offset(wall.replace(tzinfo=zone, fold=0))
    return first, _offset(wall.replace(tzinfo=zone, fold=1))


def _offset(moment: datetime) -> timedelta:
    return moment.utcoffset() or timedelta(0)


def _jump_instant(
    wall: datetime, before: timedelta, after: timedelta, zone: ZoneInfo
) -> datetime:
    """Return the instant the clock jumped over ``wall``, to the second.

    The jump lies in ``(wall - after, wall - before]``: bisect on the offset.
    """
    low = (wall - after).replace(tzinfo=_UTC)
    high = (wall - before).replace(tzinfo=_UTC)
    while high - low > timedelta(seconds=1):
        middle = (low + (high - low) // 2).replace(microsecond=0)
        if _offset(middle.astimezone(zone)) == after:
            high = middle
        else:
            low = middle
    return high


def _earliest_after(
    instants: Iterable[datetime], after: datetime, best: datetime | None
) -> datetime | None:
    for instant in instants:
        if instant > after and (best is None or instant < best):
            best = instant
    return best


def _to_utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime):
        raise InvalidArgumentError(
            f"a cron search needs a timezone-aware datetime, got {moment!r}"
        )
    if moment.utcoffset() is None:
        raise InvalidArgumentError(
            f"{moment.isoformat()} is a naive datetime; it must be timezone-aware, "
            "e.g. datetime.now(timezone.utc)"
        )
    return moment.astimezone(_UTC)


def _load_zone(name: str, expression: str) -> ZoneInfo:
    problem = f"Unknown time zone {name!r} for cron expression '{expression}'"
    if not isinstance(name, str) or not name.strip():
        raise InvalidCronExpression(f"{problem}: give an IANA name such as 'UTC'")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidCronExpression(
            f"{problem}: use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None
