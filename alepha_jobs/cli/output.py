"""Output of ``alepha-jobs``: aligned tables for people, JSON for scripts.

Colour goes through :func:`click.style`; :func:`click.echo` strips it when
stdout is not a terminal, so pipes and files get plain text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

from ..admin.serial import to_jsonable

F = TypeVar("F", bound=Callable[..., Any])

STATUS_COLOURS = {
    "ok": "green",
    "error": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "pending": "blue",
    "scheduled": "magenta",
}


def json_option(command: F) -> F:
    """``--json``: print one JSON document instead of text."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON for scripts."
    )(command)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=False))


def when(value: datetime | None) -> str:
    """``2030-03-01 12:00:00Z``, or ``-``."""
    if value is None:
        return "-"
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    offset = value.utcoffset()
    return f"{text}Z" if not offset else f"{text}{value.strftime('%z')}"


def status(value: str | None) -> str:
    if not value:
        return "-"
    return click.style(value, fg=STATUS_COLOURS.get(value))


def _width(cell: str) -> int:
    return len(click.unstyle(cell))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print ``rows`` under ``headers``, columns aligned on their widest cell."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, _width(c)) for w, c in zip(widths, row, strict=True)]
    head = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    click.echo(click.style(head, bold=True))
    for row in cells:
        padded = (c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True))
        line = "  ".join(padded)
        click.echo(line.rstrip())


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """Print ``label: value`` lines with the values aligned."""
    width = max(len(label) for label, _ in pairs)
    for label, value in pairs:
        click.echo(f"{click.style(label.ljust(width), bold=True)}  {value}")
