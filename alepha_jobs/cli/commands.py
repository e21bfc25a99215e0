"""Inspection and admin commands: jobs, executions, show, retry, cancel, delete,
trigger and cron-next."""

from __future__ import annotations

import getpass
import json
from typing import Any

import click

from .. import clock
from ..admin import Actor, AdminService
from ..cron.expression import CronExpression
from ..store.base import STATUSES, Execution
from ..store.listing import DEFAULT_PAGE_SIZE, TRIGGERS
from ..store.queries import SORTS
from . import output
from .errors import handled
from .loading import current_jobs
from .params import parse_moment, parse_payload


def admin() -> AdminService:
    return AdminService(current_jobs())


def actor() -> Actor:
    try:
        user = getpass.getuser()
    except Exception:  # no user database entry (containers)
        user = "unknown"
    return Actor(id=f"cli:{user}", name=f"{user} (alepha-jobs)")


def _recent(entry: dict[str, Any]) -> tuple[str, str, str]:
    last = output.when(entry["last_run"])
    return str(entry["ok"]), str(entry["error"]), f"{last} {entry['last_status'] or ''}"


def _retention(value: dict[str, Any]) -> str:
    parts = []
    for side in ("ok", "error"):
        rule = value.get(side)
        if rule is False or rule is None:
            parts.append(f"{side}:none" if rule is False else f"{side}:-")
        elif isinstance(rule, dict):
            bits = [f"{k}={v}" for k, v in rule.items() if v is not None]
            parts.append(f"{side}:{','.join(bits) or 'all'}")
        else:
            parts.append(f"{side}:{rule}")
    return " ".join(parts)


@click.command("jobs")
@output.json_option
@handled
def jobs_command(as_json: bool) -> None:
    """Registered jobs: mode, schedule, next fire times, retention, recent runs."""
    registrations = admin().list_jobs()
    if as_json:
        output.emit_json(registrations)
        return
    rows = []
    for job in registrations:
        ok, error, last = _recent(job["recent"])
        upcoming = ", ".join(output.when(t) for t in job["next"]) or "-"
        rows.append(
            [
                job["name"],
                job["type"],
                job["cron"] or "-",
                upcoming,
                _retention(job["retention"]),
                ok,
                error,
                last.strip(),
            ]
        )
    output.table(
        ["NAME", "MODE", "CRON", "NEXT", "RETENTION", "OK", "ERROR", "LAST RUN"],
        rows,
    )


def _execution_row(row: Execution) -> list[str]:
    return [
        row.id,
        row.job_name,
        output.status(row.status),
        str(row.attempt),
        row.key or "-",
        output.when(row.created_at),
        output.when(row.started_at),
        output.when(row.completed_at),
        row.triggered_by or "-",
    ]


@click.command("executions")
@click.argument("name", required=False)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only these statuses (repeat).",
)
@click.option("--trigger", type=click.Choice(TRIGGERS), help="Who started it.")
@click.option("--from", "started_from", help="Started at or after (ISO-8601).")
@click.option("--to", "started_to", help="Started at or before (ISO-8601).")
@click.option("--key", help="Key contains this text.")
@click.option(
    "--sort",
    default="-created_at",
    show_default=True,
    type=click.Choice(list(SORTS)),
    help="Order; a leading - means descending.",
)
@click.option(
    "--page",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Page number, counted from 0.",
)
@click.option(
    "--size",
    default=DEFAULT_PAGE_SIZE,
    show_default=True,
    type=click.IntRange(1, 1000),
)
@output.json_option
@handled
def executions_command(
    name: str | None,
    statuses: tuple[str, ...],
    trigger: str | None,
    started_from: str | None,
    started_to: str | None,
    key: str | None,
    sort: str,
    page: int,
    size: int,
    as_json: bool,
) -> None:
    """List executions, newest first (of job NAME, or of every job)."""
    result = admin().executions(
        name,
        status=list(statuses),
        trigger=trigger,
        started_from=parse_moment(started_from, "--from") if started_from else None,
        started_to=parse_moment(started_to, "--to") if started_to else None,
        key=key,
        sort=sort,
        page=page,
        size=size,
    )
    if as_json:
        output.emit_json(
            {
                "content": result.content,
                "page": result.page,
                "size": result.size,
                "total_elements": result.total_elements,
                "total_pages": result.total_pages,
            }
        )
        return
    output.table(
        [
            "ID",
            "JOB",
            "STATUS",
            "ATTEMPT",
            "KEY",
            "CREATED",
            "STARTED",
            "COMPLETED",
            "BY",
        ],
        [_execution_row(row) for row in result.content],
    )
    shown = len(result.content)
    following = (
        f"; next: --page {result.page + 1}"
        if result.page + 1 < result.total_pages
        else ""
    )
    click.echo(
        f"page {result.page + 1} of {max(result.total_pages, 1)} "
        f"(--page {result.page}), {shown} of {result.total_elements} "
        f"executions{following}",
        err=True,
    )


