"""Cron expressions: parsing, validation and fire times under a time-zone policy."""

from .expression import CronExpression as CronExpression
