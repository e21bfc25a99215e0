"""Configuration (SPEC §9.1, DESIGN §3), durations (SPEC §0.3) and the database URL."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alepha_jobs import (
    ConfigurationError,
    InvalidArgumentError,
    Jobs,
    JobsConfig,
    JobsError,
)
from alepha_jobs.durations import to_seconds, to_timedelta

from .conftest import NEVER, MakeJobs

FIELDS = [f.name for f in dataclasses.fields(JobsConfig) if f.name != "random"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``ALEPHA_JOBS_*`` variable from the outer environment leaks in."""
    for name in [*FIELDS, "database_url"]:
        monkeypatch.delenv(f"ALEPHA_JOBS_{name.upper()}", raising=False)


# SPEC §9.1 defaults


def test_defaults_follow_spec() -> None:
    """§9.1, with milliseconds as timedelta; ``pickup_delay`` is DESIGN §8.10."""
    config = JobsConfig()

    assert config.sweep_cron == "*/15 * * * *"
    assert config.trim_cron == "0 * * * *"
    assert config.sweep_batch_size == 200
    assert config.max_redispatch == 3
    assert config.retry_backoff_base == timedelta(seconds=5)
    assert config.retry_backoff_max == timedelta(minutes=30)
    assert config.stale_threshold == timedelta(minutes=5)
    assert config.run_timeout == timedelta(minutes=30)
    assert config.retention_error_days == 30
    assert config.retention_max_rows == 1000
    assert config.log_max_entries == 100
    assert config.drain_timeout == timedelta(seconds=30)
    assert config.direct_max_concurrency == 10
    assert config.pickup_delay == timedelta(seconds=1)


def test_the_default_jitter_source_returns_fractions() -> None:
    draw = JobsConfig().random()

    assert 0 <= draw < 1


def test_config_is_frozen() -> None:
    config = JobsConfig()

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sweep_batch_size = 5  # type: ignore[misc]


# explicit values


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("sweep_cron", "*/5 * * * *", "*/5 * * * *"),
        ("sweep_batch_size", 50, 50),
        ("max_redispatch", 0, 0),
        ("log_max_entries", 0, 0),
        ("direct_max_concurrency", 1, 1),
        ("stale_threshold", 120, timedelta(minutes=2)),
        ("run_timeout", "1.5h", timedelta(minutes=90)),
        ("drain_timeout", (2, "minutes"), timedelta(minutes=2)),
        ("retry_backoff_base", timedelta(seconds=0), timedelta(0)),
        ("pickup_delay", 0.25, timedelta(milliseconds=250)),
    ],
)
def test_explicit_values_are_stored_normalised(
    field: str, value: Any, expected: Any
) -> None:
    config = JobsConfig(**{field: value})

    assert getattr(config, field) == expected


def test_replace_returns_a_validated_copy() -> None:
    config = JobsConfig()

    changed = config.replace(max_redispatch=7)

    assert changed.max_redispatch == 7
    assert config.max_redispatch == 3
    with pytest.raises(ConfigurationError, match="max_redispatch"):
        config.replace(max_redispatch=-1)


# ALEPHA_JOBS_<NAME> environment overrides


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("sweep_cron", "*/5 * * * *", "*/5 * * * *"),
        ("trim_cron", " 30 * * * * ", "30 * * * *"),
        ("sweep_batch_size", "50", 50),
        ("max_redispatch", " 0 ", 0),
        ("retention_error_days", "7", 7),
        ("retention_max_rows", "10", 10),
        ("log_max_entries", "20", 20),
        ("direct_max_concurrency", "4", 4),
        ("retry_backoff_base", "2", timedelta(seconds=2)),
        ("retry_backoff_max", "10 min", timedelta(minutes=10)),
        ("stale_threshold", "90 seconds", timedelta(seconds=90)),
        ("run_timeout", "1.5h", timedelta(minutes=90)),
        ("drain_timeout", "0.5", timedelta(milliseconds=500)),
        ("pickup_delay", "250 ms", timedelta(milliseconds=250)),
    ],
)
def test_environment_variables_override_the_defaults(
    monkeypatch: pytest.MonkeyPatch, field: str, raw: str, expected: Any
) -> None:
    monkeypatch.setenv(f"ALEPHA_JOBS_{field.upper()}", raw)

    assert getattr(JobsConfig(), field) == expected


@pytest.mark.parametrize(
    ("field", "raw", "explicit"),
    [
        ("sweep_batch_size", "50", 70),
        ("stale_threshold", "90", timedelta(seconds=30)),
        ("sweep_cron", "*/5 * * * *", "*/7 * * * *"),
    ],
)
def test_explicit_values_beat_the_environment(
    monkeypatch: pytest.MonkeyPatch, field: str, raw: str, explicit: Any
) -> None:
    monkeypatch.setenv(f"ALEPHA_JOBS_{field.upper()}", raw)

    assert getattr(JobsConfig(**{field: explicit}), field) == explicit


def test_an_explicit_value_equal_to_the_default_still_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALEPHA_JOBS_MAX_REDISPATCH", "9")

    assert JobsConfig(max_redispatch=3).max_redispatch == 3


