"""The exception tree: every error the library raises derives from JobsError."""

from __future__ import annotations


class JobsError(Exception):
    """Root of every exception raised by alepha_jobs."""


class ConfigurationError(JobsError, ValueError):
    """A setting of :class:`~alepha_jobs.JobsConfig` or the database URL is invalid."""


class InvalidArgumentError(JobsError, ValueError):
    """An argument is malformed: a naive datetime, a negative duration, and so on."""


class RegistrationError(JobsError):
    """A job definition is refused at registration (SPEC §1.2)."""


class InvalidCronExpression(RegistrationError, ValueError):
    """A cron expression cannot be parsed or can never fire."""


class PayloadError(JobsError, ValueError):
    """A payload fails its schema or cannot be stored as JSON; nothing was written."""


class JobNotFoundError(JobsError, LookupError):
    """No job is registered under the given name."""


class ExecutionNotFoundError(JobsError, LookupError):
    """No execution row has the given id."""


class InvalidStateError(JobsError):
    """The operation does not apply to the execution in its current status."""


class JobUsageError(JobsError):
    """A job method was called in a way its kind or options forbid."""


class AbortedError(JobsError):
    """Raised by :meth:`AbortSignal.raise_if_aborted` once the signal has fired."""


class StoreError(JobsError):
    """The outbox database failed; the driver's error is the ``__cause__``."""


class SchemaVersionError(StoreError):
    """The database was created by a newer version of alepha_jobs."""


class DispatchError(JobsError):
    """A dispatcher could not hand an execution over; the row stays for the sweep."""


class QueueError(DispatchError):
    """The Redis queue is unreachable or failed; rows already written stay for the
    sweep."""


class DelayNotSupported(DispatchError):
    """A transport declines a delayed dispatch; the caller falls back to a timer."""


class LockError(StoreError):
    """A lock store failed; the driver's error is the ``__cause__``."""
