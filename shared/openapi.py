"""The webhook's OpenAPI 3.1 document, generated from the models that validate its requests and
shape its answers, so the document cannot drift from the code (``schemas/openapi.json``, written
by ``make schema``; a test compares, and schemathesis drives a live function with it).

The webhook builds its answers as plain dicts (``shared.webhook``: no model building on the cold
path); the answer models below describe those dicts for the document only. Every field the
webhook writes is declared; error bodies allow more (a provider's details, an outcome).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from shared.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER
from shared.bulk.gcs_server_side import OperationProgress
from shared.bulk.planner import PlanSummary
from shared.bulk.report import Progress
from shared.bulk.schemas import BulkJob, ReportDestination
from shared.outcome import Outcome
from shared.schemas import MAX_BATCH, RestoreBatch, RestoreRequest
from shared.status import CosStatusQuery, GcsStatusQuery, ObjectStatus, StatusQuery
from shared.validation import FieldProblem
from shared.webhook import MAX_BODY_BYTES, RETRY_AFTER_SECONDS

REF = "#/components/schemas/{model}"


# -- answers, as shared.webhook writes them ---------------------------------------------------
class ErrorBody(BaseModel):
    """Why a request was refused or failed: ``code`` for machines, ``message`` for people;
    ``fields`` lists every failing field of a validation failure (never the values)."""

    model_config = ConfigDict(extra="allow", title="Error")

    code: str
    message: str
    fields: list[FieldProblem] | None = None
    retryable: bool | None = None
    http_status: int | None = None
    provider_code: str | None = None
    provider_request_id: str | None = None


class ErrorAnswer(BaseModel):
    """Every 4xx and 5xx: the error; a single restore's refusal carries its outcome (and the id
    of the event it published) too."""

    error: ErrorBody
    outcome: Outcome | None = None
    event_id: str | None = None


class RestoreAnswer(BaseModel):
    """One restore request's outcome and the id of the CloudEvent published for it."""

    outcome: Outcome
    event_id: str


class BatchItem(BaseModel):
    index: int
    status: int = Field(description="The status this item would have had alone.")
    outcome: Outcome
    event_id: str
    error: ErrorBody | None = None


class BatchAnswer(BaseModel):
    """A batch: one result per request, in order, and how many ended in each status."""

    results: list[BatchItem]
    counts: dict[str, int]


class JobAccepted(PlanSummary):
    """A queued bulk job: its plan, where its report will be, how to ask for its progress."""

    report: dict[str, str] | None = None
    progress_query: JobQuery | None = None
    mode: str | None = None


