"""The admin JSON API (SPEC §10.2) as a Flask blueprint under ``/admin/jobs``.

Every request needs ``Authorization: Bearer <token>``: the admin token may do
everything, the optional read token only read (403 elsewhere). Tokens are
compared in constant time. Without a token every request is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..errors import (
    ExecutionNotFoundError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    JobsError,
    JobUsageError,
)
from ..store.base import Execution
from .serial import parse_moment, to_jsonable
from .service import Actor, AdminService
from .service import check_id as _check_id

ACTOR = Actor(id="admin-api", name="admin API")
LISTED_WITHOUT = ("payload", "logs")


def bearer(header: str | None) -> str:
    """The token of an ``Authorization`` header (``Bearer`` in any case)."""
    value = (header or "").strip()
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return value


def same(given: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(
        given.encode(), (expected or "").encode()
    )


def status_of(error: JobsError) -> int:
    if isinstance(error, (JobNotFoundError, ExecutionNotFoundError)):
        return 404
    if isinstance(error, InvalidStateError):
        return 409
    if isinstance(error, (ValueError, JobUsageError)):
        return 400
    return 500


def execution_json(row: Execution, full: bool) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(row)
    if not full:
        for name in LISTED_WITHOUT:
            data.pop(name, None)
    return data


def _reply(value: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify(value), status


def admin_blueprint(
    service: AdminService | Callable[[], AdminService],
    token: str | None,
    read_token: str | None = None,
    url_prefix: str = "/admin/jobs",
) -> Blueprint:
    """Build the blueprint; ``service`` may be a callable returning it.

    The routes are closures over ``service`` and the tokens, as Flask blueprints
    usually are, so this factory is longer than the functions elsewhere.
    """
    blueprint = Blueprint("alepha_jobs_admin", __name__, url_prefix=url_prefix)

    def admin() -> AdminService:
        return service if isinstance(service, AdminService) else service()

    @blueprint.before_request
    def authorise() -> tuple[Response, int] | None:
        given = bearer(request.headers.get("Authorization"))
        if same(given, token):
            return None
        if same(given, read_token):
            if request.method in ("GET", "HEAD", "OPTIONS"):
                return None
            return _reply({"error": "Forbidden: this token may only read"}, 403)
        return _reply({"error": "Unauthorized"}, 401)

    @blueprint.errorhandler(JobsError)
    def failed(error: JobsError) -> tuple[Response, int]:
        return _reply({"error": str(error)}, status_of(error))

    @blueprint.get("")
    def list_jobs() -> Any:
        return jsonify(to_jsonable(admin().list_jobs()))

    @blueprint.get("/<name>/executions")
    def list_executions(name: str) -> Any:
        page = admin().executions(name, **_query())
        return jsonify(
            {
                "content": [execution_json(r, full=False) for r in page.content],
                "page": page.page,
                "size": page.size,
                "total_elements": page.total_elements,
                "total_pages": page.total_pages,
            }
        )

    @blueprint.get("/executions/<execution_id>")
    def get_execution(execution_id: str) -> Any:
        return jsonify(execution_json(admin().execution(execution_id), full=True))

    @blueprint.post("/<name>/trigger")
    def trigger(name: str) -> Any:
        body = _json_object() if request.get_data() else {}
        admin().trigger(name, body.get("payload"), ACTOR)
        return jsonify({"ok": True})

    @blueprint.post("/executions/<execution_id>/retry")
    def retry(execution_id: str) -> Any:
        new_id = admin().retry(execution_id, ACTOR)
        return jsonify({"ok": True, "id": new_id})

    @blueprint.post("/executions/<execution_id>/cancel")
    def cancel(execution_id: str) -> Any:
        admin().cancel(execution_id, ACTOR)
        return jsonify({"ok": True})

    @blueprint.delete("/executions/<execution_id>")
    def delete(execution_id: str) -> Any:
        admin().delete(execution_id)
        return jsonify({"ok": True})

    @blueprint.post("/executions/delete")
    def delete_many() -> Any:
        body = request.get_json(silent=True)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            return _reply({"error": "body must be {'ids': [1 to 100 ids]}"}, 400)
        for execution_id in ids:
            _check_id(execution_id)
        return jsonify(admin().delete_many(ids))

    return blueprint


def _query() -> dict[str, Any]:
    """Listing filters from the query string (camelCase sorts accepted)."""
    args = request.args
    query: dict[str, Any] = {"status": args.getlist("status")}
    for name in ("trigger", "key", "sort"):
        if name in args:
            query[name] = args[name]
    for name, field in (("from", "started_from"), ("to", "started_to")):
        if name in args:
            query[field] = parse_moment(args[name], name)
    for name in ("page", "size"):
        if name in args:
            query[name] = _integer(args[name], name)
    return query


def _json_object() -> dict[str, Any]:
    """The request body as a JSON object.

    :raises InvalidArgumentError: the body is not JSON, or not an object.
    """
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise InvalidArgumentError(
            'body must be a JSON object such as {"payload": {"user_id": 1}}'
        )
    return body


def _integer(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a whole number") from None
