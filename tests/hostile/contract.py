"""What every answer and event must look like, however hostile the input was.

These are the documented contracts (README: webhook status table, the error shape, the
CloudEvents), written as checks: an entry point may refuse anything, but it refuses in the one
structured shape, as JSON, never with a 5xx page or a stack trace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

OUTCOME_STATUSES = {"initiated", "in_progress", "already_restored", "completed", "rejected",
                    "failed"}
EVENT_TYPE_PREFIXES = ("restorefn.object.restore.v1.", "restorefn.bulk.job.v1.")
SENTINEL = "hostile-sentinel-value-7f3a"


def _no_constants(name: str) -> Any:
    raise AssertionError(f"answer is not strict JSON: it contains {name}")


def strict_json(raw: bytes | str) -> Any:
    """Parse as JSON allows it: no NaN / Infinity (Python writes them, JSON parsers refuse)."""
    return json.loads(raw, parse_constant=_no_constants)


def check_field_list(fields: Any) -> None:
    assert isinstance(fields, list) and fields, fields
    for problem in fields:
        assert set(problem) == {"loc", "field", "reason", "type"}, problem
        loc = problem["loc"]
        assert isinstance(loc, list) and all(isinstance(part, str | int) for part in loc), loc
        assert problem["field"] == (".".join(map(str, loc)) if loc else "(body)"), problem
        assert isinstance(problem["reason"], str) and problem["reason"], problem
        assert isinstance(problem["type"], str) and problem["type"], problem


def check_error(error: Any) -> None:
    """``{"code", "message", ...}``; a validation failure lists its fields, never the values."""
    assert isinstance(error, Mapping), error
    assert isinstance(error.get("code"), str) and error["code"], error
    assert isinstance(error.get("message"), str), error
    if error["code"] == "validation_failed":
        check_field_list(error["fields"])
        # Field names (loc) may be the caller's own keys; values are never echoed.
        said = [error["message"], *(problem["reason"] for problem in error["fields"])]
        assert not any(SENTINEL in text for text in said), "a validation error echoed a value"


def check_outcome(outcome: Any) -> None:
    assert isinstance(outcome, Mapping), outcome
    assert outcome["status"] in OUTCOME_STATUSES, outcome
    assert isinstance(outcome["request_id"], str) and outcome["request_id"]
    if outcome["status"] in ("rejected", "failed"):
        check_error(outcome["error"])


def check_webhook_answer(status: int, content_type: str | None, raw: bytes | str) -> Any:
    """A webhook answer (Google or SCF): JSON, structured, never a 5xx but the documented 503."""
    assert (content_type or "").split(";")[0] == "application/json", content_type
    body = strict_json(raw)
    assert isinstance(body, dict), body
    assert status < 500, (status, body)
    if status >= 400:
        check_error(body["error"])
        if "outcome" in body:
            check_outcome(body["outcome"])
    elif "outcome" in body:
        check_outcome(body["outcome"])
    elif "results" in body:
        assert status in (200, 202, 207), status
        for index, item in enumerate(body["results"]):
            assert item["index"] == index
            check_outcome(item["outcome"])
            assert (item["status"] >= 400) == (item["outcome"]["status"] in ("rejected",
                                                                               "failed"))
    return body


def check_event(event: Any) -> None:
    """A published CloudEvent: structured mode, one of our types, an outcome in ``data``."""
    assert event["specversion"] == "1.0"
    assert isinstance(event["id"], str) and event["id"]
    assert isinstance(event["source"], str) and event["source"]
    assert event["type"].startswith(EVENT_TYPE_PREFIXES), event["type"]
    data = event["data"]
    if event["type"].startswith("restorefn.object.restore.v1."):
        assert event["type"].rsplit(".", 1)[-1] == data["outcome"]
        if data["outcome"] in ("rejected", "failed"):
            check_error(data["error"])