class JobQuery(BaseModel):
    """A bulk job named for the status route: the job, its bucket and its report."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    provider: Literal["cos", "gcs"]
    bucket: str
    region: str | None = None
    report: ReportDestination


def _with_objects_done(schema: dict[str, Any]) -> None:
    # ``objects_done`` is a property of the progress models; the webhook adds its value.
    schema["properties"]["objects_done"] = {"type": "integer", "title": "Objects Done",
                                            "description": "objects finished so far"}
    schema["required"] = [*schema.get("required", []), "objects_done"]


class ReportProgress(Progress):
    model_config = ConfigDict(json_schema_extra=_with_objects_done)


class OperationProgressAnswer(OperationProgress):
    model_config = ConfigDict(json_schema_extra=_with_objects_done)


JobProgress = ReportProgress | OperationProgressAnswer
JobAccepted.model_rebuild()


# -- the document ------------------------------------------------------------------------------
_COMPONENTS: list[tuple[str, JsonSchemaMode, Any]] = [
    ("RestoreRequest", "validation", RestoreRequest),
    ("RestoreBatch", "validation", RestoreBatch),
    ("BulkJob", "validation", BulkJob),
    ("StatusQuery", "validation", StatusQuery),
    ("JobQuery", "validation", JobQuery),
    ("RestoreAnswer", "serialization", RestoreAnswer),
    ("BatchAnswer", "serialization", BatchAnswer),
    ("PlanSummary", "serialization", PlanSummary),
    ("JobAccepted", "serialization", JobAccepted),
    ("ObjectStatus", "serialization", ObjectStatus),
    ("JobProgress", "serialization", JobProgress),
    ("ErrorAnswer", "serialization", ErrorAnswer),
]

_COS_OBJECT = {"provider": "cos", "bucket": "archive-1250000000", "region": "ap-guangzhou",
               "key": "logs/2026-11-19.tar.gz"}


def _query_schema(model: type[BaseModel], title: str, *, names: dict[str, str] | None = None,
                  extra: dict[str, bool] | None = None) -> dict[str, Any]:
    """A query model as query parameters: every value a string (a URL has no null and no
    nesting), required as in the model; ``names`` renames a field, ``extra`` adds fields."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    fields = {name: (info.annotation, info.is_required(), info.description)
              for name, info in model.model_fields.items()}
    for name, (annotation, needed, description) in fields.items():
        if names is not None and name not in names:
            continue
        key = names[name] if names is not None else name
        spec: dict[str, Any] = {"type": "string"}
        if name == "provider":  # a Literal of the providers the model takes
            spec["enum"] = list(get_args(annotation))
        elif datetime in (annotation, *get_args(annotation)):
            spec["format"] = "date-time"
        if description:
            spec["description"] = description
        properties[key] = spec
        if needed:
            required.append(key)
    for key, needed in (extra or {}).items():
        properties[key] = {"type": "string"}
        if needed:
            required.append(key)
    return {"title": title, "type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def _status_query_parameter() -> dict[str, Any]:
    """The status GET's query: an object's names (as in a restore request) or a bulk job's."""
    job_fields = {"job_id": "job_id", "provider": "provider", "bucket": "bucket",
                  "region": "region"}
    schema = {"anyOf": [
        _query_schema(CosStatusQuery, "CosObjectQuery"),
        _query_schema(GcsStatusQuery, "GcsObjectQuery"),
        _query_schema(JobQuery, "JobProgressQuery", names=job_fields,
                      extra={"report_bucket": True, "report_prefix": False}),
    ]}
    return {"name": "query", "in": "query", "required": True, "style": "form", "explode": True,
            "schema": schema, "examples": _STATUS_EXAMPLES,
            "description": "The status query's fields as query parameters (first value of "
                           "each counts; the provider is inferred from the names when absent)."}


_STATUS_EXAMPLES = {
    "cos": {"summary": "A COS object", "value": _COS_OBJECT},
    "gcs": {"summary": "A GCS object (provider inferred from the names)",
            "value": {"bucket": "restore-demo", "object": "reports/q3.csv"}},
}
_EXAMPLES = {
    "cos": {"summary": "Restore an archived COS object", "value": {
        "provider": "cos", "bucket": "archive-1250000000", "region": "ap-guangzhou",
        "key": "logs/2026-11-19.tar.gz", "days": 2, "tier": "Expedited",
        "context": {"ticket": "OPS-1234"}}},
    "gcs": {"summary": "Restore a soft-deleted GCS object", "value": {
        "provider": "gcs", "bucket": "restore-demo", "object": "reports/q3.csv"}},
    "batch": {"summary": "Several requests at once", "value": {"requests": [
        {"provider": "gcs", "bucket": "restore-demo", "object": "reports/q4.csv"},
        {"provider": "cos", "bucket": "archive-1250000000", "region": "ap-guangzhou",
         "key": "logs/2026-11-20.tar.gz", "days": 1}]}},
    "bulk_dry_run": {"summary": "What a bulk job would restore", "value": {
        "kind": "restorefn.bulk.v1", "provider": "cos", "bucket": "archive-1250000000",
        "region": "ap-guangzhou", "days": 2, "dry_run": True,
        "selection": {"prefix": "logs/"}}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema, **extra}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("ErrorAnswer"))}


def _retry_later(description: str) -> dict[str, Any]:
    return {**_error(description), "headers": {"Retry-After": {
        "description": f"seconds to wait (currently {RETRY_AFTER_SECONDS})",
        "schema": {"type": "integer"}}}}


_TRANSPORT = {
    "400": _error("the body is not valid JSON"),
    "401": _error("authentication failed: unsigned, wrong signature, outside the replay window"),
    "413": _error(f"the body is over {MAX_BODY_BYTES} bytes (refused before it is read)"),
    "415": _error("Content-Type is not application/json"),
}
_REFUSALS = {
    "403": _error("a bucket is outside the allowlist"),
    "422": _error("validation failed (every failing field), or the object cannot be restored "
                  "as asked (not archived, tier, soft delete off, retention)"),
    "502": _error("the provider refused our credentials or our call"),
    "503": _retry_later("a retryable provider failure, an event not delivered, or the "
                        "function not configured"),
}


