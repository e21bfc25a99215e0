"""The test Postgres: a fresh schema per test, skipped when the server is absent.

The server is ``ALEPHA_JOBS_TEST_POSTGRES`` (default the local ``test`` database,
trust auth). With ``ALEPHA_JOBS_REQUIRE_SERVICES=1`` an unreachable server fails
the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

SERVER = os.environ.get(
    "ALEPHA_JOBS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def admin_connection() -> Any:
    """An autocommit psycopg connection to the test server; skip (or fail) if
    unreachable."""
    try:
        import psycopg

        return psycopg.connect(SERVER, autocommit=True, connect_timeout=2)
    except Exception as error:  # ImportError or any connection error
        reason = f"Postgres at {SERVER} is unreachable: {error}"
        if os.environ.get("ALEPHA_JOBS_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def url_for(schema: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"schema": schema, **params}.items())
    return f"{SERVER}{'&' if '?' in SERVER else '?'}{query}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """Yield the name of a schema no other test uses; drop it afterwards."""
    admin = admin_connection()
    schema = f"alepha_test_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()