@click.command("show")
@click.argument("execution_id")
@output.json_option
@handled
def show_command(execution_id: str, as_json: bool) -> None:
    """One execution in full: payload, error, logs and allowed actions."""
    row = admin().execution(execution_id)
    if as_json:
        output.emit_json(row)
        return
    can = ", ".join(action for action, allowed in row.can.items() if allowed)
    output.fields(
        [
            ("id", row.id),
            ("job", row.job_name),
            ("status", output.status(row.status)),
            ("attempt", f"{row.attempt} of {row.max_attempts}"),
            ("key", row.key or "-"),
            ("payload", json.dumps(row.payload)),
            ("created", output.when(row.created_at)),
            ("scheduled", output.when(row.scheduled_at)),
            ("started", output.when(row.started_at)),
            ("completed", output.when(row.completed_at)),
            ("triggered by", row.triggered_by_name or row.triggered_by or "-"),
            ("cancelled by", row.cancelled_by_name or row.cancelled_by or "-"),
            ("error", row.error or "-"),
            ("can", can or "-"),
        ]
    )
    for entry in row.logs or []:
        level = entry.get("level", "")
        click.echo(f"  [{level}] {entry.get('message', '')}")


@click.command("retry")
@click.argument("execution_id")
@output.json_option
@handled
def retry_command(execution_id: str, as_json: bool) -> None:
    """Run a failed or cancelled execution again, as a new execution."""
    new_id = admin().retry(execution_id, actor())
    if as_json:
        output.emit_json({"ok": True, "id": new_id})
        return
    click.echo(f"retried {execution_id}" + (f" as {new_id}" if new_id else ""))


@click.command("cancel")
@click.argument("execution_id")
@output.json_option
@handled
def cancel_command(execution_id: str, as_json: bool) -> None:
    """Cancel a pending, scheduled or running execution."""
    admin().cancel(execution_id, actor())
    if as_json:
        output.emit_json({"ok": True})
        return
    click.echo(f"cancelled {execution_id}")


@click.command("delete")
@click.argument("execution_ids", nargs=-1, required=True)
@output.json_option
@handled
def delete_command(execution_ids: tuple[str, ...], as_json: bool) -> None:
    """Delete finished executions; one id must exist and be finished, several
    are deleted in bulk (live and unknown ones are skipped)."""
    service = admin()
    if len(execution_ids) == 1:
        service.delete(execution_ids[0])
        result = {"deleted": 1, "skipped": 0}
    else:
        result = service.delete_many(list(execution_ids))
    if as_json:
        output.emit_json(result)
        return
    click.echo(f"deleted {result['deleted']}, skipped {result['skipped']}")


@click.command("trigger")
@click.argument("name")
@click.option("--payload", help="JSON object for a queue job.")
@output.json_option
@handled
def trigger_command(name: str, payload: str | None, as_json: bool) -> None:
    """Run job NAME now: a cron job runs here; a queue job is pushed."""
    data = parse_payload(payload)
    service = admin()
    who = actor()
    definition = service.jobs.definition(name)
    new_id = None
    if definition is not None and definition.kind == "queue" and data is not None:
        new_id = service.jobs.push(
            name, data, triggered_by=who.id, triggered_by_name=who.name
        )
    else:
        service.trigger(name, data, who)
    if as_json:
        output.emit_json({"ok": True, "id": new_id})
        return
    click.echo(f"triggered {name}" + (f": execution {new_id}" if new_id else ""))


@click.command("cron-next")
@click.argument("expression")
@click.option("--tz", "zone", default="UTC", show_default=True, help="IANA zone.")
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 1000))
@output.json_option
@handled
def cron_next_command(expression: str, zone: str, count: int, as_json: bool) -> None:
    """The next N fire times of a cron EXPRESSION (no application needed)."""
    times = CronExpression(expression, zone).upcoming(clock.now(), count)
    if as_json:
        output.emit_json(times)
        return
    for moment in times:
        utc = moment.astimezone(clock.UTC)
        click.echo(f"{moment.isoformat()}  ({output.when(utc)})")


COMMANDS = [
    jobs_command,
    executions_command,
    show_command,
    retry_command,
    cancel_command,
    delete_command,
    trigger_command,
    cron_next_command,
]
