"""Exit codes of ``alepha-jobs`` and the one place errors become them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import (
    ConfigurationError,
    ExecutionNotFoundError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    JobsError,
    JobUsageError,
    PayloadError,
    RegistrationError,
)

logger = logging.getLogger(__name__)

OK = 0
FAILED = 1  # the command ran and the work failed (a handler, the database)
BAD_INPUT = 2  # usage, app path, unknown job or execution, payload, expression
REFUSED = 3  # the execution's status forbids it (cancel a finished one, ...)

EXIT_CODES_HELP = """\b
Exit codes:
  0  done
  1  the work failed (a handler raised, the database is unreachable)
  2  bad input: unknown job or execution, bad JSON, bad cron expression,
     an --app that does not import or is not a Jobs
  3  refused: the execution's status does not allow it (Cancel it first)"""

_BAD_INPUT = (
    ConfigurationError,
    ExecutionNotFoundError,
    InvalidArgumentError,
    JobNotFoundError,
    JobUsageError,
    PayloadError,
    RegistrationError,
)

F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    """A message for stderr and the exit code that goes with it."""

    def __init__(self, message: str, code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def exit_code(error: JobsError) -> int:
    if isinstance(error, InvalidStateError):
        return REFUSED
    if isinstance(error, _BAD_INPUT):
        return BAD_INPUT
    return FAILED


def fail(message: str, code: int) -> None:
    """Print one line on stderr and leave with ``code``."""
    first = " ".join(message.split())
    click.echo(f"Error: {first}", err=True)
    raise click.exceptions.Exit(code)


def handled(command: F) -> F:
    """Turn our errors into one line on stderr and an exit code; no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            fail(str(error), error.code)
        except JobsError as error:
            logger.debug("command failed", exc_info=True)
            fail(str(error), exit_code(error))
        return None

    return wrapper  # type: ignore[return-value]
