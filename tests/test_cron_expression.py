"""Tests for :class:`alepha_jobs.cron.CronExpression`.

The shared cases come first, then one group per family of bugs they stand for, then
properties checked against a brute-force reading of the daylight-saving policy.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from alepha_jobs.cron import CronExpression
from alepha_jobs.errors import (
    InvalidArgumentError,
    InvalidCronExpression,
    RegistrationError,
)

UTC = timezone.utc
DATA = Path(__file__).parent / "data"
NEXT_CASES = json.loads((DATA / "cron-next.json").read_text())
INVALID_CASES = json.loads((DATA / "cron-invalid.json").read_text())

#: What the refusal of each invalid case must mention besides the expression.
INVALID_MESSAGES = {
    "INV-03": "minute",
    "INV-04": "day-of-month",
    "INV-05": "minute step",
    "INV-06": "minute",
    "INV-09": "month",
    "INV-10": "day-of-week",
    "INV-11": "day-of-month",
    "INV-12": "day-of-month",
    "INV-14": "1-5",
    "INV-15": "day-of-week",
    "INV-16": "1-5",
    "INV-17": "4 fields",
    "INV-19": "7 fields",
    "INV-21": "alias",
    "INV-22": "L-3",
    "INV-23": "'W'",
}


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(
    zone: str,
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    fold: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)


def fires(expr: str, zone: str, after: datetime, count: int) -> list[str]:
    times = CronExpression(expr, zone).upcoming(after, count)
    return [moment.isoformat() for moment in times]


def fires_between(
    expr: str, zone: str, start: datetime, end: datetime
) -> list[datetime]:
    """Iterate ``next`` from ``start`` and keep the fire times before ``end``."""
    cron = CronExpression(expr, zone)
    found = []
    moment = cron.next(start)
    while moment < end:
        found.append(moment)
        moment = cron.next(moment)
    return found


# -- the shared cases ----------------------------------------------------------------


@pytest.mark.parametrize("case", NEXT_CASES, ids=[c["id"] for c in NEXT_CASES])
def test_next_fire_times_match_the_shared_case(case: dict[str, object]) -> None:
    start = datetime.fromisoformat(str(case["start"]))
    got = fires(str(case["expr"]), str(case["tz"]), start, 5)
    assert got == case["expected_next"]


@pytest.mark.parametrize("case", INVALID_CASES, ids=[c["id"] for c in INVALID_CASES])
def test_invalid_shared_case_is_refused_naming_the_problem(
    case: dict[str, object],
) -> None:
    with pytest.raises(InvalidCronExpression) as caught:
        CronExpression(str(case["expr"]))
    message = str(caught.value)
    assert f"'{case['expr']}'" in message
    assert INVALID_MESSAGES[str(case["id"])] in message


def test_every_invalid_case_has_an_expected_message() -> None:
    assert {case["id"] for case in INVALID_CASES} == set(INVALID_MESSAGES)


def test_refusal_is_a_registration_error_and_a_value_error() -> None:
    with pytest.raises(RegistrationError):
        CronExpression("61 * * * *")
    with pytest.raises(ValueError):
        CronExpression("61 * * * *")


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("", ["empty", "5 fields"]),
        ("   ", ["empty"]),
        ("* * *", ["3 fields", "5", "6"]),
        ("* 24 * * *", ["hour", "0-23"]),
        ("* * 32 * *", ["day-of-month", "1-31"]),
        ("* * 0 * *", ["day-of-month"]),
        ("60 * * * * *", ["second", "0-59"]),
        ("* * * * fry", ["'fry'", "day-of-week"]),
        ("* * * jane *", ["'jane'", "month"]),
        ("* 5-2 * * *", ["hour", "backwards"]),
        ("1-5/0 * * * *", ["minute step", "at least 1"]),
        ("*/x * * * *", ["minute step", "whole number"]),
        ("1,,2 * * * *", ["minute", "empty"]),
        ("* * ? * *", ["day-of-month", "'?'"]),
        ("0 0 * * L", ["day-of-week", "5L"]),
        ("0 0 * * L5", ["day-of-week", "5L"]),
        ("0 0 1-5#2 * *", ["day-of-month"]),
        ("0 0 * * 1-5#2", ["day-of-week"]),
        ("0 0 15W,L * *", ["'W'"]),
        ("0 0 1-15W * *", ["'W'"]),
        ("0 0 32W * *", ["day-of-month", "1-31"]),
        ("0 0 L/2 * *", ["day-of-month"]),
        ("@reboot", ["alias", "@daily"]),
        ("0 0 31 4,jun,9,11 *", ["never fire", "day-of-month", "'L'"]),
        ("0 0 30,31 feb *", ["never fire", "day-of-month"]),
        ("0 0 30W 2 *", ["never fire", "day-of-month"]),
        ("0 0 */30 2 5L", ["never fire", "day-of-week", "AND"]),
    ],
)
def test_malformed_expression_is_refused_naming_the_field(
    expr: str, words: list[str]
) -> None:
    with pytest.raises(InvalidCronExpression) as caught:
        CronExpression(expr)
    message = str(caught.value)
    assert f"'{expr.strip()}'" in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("value", [None, 5, b"* * * * *", ["*"] * 5])
def test_non_string_expression_is_refused(value: object) -> None:
    with pytest.raises(InvalidCronExpression, match="expected a string"):
        CronExpression(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("expr", ["*/61 * * * *", "0 */25 * * *", "0 0 */32 * *"])
def test_step_larger_than_the_range_keeps_only_the_first_value(expr: str) -> None:
    first = CronExpression(expr).next(utc(2024, 1, 1, 0, 30))
    assert first.minute == 0


def test_february_29_alone_is_accepted_and_fires_in_leap_years() -> None:
    assert fires("0 0 29 2 *", "UTC", utc(2024, 3, 1), 2) == [
        "2028-02-29T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00",
    ]


def test_impossible_day_of_month_is_accepted_when_day_of_week_can_fire() -> None:
    # POSIX OR: Mondays of February still fire although the 30th never does.
    assert fires("0 0 30 2 1", "UTC", utc(2024, 1, 1), 2) == [
        "2024-02-05T00:00:00+00:00",
        "2024-02-12T00:00:00+00:00",
    ]


# -- time zones and arguments ----------------------------------------------------------


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", 5])
def test_unknown_time_zone_is_refused_naming_it(zone: object) -> None:
    with pytest.raises(InvalidCronExpression) as caught:
        CronExpression("0 3 * * *", zone)  # type: ignore[arg-type]
    assert repr(zone) in str(caught.value)
    assert "'0 3 * * *'" in str(caught.value)


def test_naive_datetime_is_refused() -> None:
    cron = CronExpression("0 3 * * *")
    with pytest.raises(InvalidArgumentError, match="timezone-aware"):
        cron.next(datetime(2024, 1, 1))
    with pytest.raises(InvalidArgumentError, match="timezone-aware"):
        cron.upcoming(datetime(2024, 1, 1), 3)


@pytest.mark.parametrize("value", ["2024-01-01", 1704067200, None])
def test_non_datetime_is_refused(value: object) -> None:
    with pytest.raises(InvalidArgumentError):
        CronExpression("0 3 * * *").next(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [-1, 2.0, True, "3"])
def test_upcoming_refuses_a_bad_count(count: object) -> None:
    with pytest.raises(InvalidArgumentError, match="count"):
        cron = CronExpression("0 3 * * *")
        cron.upcoming(utc(2024, 1, 1), count)  # type: ignore[arg-type]


def test_upcoming_zero_is_empty() -> None:
    assert CronExpression("0 3 * * *").upcoming(utc(2024, 1, 1), 0) == []


def test_result_is_aware_in_the_expression_zone_whatever_the_argument_zone() -> None:
    cron = CronExpression("0 3 * * *", "Europe/Paris")
    result = cron.next(local("Asia/Tokyo", 2024, 6, 1, 12))
    assert result.tzinfo == ZoneInfo("Europe/Paris")
    assert result.isoformat() == "2024-06-02T03:00:00+02:00"


def test_attributes_repr_and_equality() -> None:
    cron = CronExpression("  0 3 * * *  ", "Europe/Paris")
    assert cron.expression == "0 3 * * *"
    assert cron.timezone == ZoneInfo("Europe/Paris")
    assert cron.has_seconds is False
    assert CronExpression("0 0 3 * * *").has_seconds is True
    assert repr(cron) == "CronExpression('0 3 * * *', timezone='Europe/Paris')"
    assert cron == CronExpression("0 3 * * *", "Europe/Paris")
    assert cron != CronExpression("0 3 * * *")
    assert cron != "0 3 * * *"
    assert len({cron, CronExpression("0 3 * * *", "Europe/Paris")}) == 1


def test_next_is_strictly_after_a_fire_time_given_in_microseconds() -> None:
    cron = CronExpression("0 3 * * *")
    assert cron.next(utc(2024, 1, 1, 3)) == utc(2024, 1, 2, 3)
    assert cron.next(
        utc(2024, 1, 1, 2, 59, 59) + timedelta(microseconds=999999)
    ) == utc(2024, 1, 1, 3)


# -- syntax: aliases, names, Sunday, specials ----------------------------------------


@pytest.mark.parametrize(
    ("alias", "expansion"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_alias_fires_like_its_expansion(alias: str, expansion: str) -> None:
    start = local("America/New_York", 2024, 3, 9, 22, 30)
    assert fires(alias, "America/New_York", start, 8) == fires(
        expansion, "America/New_York", start, 8
    )


@pytest.mark.parametrize(
    ("named", "numeric"),
    [
        ("0 9 * JAN-MAR MON-FRI", "0 9 * 1-3 1-5"),
        ("0 9 * jan,Jul sat,SUN", "0 9 * 1,7 6,0"),
        ("0 9 * * fri-sun", "0 9 * * 5,6,0"),
        ("0 9 * * 5-0", "0 9 * * 5-7"),
        ("0 9 * dec/2 *", "0 9 * 12 *"),
        ("0 9 * * thu#2,friL", "0 9 * * 4#2,5L"),
    ],
)
def test_names_are_case_insensitive_and_equal_numbers(named: str, numeric: str) -> None:
    start = utc(2024, 1, 1)
    assert fires(named, "UTC", start, 12) == fires(numeric, "UTC", start, 12)


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN", "6-7", "0,6"])
def test_sunday_is_0_or_7(sunday: str) -> None:
    got = CronExpression(f"0 2 * * {sunday}").upcoming(utc(2024, 6, 1, 3), 4)
    assert all(moment.weekday() in (5, 6) for moment in got)
    assert any(moment.weekday() == 6 for moment in got)


def test_single_value_range_means_that_value_only() -> None:
    # croniter reads "1-1" as the whole week and "3-3" as every month.
    assert fires("0 0 * * 1-1", "UTC", utc(2024, 1, 1), 2) == [
        "2024-01-08T00:00:00+00:00",
        "2024-01-15T00:00:00+00:00",
    ]
    assert fires("0 0 1 3-3 *", "UTC", utc(2024, 1, 1), 2) == [
        "2024-03-01T00:00:00+00:00",
        "2025-03-01T00:00:00+00:00",
    ]


def test_start_with_step_runs_to_the_end_of_the_field() -> None:
    assert fires("50/4 * * * *", "UTC", utc(2024, 1, 1), 4) == [
        "2024-01-01T00:50:00+00:00",
        "2024-01-01T00:54:00+00:00",
        "2024-01-01T00:58:00+00:00",
        "2024-01-01T01:50:00+00:00",
    ]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # 1W: 2024-06-01 is a Saturday, the weekday stays in June: Monday the 3rd.
        ("0 0 1W 6 *", "2024-06-03"),
        # 30W: 2024-06-30 is a Sunday and the month ends: Friday the 28th.
        ("0 0 30W 6 *", "2024-06-28"),
        # 15W: 2024-09-15 is a Sunday: Monday the 16th.
        ("0 0 15W 9 *", "2024-09-16"),
        # 15W: 2024-05-15 is a Wednesday: itself.
        ("0 0 15W 5 *", "2024-05-15"),
        # LW: 2024-08-31 is a Saturday: Friday the 30th.
        ("0 0 LW 8 *", "2024-08-30"),
        # LW: 2024-03-31 is a Sunday: Friday the 29th.
        ("0 0 LW 3 *", "2024-03-29"),
        ("0 0 L 2 *", "2024-02-29"),
        ("0 0 * * 7L", "2024-01-28"),
        ("0 0 * * sunL", "2024-01-28"),
        ("0 0 * * 1#1", "2024-01-01"),
        ("0 0 * * MON#5", "2024-01-29"),
        ("0 0 * * 7#1", "2024-01-07"),
    ],
)
def test_last_nearest_weekday_and_nth_specials(expr: str, expected: str) -> None:
    first = CronExpression(expr).next(utc(2023, 12, 31, 12))
    assert first.date().isoformat() == expected


def test_31w_is_skipped_in_months_without_a_31st() -> None:
    got = CronExpression("0 0 31W * *").upcoming(utc(2024, 4, 1), 3)
    assert [moment.date().isoformat() for moment in got] == [
        "2024-05-31",
        "2024-07-31",
        "2024-08-30",
    ]


def test_a_list_mixes_plain_nth_and_last_weekdays() -> None:
    # croniter refuses to mix "#" with plain weekdays; the list is a union.
    got = CronExpression("0 0 * * 3,1#2,5L").upcoming(utc(2024, 1, 1), 7)
    assert [moment.day for moment in got] == [3, 8, 10, 17, 24, 26, 31]


def test_seconds_field_comes_first() -> None:
    assert fires("15,45 30 9 * * *", "UTC", utc(2024, 1, 1), 3) == [
        "2024-01-01T09:30:15+00:00",
        "2024-01-01T09:30:45+00:00",
        "2024-01-02T09:30:15+00:00",
    ]
    assert fires(
        "* * * * * *", "UTC", utc(2024, 1, 1) + timedelta(microseconds=500), 2
    ) == [
        "2024-01-01T00:00:01+00:00",
        "2024-01-01T00:00:02+00:00",
    ]


# -- day-of-month with day-of-week: POSIX OR, Vixie AND ------------------------------


@pytest.mark.parametrize(
    ("expr", "days"),
    [
        # Neither starts with '*': OR.
        ("0 0 1,15 * 1", [1, 2, 9, 15, 16, 23, 30]),
        ("0 0 13 * fri", [6, 13, 20, 27]),
        # OR with '#' and 'L' (croniter raises "failed to find next date" on '#').
        ("0 0 1-3 * 2#2", [1, 2, 3, 10]),
        ("0 0 20 * 5L", [20, 27]),
        ("0 0 L * 1#1", [2, 30]),
        # Day-of-month starts with '*': AND (Vixie's DOM_STAR).
        ("0 0 */10 * 3", [11]),
        ("0 0 *,15 * 0", [1, 8, 15, 22, 29]),
        ("0 0 */2 * 1#2", [9]),
        # Day-of-week starts with '*': AND.
        ("0 0 2-12 * */3", [4, 7, 8, 11]),
        ("0 0 L * */6", []),
        # Both '*': every day.
        ("0 0 * * *", list(range(1, 31))),
    ],
)
def test_day_fields_combine_with_or_unless_one_starts_with_star(
    expr: str, days: list[int]
) -> None:
    """September 2024 starts on a Sunday and has 30 days."""
    start, end = utc(2024, 8, 31, 12), utc(2024, 10, 1)
    got = fires_between(expr, "UTC", start, end)
    assert [moment.day for moment in got] == days


def test_vixie_and_keeps_working_across_months() -> None:
    # First Tuesday of each month, written with a star-led day-of-month.
    got = CronExpression("0 0 */40,1-7 * tue").upcoming(utc(2025, 1, 1), 4)
    assert [moment.date().isoformat() for moment in got] == [
        "2025-01-07",
        "2025-02-04",
        "2025-03-04",
        "2025-04-01",
    ]


def test_and_with_a_rare_combination_still_finds_it() -> None:
    # February 29th that is a Friday: 2036, 2064, 2092, then 2104 (2100 not leap).
    got = CronExpression("0 0 */28 2 5#5").upcoming(utc(2024, 1, 1), 4)
    assert [moment.year for moment in got] == [2036, 2064, 2092, 2104]


# -- daylight saving: fixed-time jobs --------------------------------------------------

FALL_BACK = [
    # zone, a wall time in the repeated interval, its local date
    ("America/New_York", "30 1", (2025, 11, 2)),
    ("America/New_York", "59 1", (2019, 11, 3)),
    ("Europe/Berlin", "30 2", (2024, 10, 27)),
    ("Europe/London", "15 1", (2031, 10, 26)),
    ("Australia/Sydney", "30 2", (2024, 4, 7)),
    ("Australia/Lord_Howe", "45 1", (2024, 4, 7)),
    ("America/Santiago", "30 23", (2024, 4, 6)),
]


@pytest.mark.parametrize(("zone", "time", "day"), FALL_BACK)
def test_fixed_time_in_a_repeated_hour_fires_once_at_the_first_pass(
    zone: str, time: str, day: tuple[int, int, int]
) -> None:
    start = local(zone, *day) - timedelta(days=1)
    got = fires_between(f"{time} * * *", zone, start, start + timedelta(days=3))
    on_day = [moment for moment in got if moment.timetuple()[:3] == day]
    assert len(on_day) == 1
    assert on_day[0].fold == 0
    assert len(got) == 3


@pytest.mark.parametrize("year", range(2019, 2031))
@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin"])
def test_fixed_time_fires_once_a_day_every_year(zone: str, year: int) -> None:
    start = local(zone, year, 1, 1)
    for expr in ("30 1 * * *", "30 2 * * *", "0 30 2 * * *"):
        got = fires_between(expr, zone, start, local(zone, year + 1, 1, 1))
        assert len({moment.date() for moment in got}) == len(got)
        assert len(got) in (365, 366)


@pytest.mark.parametrize(
    ("zone", "expr", "day", "expected"),
    [
        ("America/New_York", "30 2 * * *", (2024, 3, 10), "03:00:00-04:00"),
        ("Europe/Berlin", "30 2 * * *", (2024, 3, 31), "03:00:00+02:00"),
        ("Europe/Berlin", "0,15,30,45 2 * * *", (2025, 3, 30), "03:00:00+02:00"),
        ("Europe/Berlin", "0 2,3 * * *", (2026, 3, 29), "03:00:00+02:00"),
        ("Australia/Lord_Howe", "15 2 * * *", (2024, 10, 6), "02:30:00+11:00"),
        ("America/Santiago", "0 0 * * *", (2024, 9, 8), "01:00:00-03:00"),
        ("America/Havana", "30 0 * * *", (2024, 3, 10), "01:00:00-04:00"),
    ],
)
def test_fixed_time_in_a_skipped_hour_fires_once_right_after_the_jump(
    zone: str, expr: str, day: tuple[int, int, int], expected: str
) -> None:
    start = local(zone, *day) - timedelta(hours=12)
    got = fires_between(expr, zone, start, start + timedelta(days=1))
    on_day = [m.isoformat() for m in got if m.timetuple()[:3] == day]
    assert on_day[0] == f"{datetime(*day).date().isoformat()}T{expected}"
    assert len(on_day) == 1


def test_skipped_day_fires_once_at_the_jump() -> None:
    # Samoa skipped 2011-12-30 entirely, jumping from UTC-10 to UTC+14.
    assert fires(
        "0 9 * * *", "Pacific/Apia", local("Pacific/Apia", 2011, 12, 29), 3
    ) == [
        "2011-12-29T09:00:00-10:00",
        "2011-12-31T00:00:00+14:00",
        "2011-12-31T09:00:00+14:00",
    ]


def test_fixed_time_after_its_first_pass_waits_for_the_next_day() -> None:
    # After 01:30 EDT has fired, 01:30 EST is the repeat and is not a fire time.
    after = local("America/New_York", 2025, 11, 2, 1, 45)
    assert fires("30 1 * * *", "America/New_York", after, 1) == [
        "2025-11-03T01:30:00-05:00"
    ]
    second_pass = local("America/New_York", 2025, 11, 2, 1, 15, fold=1)
    assert fires("30 1 * * *", "America/New_York", second_pass, 1) == [
        "2025-11-03T01:30:00-05:00"
    ]


# -- daylight saving: wall-clock jobs --------------------------------------------------


def test_wildcard_hour_fires_in_both_passes_of_a_repeated_hour() -> None:
    start = local("Australia/Lord_Howe", 2024, 4, 7, 1)
    assert fires("*/15 1 * * *", "Australia/Lord_Howe", start, 6) == [
        "2024-04-07T01:15:00+11:00",
        "2024-04-07T01:30:00+11:00",
        "2024-04-07T01:45:00+11:00",
        "2024-04-07T01:30:00+10:30",
        "2024-04-07T01:45:00+10:30",
        "2024-04-08T01:00:00+10:30",
    ]


def test_wildcard_hour_skips_times_that_do_not_exist() -> None:
    start = local("Europe/Berlin", 2024, 3, 31, 1, 40)
    assert fires("*/20 * * * *", "Europe/Berlin", start, 3) == [
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:20:00+02:00",
        "2024-03-31T03:40:00+02:00",
    ]


@pytest.mark.parametrize("fold", [0, 1])
@pytest.mark.parametrize("expr", ["* * * * *", "*/7 * * * * *", "30 * * * *"])
def test_after_in_a_repeated_hour_gives_a_strictly_later_instant(
    expr: str, fold: int
) -> None:
    cron = CronExpression(expr, "Europe/Helsinki")
    after = local("Europe/Helsinki", 2017, 10, 29, 3, 45, fold=fold)
    result = cron.next(after)
    assert result.astimezone(UTC) > after.astimezone(UTC)
    assert result.astimezone(UTC) - after.astimezone(UTC) <= timedelta(minutes=45)


def test_never_firing_in_a_zone_is_reported() -> None:
    # The fifth Sunday of March is the changeover day, and 02:xx never exists.
    cron = CronExpression("*/5 2 * 3 0#5", "Europe/Berlin")
    with pytest.raises(InvalidCronExpression, match="Europe/Berlin"):
        cron.next(utc(2024, 1, 1))


# -- properties ----------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("expr", ["*/30 * * * *", "30 2 * * *", "0 30 1 * * *"])
def test_a_year_of_fire_times_is_strictly_increasing_in_utc(
    expr: str, zone: str
) -> None:
    got = fires_between(expr, zone, utc(2024, 1, 1), utc(2025, 1, 1))
    instants = [moment.astimezone(UTC) for moment in got]
    assert all(a < b for a, b in zip(instants, instants[1:], strict=False))
    assert all(moment.tzinfo == ZoneInfo(zone) for moment in got)
    if expr != "*/30 * * * *":
        assert len({moment.date() for moment in got}) == len(got) == 366


def test_half_hourly_count_follows_the_wall_clock() -> None:
    # A 23-hour day in March (46 fires) and a 25-hour day in October (50 fires).
    start = local("Europe/Berlin", 2024, 1, 1) - timedelta(seconds=1)
    got = fires_between(
        "*/30 * * * *", "Europe/Berlin", start, local("Europe/Berlin", 2025, 1, 1)
    )
    per_day = Counter(moment.date() for moment in got)
    assert per_day[date(2024, 3, 31)] == 46
    assert per_day[date(2024, 10, 27)] == 50
    assert len(got) == 366 * 48


def _transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    found = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    while moment.year == year:
        later = moment + timedelta(hours=1)
        if moment.astimezone(zone).utcoffset() != later.astimezone(zone).utcoffset():
            found.append(moment)
        moment = later
    return found


def _plain_values(text: str, high: int) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        low, _, top = (f"0-{high}" if base == "*" else base).partition("-")
        values.update(range(int(low), int(top or low) + 1, int(step or 1)))
    return values


def _policy_fires(
    expr: str, zone: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    """Debian's policy read literally, one UTC minute at a time."""
    minute_text, hour_text = expr.split()[:2]
    minutes, hours = _plain_values(minute_text, 59), _plain_values(hour_text, 23)
    fixed = not (minute_text.startswith("*") or hour_text.startswith("*"))

    def matches(wall: datetime) -> bool:
        return wall.minute in minutes and wall.hour in hours

    found = []
    moment = start
    while moment < end:
        wall = moment.astimezone(zone)
        on_time = matches(wall) and (wall.fold == 0 or not fixed)
        if on_time or (fixed and _skipped_walls_match(moment, zone, matches)):
            found.append(moment)
        moment += timedelta(minutes=1)
    return found


