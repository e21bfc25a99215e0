"""Payload validation: pydantic first, then a JSON round that any store accepts."""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from .errors import PayloadError


def validate(job_name: str, schema: type[BaseModel], payload: Any) -> dict[str, Any]:
    """Validate ``payload`` against ``schema`` and return what the row stores.

    :raises PayloadError: the payload fails the schema (the message names each
        field), or its validated form is not plain JSON.
    """
    return validate_json(job_name, schema, payload)[0]


def validate_json(
    job_name: str, schema: type[BaseModel], payload: Any
) -> tuple[dict[str, Any], str]:
    """:func:`validate`, and the JSON text of the result, serialised once.

    The text is checked rather than the value walked (see :func:`_plain`); only a
    payload that may hold what no store can keep (a ``null`` anywhere, say) takes
    the walk that names the offending field, and is refused only if it does.

    :raises PayloadError: as :func:`validate`.
    """
    model = _model(job_name, schema, payload)
    if model.model_config.get("ser_json_inf_nan", "null") == "null":
        try:
            text = model.model_dump_json()
        except PydanticSerializationError:
            pass  # the careful path below names what is wrong
        else:
            if _plain(text):
                return model.model_dump(mode="json"), text
    data = _checked(job_name, model)
    return data, json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _plain(text: str) -> bool:
    """Whether pydantic's ``text`` surely holds nothing to refuse: it writes a
    NaN or an infinity as ``null`` and U+0000 as ``\\u0000`` (and raises on a
    lone surrogate, which UTF-8 could not encode anyway)."""
    if "null" in text or "\\u0000" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _model(job_name: str, schema: type[BaseModel], payload: Any) -> BaseModel:
    try:
        return payload if type(payload) is schema else schema.model_validate(payload)
    except ValidationError as error:
        raise PayloadError(_describe(job_name, schema, error)) from error


def _checked(job_name: str, model: BaseModel) -> dict[str, Any]:
    """The validated model's JSON form, walked for what no store can hold."""
    if model.model_config.get("ser_json_inf_nan", "null") == "null":
        _refuse_non_finite(job_name, model.model_dump(), "")
    try:
        data = model.model_dump(mode="json")
        json.dumps(data, allow_nan=False)
    except (PydanticSerializationError, TypeError, ValueError) as error:
        raise PayloadError(
            f"payload of job '{job_name}' cannot be stored as JSON: {error}; "
            "use JSON types (str, int, float, bool, None, lists and dicts) or "
            "pydantic types that serialise to them"
        ) from error
    _refuse_nul(job_name, data, "")
    return data


def _describe(job_name: str, schema: type[BaseModel], error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(payload)"
        problems.append(f"{where}: {item['msg']}")
    return (
        f"payload of job '{job_name}' does not match {schema.__name__}: "
        + "; ".join(problems)
    )


def _refuse_non_finite(job_name: str, value: Any, path: str) -> None:
    """JSON has no NaN or infinity, and pydantic would write ``null`` for one held
    in an ``Any`` field; refuse it rather than store a different value."""
    if isinstance(value, float) and not math.isfinite(value):
        raise PayloadError(
            f"payload of job '{job_name}': {path or '(payload)'} is {value!r}, which "
            "JSON cannot store; send a finite number or None"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_non_finite(job_name, item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            _refuse_non_finite(job_name, item, f"{path}[{index}]")


def text_problem(value: str) -> str | None:
    """Why the outbox cannot store ``value`` on every store alike, or ``None``.

    Postgres refuses U+0000 in text and JSON; no store can encode a lone
    surrogate (``"\\ud800"``) as UTF-8.
    """
    if "\x00" in value:
        return "a NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"an unpaired surrogate (U+{ord(value[error.start]):04X})"
    return None


def _refuse_nul(job_name: str, value: Any, path: str) -> None:
    """Refuse text no store can hold (see :func:`text_problem`), naming where."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise PayloadError(
                f"payload of job '{job_name}': {path or '(payload)'} contains "
                f"{problem}, which the outbox cannot store; remove it or encode "
                "the value (e.g. base64)"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(job_name, key, path)
            _refuse_nul(job_name, item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(job_name, item, f"{path}[{index}]")
