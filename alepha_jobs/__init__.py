"""alepha_jobs: durable background jobs and cron for scripts and small servers."""

from .app import Jobs
from .config import JobsConfig
from .context import AbortSignal, JobContext
from .cron.expression import CronExpression
from .definition import Job
from .errors import (
    AbortedError,
    ConfigurationError,
    DelayNotSupported,
    DispatchError,
    ExecutionNotFoundError,
    InvalidArgumentError,
    InvalidCronExpression,
    InvalidStateError,
    JobNotFoundError,
    JobsError,
    JobUsageError,
    PayloadError,
    QueueError,
    RegistrationError,
    SchemaVersionError,
    StoreError,
)
from .events import JobEvent
from .options import Backoff, PushItem, Retention, Retry, Rule
from .store.base import Execution
from .store.listing import Page

__version__ = "0.1.0"

__all__ = [
    "AbortSignal",
    "AbortedError",
    "Backoff",
    "ConfigurationError",
    "CronExpression",
    "DelayNotSupported",
    "DispatchError",
    "Execution",
    "ExecutionNotFoundError",
    "InvalidArgumentError",
    "InvalidCronExpression",
    "InvalidStateError",
    "Job",
    "JobContext",
    "JobEvent",
    "JobNotFoundError",
    "Jobs",
    "JobsConfig",
    "JobsError",
    "JobUsageError",
    "Page",
    "PayloadError",
    "PushItem",
    "QueueError",
    "RegistrationError",
    "Retention",
    "Retry",
    "Rule",
    "SchemaVersionError",
    "StoreError",
    "__version__",
]