def _skipped_walls_match(
    moment: datetime, zone: ZoneInfo, matches: Callable[[datetime], bool]
) -> bool:
    before = (moment - timedelta(minutes=1)).astimezone(zone).utcoffset()
    after = moment.astimezone(zone).utcoffset()
    assert before is not None and after is not None
    wall = (moment + before).replace(tzinfo=None)
    while wall < (moment + after).replace(tzinfo=None):
        if matches(wall):
            return True
        wall += timedelta(minutes=1)
    return False


@pytest.mark.parametrize(
    "zone", [*ZONES, "America/Santiago", "Australia/Sydney", "America/Havana"]
)
@pytest.mark.parametrize(
    "expr",
    [
        "30 2 * * *",
        "0,30 2 * * *",
        "15 1 * * *",
        "0 0 * * *",
        "45 0-3 * * *",
        "*/15 * * * *",
        "30 * * * *",
        "* 2 * * *",
        "*/20 1-3 * * *",
    ],
)
def test_fire_times_around_transitions_match_a_minute_by_minute_reading(
    expr: str, zone: str
) -> None:
    tz = ZoneInfo(zone)
    for transition in _transitions(tz, 2024):
        start, end = transition - timedelta(hours=30), transition + timedelta(hours=30)
        got = [
            moment.astimezone(UTC) for moment in fires_between(expr, zone, start, end)
        ]
        assert got == _policy_fires(expr, tz, start + timedelta(minutes=1), end)


def _random_field(rng: random.Random, high: int, low: int = 0) -> str:
    a, b = sorted(rng.sample(range(low, high + 1), 2))
    return rng.choice(
        ["*", str(a), f"{a},{b}", f"{a}-{b}", f"*/{rng.randint(2, 9)}", f"{a}-{b}/2"]
    )


def test_plain_expressions_agree_with_croniter_in_utc() -> None:
    """croniter is right about plain fields in UTC: use it as a second opinion.

    Expressions where exactly one day field starts with '*' without being '*' are
    left out: there croniter ORs where Vixie cron ANDs.
    """
    rng = random.Random(20240101)
    checked = 0
    while checked < 300:
        day, weekday = _random_field(rng, 28, 1), _random_field(rng, 6)
        if day.startswith("*/") or weekday.startswith("*/"):
            continue
        expr = " ".join(
            [_random_field(rng, 59), _random_field(rng, 23), day]
            + [_random_field(rng, 12, 1), weekday]
        )
        start = utc(2024, 1, 1) + timedelta(minutes=rng.randint(0, 10**6))
        expected = croniter(expr, start)
        ours = CronExpression(expr).upcoming(start, 5)
        assert ours == [expected.get_next(datetime) for _ in range(5)], expr
        checked += 1
