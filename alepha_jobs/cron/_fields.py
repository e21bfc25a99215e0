"""The six cron fields: parsing, refusal messages and wall-clock matching.

Everything here is calendar arithmetic on naive wall-clock times; time zones and
daylight saving are handled by :mod:`alepha_jobs.cron.expression`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time

from ..errors import InvalidCronExpression

#: How far ahead a search for the next fire time looks: one Gregorian cycle.
SEARCH_YEARS = 400

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELD_LIST = "minute hour day-of-month month day-of-week"
_NEAREST = re.compile(r"(\d+)w")


class _FieldError(Exception):
    """One field is wrong; the message is completed with the expression."""


@dataclass(frozen=True)
class _Bounds:
    name: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)


_SECOND = _Bounds("second", 0, 59)
_MINUTE = _Bounds("minute", 0, 59)
_HOUR = _Bounds("hour", 0, 23)
_DAY = _Bounds("day-of-month", 1, 31)
_MONTH = _Bounds("month", 1, 12, {n: i + 1 for i, n in enumerate(MONTHS)})
_WEEKDAY = _Bounds("day-of-week", 0, 7, {n: i for i, n in enumerate(WEEKDAYS)})


@dataclass(frozen=True)
class DaySpec:
    """Which days of a month match: day-of-month and day-of-week together.

    Weekdays count from Sunday = 0. ``intersect`` is Vixie cron's rule: when either
    field starts with ``*`` a day must match both fields, otherwise either one.
    """

    days: frozenset[int] = frozenset()
    last_day: bool = False
    last_workday: bool = False
    nearest_workday: int | None = None
    weekdays: frozenset[int] = frozenset()
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()
    last_weekdays: frozenset[int] = frozenset()
    intersect: bool = False

    def in_month(self, year: int, month: int) -> list[int]:
        """Return the matching days of one month, in order."""
        first, length = calendar.monthrange(year, month)
        return self.in_shape((first + 1) % 7, length)

    def in_shape(self, first_weekday: int, length: int) -> list[int]:
        """Return the matching days of a month that starts on ``first_weekday``."""
        return [
            day
            for day in range(1, length + 1)
            if self._combine(
                self._day_matches(day, first_weekday, length),
                self._weekday_matches(day, first_weekday, length),
            )
        ]

    def _combine(self, by_day: bool, by_weekday: bool) -> bool:
        if self.intersect:
            return by_day and by_weekday
        return by_day or by_weekday

    def _day_matches(self, day: int, first_weekday: int, length: int) -> bool:
        if day in self.days or (self.last_day and day == length):
            return True
        if self.last_workday and day == _workday_near(length, first_weekday, length):
            return True
        wanted = self.nearest_workday
        return (
            wanted is not None
            and wanted <= length
            and day == _workday_near(wanted, first_weekday, length)
        )

    def _weekday_matches(self, day: int, first_weekday: int, length: int) -> bool:
        weekday = (first_weekday + day - 1) % 7
        if weekday in self.weekdays:
            return True
        if (weekday, (day - 1) // 7 + 1) in self.nth_weekdays:
            return True
        return weekday in self.last_weekdays and day + 7 > length


def _workday_near(day: int, first_weekday: int, length: int) -> int:
    """Return the Monday-to-Friday day closest to ``day`` within its month."""
    weekday = (first_weekday + day - 1) % 7
    if weekday == 6:
        return day - 1 if day > 1 else day + 2
    if weekday == 0:
        return day + 1 if day < length else day - 2
    return day


@dataclass(frozen=True)
class CronFields:
    """A parsed expression: the values of every field, ready for matching.

    ``fixed_time`` is true when neither the minute nor the hour field starts with
    ``*``: Debian cron's test for jobs that get special daylight-saving treatment.
    """

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    days: DaySpec
    fixed_time: bool
    has_seconds: bool

    def walls(self, start: datetime) -> Iterator[datetime]:
        """Yield the matching naive wall-clock times from ``start`` on, in order.

        The search stops :data:`SEARCH_YEARS` years after ``start``.
        """
        first_day = start.date()
        for day in self._dates(first_day):
            since = start.time() if day == first_day else None
            for moment in self._times(since):
                yield datetime.combine(day, moment)

    def _dates(self, since: date) -> Iterator[date]:
        last_year = min(since.year + SEARCH_YEARS, 9999)
        for year in range(since.year, last_year + 1):
            for month in self.months:
                if (year, month) < (since.year, since.month):
                    continue
                for day in self.days.in_month(year, month):
                    if date(year, month, day) >= since:
                        yield date(year, month, day)

    def _times(self, since: time | None) -> Iterator[time]:
        floor = (since.hour, since.minute, since.second) if since else (0, 0, 0)
        for hour in self.hours:
            if hour < floor[0]:
                continue
            for minute in self.minutes:
                if (hour, minute) < floor[:2]:
                    continue
                for second in self.seconds:
                    if (hour, minute, second) >= floor:
                        yield time(hour, minute, second)


def parse(expression: object) -> CronFields:
    """Parse a cron expression, refusing any that is malformed or can never fire.

    :raises InvalidCronExpression: with a message naming the offending field.
    """
    if not isinstance(expression, str):
        kind = type(expression).__name__
        raise InvalidCronExpression(
            f"Invalid cron expression {expression!r}: expected a string, got {kind}"
        )
    text = expression.strip()
    try:
        return _parse_text(text)
    except _FieldError as error:
        raise InvalidCronExpression(
            f"Invalid cron expression '{text}': {error}"
        ) from None


def _parse_text(text: str) -> CronFields:
    if not text:
        raise _FieldError(
            f"it is empty; give 5 fields ({_FIELD_LIST}), 6 with the second first, "
            "or an alias such as '@daily'"
        )
    if text.startswith("@"):
        text = _expand_alias(text)
    parts = text.lower().split()
    if len(parts) not in (5, 6):
        raise _FieldError(_count_message(len(parts)))

    has_seconds = len(parts) == 6
    seconds = _parse_plain(parts.pop(0), _SECOND) if has_seconds else (0,)
    minute, hour, day, month, weekday = parts
    fields = CronFields(
        seconds=seconds,
        minutes=_parse_plain(minute, _MINUTE),
        hours=_parse_plain(hour, _HOUR),
        months=_parse_plain(month, _MONTH),
        days=_parse_days(day, weekday),
        fixed_time=not (minute.startswith("*") or hour.startswith("*")),
        has_seconds=has_seconds,
    )
    _check_can_fire(fields, day, month, weekday)
    return fields


def _expand_alias(text: str) -> str:
    expansion = ALIASES.get(text.lower())
    if expansion is None:
        known = ", ".join(ALIASES)
        raise _FieldError(f"unknown alias '{text}'; the aliases are {known}")
    return expansion


def _count_message(count: int) -> str:
    message = (
        f"{count} field{'s' if count != 1 else ''} given, but 5 ({_FIELD_LIST}) "
        "or 6 (with the second first) are accepted"
    )
    if count == 7:
        message += "; a year field is not supported"
    return message


def _parse_plain(text: str, bounds: _Bounds) -> tuple[int, ...]:
    values: set[int] = set()
    for item in _items(text, bounds):
        values.update(_parse_item(item, bounds))
    return tuple(sorted(values))


def _items(text: str, bounds: _Bounds) -> list[str]:
    items = text.split(",")
    if "" in items:
        raise _FieldError(f"{bounds.name} field '{text}' has an empty list item")
    if "?" in text:
        raise _FieldError(
            f"{bounds.name} field '{text}': '?' is not cron syntax; use '*'"
        )
    return items


def _parse_item(item: str, bounds: _Bounds) -> range:
    """Expand ``*``, ``n``, ``a-b``, each optionally followed by ``/step``."""
    base, slash, step_text = item.partition("/")
    step = _parse_step(step_text, item, bounds) if slash else 1
    if base == "*":
        return range(bounds.low, bounds.high + 1, step)
    if "-" not in base[1:]:
        low = _parse_value(base, item, bounds)
        return range(low, (bounds.high if slash else low) + 1, step)

    start_text, _, end_text = base.partition("-")
    low = _parse_value(start_text, item, bounds)
    high = _parse_value(end_text, item, bounds)
    if bounds is _WEEKDAY and high == 0 < low:
        high = 7
    if low > high:
        raise _FieldError(
            f"{bounds.name} range '{base}' runs backwards; "
            "write it as two ranges joined by ','"
        )
    return range(low, high + 1, step)


def _parse_step(text: str, item: str, bounds: _Bounds) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _FieldError(f"{bounds.name} step in '{item}' must be a whole number")
    if int(text) == 0:
        raise _FieldError(f"{bounds.name} step in '{item}' must be at least 1, not 0")
    return int(text)


def _parse_value(text: str, item: str, bounds: _Bounds) -> int:
    if text.startswith("-"):
        raise _FieldError(f"{bounds.name} '{item}': negative values are not allowed")
    if text.isascii() and text.isdigit():
        value = int(text)
    elif text in bounds.names:
        value = bounds.names[text]
    else:
        raise _FieldError(f"'{text}' in '{item}' is not a valid {bounds.name} value")
    if not bounds.low <= value <= bounds.high:
        raise _FieldError(
            f"{bounds.name} value {value} is out of range "
            f"{bounds.low}-{bounds.high}{_range_note(bounds)}"
        )
    return value


def _range_note(bounds: _Bounds) -> str:
    return " (0 and 7 are both Sunday)" if bounds is _WEEKDAY else ""


def _parse_days(day_text: str, weekday_text: str) -> DaySpec:
    """Parse day-of-month and day-of-week, which only make sense together."""
    by_day = _parse_day_of_month(day_text)
    by_weekday = _parse_day_of_week(weekday_text)
    return replace(
        by_day,
        weekdays=by_weekday.weekdays,
        nth_weekdays=by_weekday.nth_weekdays,
        last_weekdays=by_weekday.last_weekdays,
        intersect=day_text.startswith("*") or weekday_text.startswith("*"),
    )


def _parse_day_of_month(text: str) -> DaySpec:
    if "w" in text:
        return _parse_workday(text)
    days: set[int] = set()
    last_day = False
    for item in _items(text, _DAY):
        if item == "l":
            last_day = True
        elif item.startswith("l"):
            raise _FieldError(
                f"day-of-month '{item.upper()}' is not supported; 'L' alone means "
                "the last day of the month (offsets such as 'L-3' are not supported)"
            )
        else:
            days.update(_parse_item(item, _DAY))
    return DaySpec(days=frozenset(days), last_day=last_day)


def _parse_workday(text: str) -> DaySpec:
    if text == "lw":
        return DaySpec(last_workday=True)
    match = _NEAREST.fullmatch(text)
    if match is None:
        raise _FieldError(
            f"day-of-month '{text.upper()}': 'W' takes a single day, as in '15W', "
            "or 'LW' for the last weekday; it cannot be used in a list, range or step"
        )
    return DaySpec(nearest_workday=_parse_value(match[1], text.upper(), _DAY))


def _parse_day_of_week(text: str) -> DaySpec:
    weekdays: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for item in _items(text, _WEEKDAY):
        if "#" in item:
            nth.add(_parse_nth(item))
        elif item.startswith("l"):
            raise _FieldError(
                f"day-of-week '{item.upper()}': write the weekday before 'L', as in "
                "'5L' for the last Friday of the month"
            )
        elif item.endswith("l"):
            last.add(_parse_value(item[:-1], item, _WEEKDAY) % 7)
        else:
            weekdays.update(value % 7 for value in _parse_item(item, _WEEKDAY))
    return DaySpec(
        weekdays=frozenset(weekdays),
        nth_weekdays=frozenset(nth),
        last_weekdays=frozenset(last),
    )


def _parse_nth(item: str) -> tuple[int, int]:
    weekday_text, _, nth_text = item.partition("#")
    weekday = _parse_value(weekday_text, item, _WEEKDAY) % 7
    if not (nth_text.isascii() and nth_text.isdigit() and 1 <= int(nth_text) <= 5):
        raise _FieldError(
            f"day-of-week '{item}': the occurrence after '#' must be 1-5, "
            f"as in '{weekday_text}#2' for the second one of the month"
        )
    return weekday, int(nth_text)


def _check_can_fire(fields: CronFields, day: str, month: str, weekday: str) -> None:
    if _ever_matches(fields.days, fields.months):
        return
    day_alone = replace(
        fields.days,
        weekdays=frozenset(),
        nth_weekdays=frozenset(),
        last_weekdays=frozenset(),
        intersect=False,
    )
    if not _ever_matches(day_alone, fields.months):
        raise _FieldError(
            f"it can never fire: no day in day-of-month '{day.upper()}' exists "
            f"in month '{month}'; use 'L' for the last day of the month"
        )
    raise _FieldError(
        f"it can never fire: day-of-month '{day.upper()}' and day-of-week "
        f"'{weekday.upper()}' never match the same day in month '{month}' (a field "
        "starting with '*' makes the two combine with AND, not OR)"
    )


def _ever_matches(days: DaySpec, months: tuple[int, ...]) -> bool:
    """Tell whether any real date matches, whatever the year.

    Every month starts on every weekday in some year, February included in both its
    lengths, so trying each shape of each month is exhaustive.
    """
    for month in months:
        lengths = (28, 29) if month == 2 else (calendar.monthrange(2001, month)[1],)
        for length in lengths:
            if any(days.in_shape(first, length) for first in range(7)):
                return True
    return False
