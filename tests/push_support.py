"""Helpers shared by the push tests, test_push.py and test_push_transactional.py."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Num(BaseModel):
    n: int


def count_rows(jobs: Any, name: str = "app.work") -> int:
    return jobs.executions(name).total_elements