# invalid values


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sweep_batch_size", 0),
        ("max_redispatch", -1),
        ("retention_error_days", 0),
        ("retention_max_rows", 0),
        ("log_max_entries", -1),
        ("direct_max_concurrency", 0),
        ("sweep_batch_size", 2.5),
        ("sweep_batch_size", "200"),
        ("max_redispatch", True),
        ("stale_threshold", -1),
        ("run_timeout", "soon"),
        ("drain_timeout", "5 fortnights"),
        ("retry_backoff_max", math.nan),
        ("retry_backoff_base", timedelta(seconds=-1)),
        ("pickup_delay", True),
        ("sweep_cron", ""),
        ("trim_cron", None),
    ],
)
def test_invalid_values_raise_configuration_error_naming_the_field(
    field: str, value: Any
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        JobsConfig(**{field: value})

    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("sweep_batch_size", "lots"),
        ("sweep_batch_size", "2.5"),
        ("sweep_batch_size", "0"),
        ("max_redispatch", "-1"),
        ("direct_max_concurrency", ""),
        ("stale_threshold", "soon"),
        ("run_timeout", "-5 min"),
        ("drain_timeout", "5 fortnights"),
        ("sweep_cron", "   "),
    ],
)
def test_invalid_environment_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, field: str, raw: str
) -> None:
    variable = f"ALEPHA_JOBS_{field.upper()}"
    monkeypatch.setenv(variable, raw)

    with pytest.raises(ConfigurationError) as caught:
        JobsConfig()

    assert variable in str(caught.value)


def test_an_invalid_environment_value_is_ignored_when_the_field_is_explicit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALEPHA_JOBS_SWEEP_BATCH_SIZE", "lots")

    assert JobsConfig(sweep_batch_size=5).sweep_batch_size == 5


def test_a_random_source_that_is_not_callable_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="random"):
        JobsConfig(random=0.5)  # type: ignore[arg-type]


def test_configuration_error_is_a_jobs_error_and_a_value_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        JobsConfig(sweep_batch_size=0)

    assert isinstance(caught.value, JobsError)
    assert isinstance(caught.value, ValueError)


# durations (SPEC §0.3, DESIGN §3)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (timedelta(minutes=2), 120),
        (timedelta(0), 0),
        (30, 30),
        (0, 0),
        (2.5, 2.5),
        ("45", 45),
        ("30 seconds", 30),
        ("1 second", 1),
        ("5 min", 300),
        ("5min", 300),
        ("1.5h", 5400),
        ("2 hours", 7200),
        ("250 ms", 0.25),
        ("3 days", 259200),
        ("1 week", 604800),
        (" 10 Minutes ", 600),
        ((5, "minutes"), 300),
        ((1.5, "h"), 5400),
        ((2, "DAYS"), 172800),
    ],
)
def test_durations_accept_the_documented_forms(value: Any, seconds: float) -> None:
    assert to_timedelta(value) == timedelta(seconds=seconds)
    assert to_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        -1,
        -0.001,
        timedelta(seconds=-1),
        "-5 min",
        (-5, "minutes"),
        math.nan,
        math.inf,
        "nan",
        True,
        False,
        (True, "minutes"),
        "5 fortnights",
        (5, "parsecs"),
        (5, 5),
        "soon",
        "",
        None,
        [5, "minutes"],
        (5, "minutes", "extra"),
        object(),
    ],
)
def test_malformed_or_negative_durations_are_refused(value: Any) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        to_timedelta(value, "delay")

    assert isinstance(caught.value, JobsError)
    assert isinstance(caught.value, ValueError)
    assert "delay" in str(caught.value)


@pytest.mark.parametrize("value", ["5 fortnights", (5, "parsecs")])
def test_an_unknown_unit_is_named_with_the_accepted_ones(value: Any) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        to_timedelta(value)

    message = str(caught.value)
    assert ("fortnights" in message) or ("parsecs" in message)
    assert "minutes" in message


# the database URL of Jobs()


def _quiet_config() -> JobsConfig:
    return JobsConfig(sweep_cron=NEVER, trim_cron=NEVER)


def test_the_environment_database_url_is_used_when_none_is_passed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("ALEPHA_JOBS_DATABASE_URL", f"sqlite:///{path}")

    jobs = Jobs(config=_quiet_config())
    try:
        assert Path(jobs.store.path) == path
        assert path.exists()
    finally:
        jobs.close()


def test_an_explicit_url_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALEPHA_JOBS_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")

    jobs = Jobs(f"sqlite:///{tmp_path}/explicit.db", config=_quiet_config())
    try:
        assert (tmp_path / "explicit.db").exists()
        assert not (tmp_path / "env.db").exists()
    finally:
        jobs.close()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user@localhost/jobs",
        "redis://localhost:6379/0",
        "jobs.db",
        "sqlite://relative.db",
        "sqlite:///:memory:",
        "sqlite:///",
    ],
)
def test_unsupported_database_urls_raise_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Jobs(url, config=_quiet_config())

    assert url in str(caught.value)


def test_an_unsupported_environment_url_raises_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALEPHA_JOBS_DATABASE_URL", "sqlite:///:memory:")

    with pytest.raises(ConfigurationError, match="memory"):
        Jobs(config=_quiet_config())


@pytest.mark.parametrize("field", ["sweep_cron", "trim_cron"])
@pytest.mark.parametrize("expression", ["not a cron", "61 * * * *", "* * *"])
def test_an_invalid_housekeeping_cron_is_refused_at_jobs(
    make_jobs: MakeJobs, field: str, expression: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_jobs(**{field: expression})

    assert field in str(caught.value)
    assert expression in str(caught.value)


def test_an_invalid_housekeeping_cron_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("ALEPHA_JOBS_SWEEP_CRON", "every now and then")

    with pytest.raises(ConfigurationError, match="sweep_cron"):
        Jobs(db_url, config=JobsConfig(trim_cron=NEVER))