def _status_responses(*, allow_405: bool) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "200": {"description": "the object's state (not_found included), or a bulk job's "
                               "progress",
                "headers": {"Cache-Control": {"schema": {"type": "string"}}},
                "content": _json({"anyOf": [_ref("ObjectStatus"), _ref("JobProgress")]})},
        **_TRANSPORT, **_REFUSALS,
        "404": _error("a bulk job's report bucket does not exist"),
    }
    if allow_405:
        answers["405"] = _error("a GET without a query string (only the status route reads)")
    return dict(sorted(answers.items()))


def _status_get(*, allow_405: bool) -> dict[str, Any]:
    return {
        "summary": "Where an object stands (or a bulk job's progress)",
        "description": "Read-only; publishes nothing. The signature covers the canonical query "
                       "(shared.auth.canonical_query) in place of a body.",
        "operationId": "statusGet" + ("Root" if allow_405 else ""),
        "parameters": [_status_query_parameter()],
        "responses": _status_responses(allow_405=allow_405),
    }


def _restore_post() -> dict[str, Any]:
    body = {"anyOf": [_ref("RestoreRequest"), _ref("RestoreBatch"), _ref("BulkJob")]}
    responses = {
        "200": {"description": "completed / already_restored; a batch all done; a bulk dry "
                               "run's plan",
                "content": _json({"anyOf": [_ref("RestoreAnswer"), _ref("BatchAnswer"),
                                            _ref("PlanSummary")]})},
        "202": {"description": "initiated / in_progress; a batch all accepted; a bulk job "
                               "queued",
                "content": _json({"anyOf": [_ref("RestoreAnswer"), _ref("BatchAnswer"),
                                            _ref("JobAccepted")]})},
        "207": {"description": "a batch whose items ended differently, some failed",
                "content": _json(_ref("BatchAnswer"))},
        **_TRANSPORT, **_REFUSALS,
        "404": _error("the object, generation, bucket or manifest does not exist"),
        "409": _error("a different live object exists and allow_overwrite was not set"),
        "412": _error("a caller-supplied precondition failed"),
    }
    return {
        "summary": "Restore an object, a batch of objects, or plan a bulk job",
        "operationId": "restore",
        "requestBody": {"required": True, "content": _json(body, examples=_EXAMPLES)},
        "responses": dict(sorted(responses.items())),
    }


def _status_post() -> dict[str, Any]:
    body = {"anyOf": [_ref("StatusQuery"), _ref("JobQuery")]}
    return {
        "summary": "Where an object stands, the query as a JSON body",
        "operationId": "statusPost",
        "requestBody": {"required": True, "content": _json(body, examples=_STATUS_EXAMPLES)},
        "responses": _status_responses(allow_405=False),
    }


def components() -> dict[str, Any]:
    """Every schema the document names, generated by pydantic in one pass (shared models are
    defined once)."""
    inputs = [(name, mode, TypeAdapter(model)) for name, mode, model in _COMPONENTS]
    tops, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF)
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    for (name, _mode), schema in tops.items():
        if schema != _ref(name):  # a model is its own definition already
            schemas[name] = schema
    return dict(sorted(schemas.items()))


def document() -> dict[str, Any]:
    signature = (f"v1=<hex HMAC-SHA256(secret, '<{TIMESTAMP_HEADER}>.' + body)>; for a GET "
                 "the canonical query takes the body's place")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "restorefn webhook",
            "version": "1",
            "description": (
                "Restore Tencent COS archived objects and Google Cloud Storage soft-deleted "
                "objects. The same contract on Google Cloud Functions (restore_http) and "
                f"Tencent SCF (API Gateway). Bodies are JSON, at most {MAX_BODY_BYTES} bytes; "
                f"a batch holds 1-{MAX_BATCH} requests. Every answer is JSON."),
        },
        "paths": {
            "/": {"post": _restore_post(), "get": _status_get(allow_405=True)},
            "/status": {"get": _status_get(allow_405=False), "post": _status_post()},
        },
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "restoreTimestamp": {"type": "apiKey", "in": "header", "name": TIMESTAMP_HEADER,
                                     "description": "unix seconds, within the replay window"},
                "restoreSignature": {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADER,
                                     "description": signature},
            },
        },
        "security": [{"restoreTimestamp": [], "restoreSignature": []}],
    }
