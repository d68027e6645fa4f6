"""Turning untrusted payloads into requests, and pydantic's errors into one stable JSON shape.

The error shape is part of the public contract (webhook 422 bodies, rejected events):
``{"code": "validation_failed", "message": ..., "fields": [{"loc": [...], "field": "a.b",
"reason": ..., "type": ...}]}``. Input values are never echoed back: a mistyped secret pasted into
the wrong field must not travel into logs or events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.records import Record, record
from shared.restore_requests import (
    MAX_BATCH,
    CosRestoreRequest,
    GcsRestoreRequest,
    fast_parse,
    from_model,
)

if TYPE_CHECKING:
    from pydantic import ValidationError

AnyRestoreRequest = CosRestoreRequest | GcsRestoreRequest
_PROVIDER_TAGS = ("cos", "gcs")


class InvalidJson(ValueError):
    """Text a strict JSON parser refuses; the message says why without quoting the input."""


def _refuse_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not JSON")


def parse_json(data: bytes | str) -> Any:
    """Untrusted JSON, parsed as strictly as the other side will read it back.

    Python's parser accepts ``NaN`` and ``Infinity``, which every strict parser (and our own
    answers, echoed to a caller) would then choke on; and it raises RecursionError, not
    ValueError, on nesting deeper than the interpreter's stack, which a 256 KiB body reaches
    with ``[`` alone. Both are refused here as InvalidJson (a ValueError), like any bad JSON.
    """
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidJson("JSON nested too deeply") from None


@record
class FieldProblem(Record):
    loc: list[str | int]
    field: str
    reason: str
    type: str


class RequestValidationError(ValueError):
    """A payload that is not a valid restore request; ``problems`` lists every failing field."""

    def __init__(self, problems: Sequence[FieldProblem], message: str | None = None) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        self.message = message or (
            f"{count} field{'s' if count != 1 else ''} failed validation"
        )
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": "validation_failed",
            "message": self.message,
            "fields": [p.model_dump() for p in self.problems],
        }


def field_name(loc: Sequence[str | int]) -> str:
    """The dotted form of a location; ``(body)`` for the body itself (an empty location). A key
    named "" is still a key: its field is "", not the body."""
    return ".".join(str(part) for part in loc) if loc else "(body)"


def problems_from(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[FieldProblem]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = list(error["loc"])
        # The discriminated union puts the provider tag first; the caller knows the provider.
        if loc and loc[0] in _PROVIDER_TAGS:
            loc = loc[1:]
        if error["type"] == "provider":
            loc = ["provider"]
        loc = [*prefix, *loc]
        problems.append(
            FieldProblem(
                loc=loc,
                field=field_name(loc),
                reason=_reason(error["msg"]),
                type=error["type"],
            )
        )
    return problems


def _reason(message: str) -> str:
    # pydantic prefixes errors raised by our validators with "Value error, ".
    return message.removeprefix("Value error, ")


def parse_request(payload: Any) -> AnyRestoreRequest:
    """The restore request ``payload`` describes; raises RequestValidationError.

    A payload ``fast_parse`` can vouch for never loads pydantic (a cold start's largest cost);
    any other is validated by the models of ``shared.schemas``, whose answer (value or errors)
    is the authoritative one.
    """
    if isinstance(payload, CosRestoreRequest | GcsRestoreRequest):
        return payload
    if hasattr(payload, "model_dump"):
        from shared import schemas

        if isinstance(payload, schemas.CosRestoreRequest | schemas.GcsRestoreRequest):
            return from_model(payload)
    if not isinstance(payload, Mapping):
        raise RequestValidationError(
            [FieldProblem(loc=[], field="(body)", reason="must be a JSON object", type="dict_type")]
        )
    request = fast_parse(payload)
    if request is not None:
        return request
    from pydantic import ValidationError

    from shared.schemas import RESTORE_REQUEST_ADAPTER

    try:
        return from_model(RESTORE_REQUEST_ADAPTER.validate_python(dict(payload)))
    except ValidationError as exc:
        raise RequestValidationError(problems_from(exc)) from None


def split_batch(payload: Any) -> list[Any] | None:
    """The items of a ``{"requests": [...]}`` batch, or None when the payload is one request.

    Items are returned unvalidated so each can succeed or fail on its own: one bad item must not
    sink the ninety-nine good ones beside it.
    """
    if not isinstance(payload, Mapping) or "requests" not in payload:
        return None
    items = payload["requests"]
    extra = set(payload) - {"requests"}
    problems = []
    if not isinstance(items, list):
        problems.append(
            FieldProblem(loc=["requests"], field="requests", reason="must be a list",
                         type="list_type")
        )
    elif not 1 <= len(items) <= MAX_BATCH:
        problems.append(
            FieldProblem(loc=["requests"], field="requests",
                         reason=f"must hold 1-{MAX_BATCH} requests (got {len(items)})",
                         type="too_long" if items else "too_short")
        )
    problems.extend(
        FieldProblem(loc=[name], field=name, reason="Extra inputs are not permitted",
                     type="extra_forbidden")
        for name in sorted(map(str, extra))
    )
    if problems:
        raise RequestValidationError(problems)
    return list(items)
