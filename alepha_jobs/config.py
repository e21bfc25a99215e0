"""Runtime settings (SPEC §9) as one frozen, validated dataclass.

Every field can also come from an ``ALEPHA_JOBS_<FIELD>`` environment variable:
a value passed in code wins, then the environment, then the default.
"""

from __future__ import annotations

import dataclasses
import os
import random as _random
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from .durations import to_timedelta
from .errors import ConfigurationError, InvalidArgumentError

ENV_PREFIX = "ALEPHA_JOBS_"

DEFAULT_SWEEP_CRON = "*/15 * * * *"
DEFAULT_TRIM_CRON = "0 * * * *"
DEFAULT_SWEEP_BATCH_SIZE = 200
DEFAULT_MAX_REDISPATCH = 3
DEFAULT_RETRY_BACKOFF_BASE = timedelta(seconds=5)
DEFAULT_RETRY_BACKOFF_MAX = timedelta(minutes=30)
DEFAULT_STALE_THRESHOLD = timedelta(minutes=5)
DEFAULT_RUN_TIMEOUT = timedelta(minutes=30)
DEFAULT_RETENTION_ERROR_DAYS = 30
DEFAULT_RETENTION_MAX_ROWS = 1000
DEFAULT_LOG_MAX_ENTRIES = 100
DEFAULT_DRAIN_TIMEOUT = timedelta(seconds=30)
DEFAULT_DIRECT_MAX_CONCURRENCY = 10
DEFAULT_PICKUP_DELAY = timedelta(seconds=1)

_MISSING: Any = object()


def _env(default: object) -> Any:
    return dataclasses.field(default=_MISSING, metadata={"default": default})


@dataclasses.dataclass(frozen=True)
class JobsConfig:
    """Settings of one :class:`~alepha_jobs.Jobs` runtime.

    Durations accept anything :func:`~alepha_jobs.durations.to_timedelta` does and
    are stored as :class:`timedelta`. ``random`` is the jitter source: a callable
    returning a float in ``[0, 1)``, replaceable in tests.

    :raises ConfigurationError: a value (or its environment variable) is invalid.
    """

    sweep_cron: str = _env(DEFAULT_SWEEP_CRON)
    trim_cron: str = _env(DEFAULT_TRIM_CRON)
    sweep_batch_size: int = _env(DEFAULT_SWEEP_BATCH_SIZE)
    max_redispatch: int = _env(DEFAULT_MAX_REDISPATCH)
    retry_backoff_base: timedelta = _env(DEFAULT_RETRY_BACKOFF_BASE)
    retry_backoff_max: timedelta = _env(DEFAULT_RETRY_BACKOFF_MAX)
    stale_threshold: timedelta = _env(DEFAULT_STALE_THRESHOLD)
    run_timeout: timedelta = _env(DEFAULT_RUN_TIMEOUT)
    retention_error_days: int = _env(DEFAULT_RETENTION_ERROR_DAYS)
    retention_max_rows: int = _env(DEFAULT_RETENTION_MAX_ROWS)
    log_max_entries: int = _env(DEFAULT_LOG_MAX_ENTRIES)
    drain_timeout: timedelta = _env(DEFAULT_DRAIN_TIMEOUT)
    direct_max_concurrency: int = _env(DEFAULT_DIRECT_MAX_CONCURRENCY)
    pickup_delay: timedelta = _env(DEFAULT_PICKUP_DELAY)
    random: Callable[[], float] = dataclasses.field(
        default=_random.random, compare=False
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.name == "random":
                continue
            value = getattr(self, field.name)
            if value is _MISSING:
                checked = _checked_env(field.name, field.metadata["default"])
            else:
                checked = _check(field.name, value)
            object.__setattr__(self, field.name, checked)
        if not callable(self.random):
            raise ConfigurationError("random must be a zero-argument callable")

    def replace(self, **changes: Any) -> JobsConfig:
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


_INT_MINIMUMS = {
    "sweep_batch_size": 1,
    "max_redispatch": 0,
    "retention_error_days": 1,
    "retention_max_rows": 1,
    "log_max_entries": 0,
    "direct_max_concurrency": 1,
}
_DURATIONS = {
    "retry_backoff_base",
    "retry_backoff_max",
    "stale_threshold",
    "run_timeout",
    "drain_timeout",
    "pickup_delay",
}


def _from_env(
    name: str, default: object, environ: Mapping[str, str] | None = None
) -> object:
    variable = ENV_PREFIX + name.upper()
    raw = (os.environ if environ is None else environ).get(variable)
    if raw is None:
        return default
    if name in _INT_MINIMUMS:
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigurationError(
                f"{variable}={raw!r} is not a whole number"
            ) from None
    return raw.strip()


def _checked_env(name: str, default: object) -> object:
    """The checked environment value of ``name``, or its default; an invalid
    environment value is reported under the variable's name."""
    variable = ENV_PREFIX + name.upper()
    value = _from_env(name, default)
    if variable not in os.environ:
        return _check(name, value)
    try:
        return _check(name, value)
    except ConfigurationError as error:
        raise ConfigurationError(f"{variable}: {error}") from None


def _check(name: str, value: object) -> object:
    if name in _INT_MINIMUMS:
        return _check_int(name, value, _INT_MINIMUMS[name])
    if name in _DURATIONS:
        return _check_duration(name, value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a cron expression, got {value!r}")
    return value.strip()


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_duration(name: str, value: object) -> timedelta:
    try:
        return to_timedelta(_numeric_text(value), name)  # type: ignore[arg-type]
    except InvalidArgumentError as error:
        raise ConfigurationError(str(error)) from None


def _numeric_text(value: object) -> object:
    """Environment values such as ``"300"`` mean seconds."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
