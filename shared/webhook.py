"""The webhook contract, independent of any HTTP framework.

Both platforms' HTTP entry points (functions-framework on Google, API Gateway on Tencent) turn
their request into ``HttpRequest``, call ``handle``, and turn the ``HttpAnswer`` back into their
own response shape. Status codes, error bodies and authentication therefore cannot drift apart
between the two clouds.

Status codes (single request): 200 completed / already_restored, 202 initiated / in_progress,
400 body is not JSON, 401 authentication failed, 403 bucket not allowed, 404 object or generation
not found, 405 method not allowed, 409 conflict (a live object exists and overwrite was not
allowed), 412 a caller-supplied precondition failed, 413 body too large, 415 wrong content type,
422 validation failed or the object cannot be restored as asked (not archived, tier not
supported, soft delete off, retention policy), 502 the provider refused our credentials or our
call, 503 (with Retry-After) a retryable provider failure or an undelivered event, or the
function is not configured for authentication.

Status route (``shared.status``; read-only, publishes nothing): ``GET`` with query parameters
(``GET /status?provider=cos&bucket=..&region=..&key=..``, ``GET /?bucket=..&object=..``; any
path whose last segment is ``status``, or any path when a query string is present), or ``POST
.../status`` with the same fields as a JSON body. Authenticated exactly like a restore (HMAC over
the timestamp and the raw body, which is empty for a GET). Answers: 200 with the ObjectStatus
JSON for every state the object can be in (``not_found`` included: the question was answered),
422 validation failed (the same field list as a restore), 403 bucket not allowed, 502 the
provider refused our credentials or call, 503 (with Retry-After) a retryable provider failure.
A GET without a query string on any other path stays 405.

Bulk jobs (``shared.bulk``): a JSON body whose ``kind`` is ``restorefn.bulk.v1`` is a job,
planned here (``BulkService.submit``): 200 with the plan summary for a dry run, 202 with the
summary, the report's URLs and the status query that reads its progress when the chunks are
queued, 422 the field list, 403 a bucket outside the allowlist, 404 the bucket or manifest does
not exist, 502 the provider refused our credentials or call, 503 (with Retry-After) no chunk
queue configured (``not_configured``), or the provider, the queue or the report bucket failed in
a way worth retrying. The status route with a ``job_id`` (plus ``provider``, ``bucket``,
``region`` and the report destination: ``report`` in a POST body, ``report_bucket`` and
``report_prefix`` in a GET query) answers 200 with the job's progress (``BulkService.progress``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any

from shared import auth
from shared.bulk.kinds import is_bulk_job
from shared.events import event_id
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.records import frozen
from shared.service import RestoreService
from shared.validation import FieldProblem, RequestValidationError, parse_json, split_batch

if TYPE_CHECKING:
    from shared.status import ObjectStatus

logger = logging.getLogger("restorefn.webhook")

MAX_BODY_BYTES = 256 * 1024
RETRY_AFTER_SECONDS = 30
JSON_HEADERS = {"Content-Type": "application/json"}

_STATUS_FOR_OUTCOME = {
    OutcomeStatus.COMPLETED: 200,
    OutcomeStatus.ALREADY_RESTORED: 200,
    OutcomeStatus.INITIATED: 202,
    OutcomeStatus.IN_PROGRESS: 202,
}
_STATUS_FOR_ERROR = {
    ErrorCode.VALIDATION_FAILED: 422,
    ErrorCode.BUCKET_NOT_ALLOWED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PRECONDITION_FAILED: 412,
    ErrorCode.NOT_ARCHIVED: 422,
    ErrorCode.TIER_NOT_SUPPORTED: 422,
    ErrorCode.SOFT_DELETE_NOT_ENABLED: 422,
    ErrorCode.RETENTION_POLICY_NOT_MET: 422,
    ErrorCode.OBJECT_NOT_SOFT_DELETED: 422,
    ErrorCode.NOT_RESTORED: 404,
    ErrorCode.ACCESS_DENIED: 502,
    ErrorCode.BAD_REQUEST: 502,
    ErrorCode.PROVIDER_ERROR: 502,
    ErrorCode.CONFIGURATION: 503,
}


@frozen
class HttpRequest:
    method: str
    headers: Mapping[str, str]
    body: bytes
    # The request path as the function sees it (after any platform prefix) and the decoded
    # query parameters (first value of each). Both optional: callers that only POST restores
    # may leave them out.
    path: str = "/"
    query: Mapping[str, str] = field(default_factory=dict)


@frozen
class HttpAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))

    def body_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


def error_answer(
    status: int, code: str, message: str, *, retry_after: int | None = None, **extra: Any
) -> HttpAnswer:
    headers = dict(JSON_HEADERS)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return HttpAnswer(status, {"error": {"code": code, "message": message, **extra}}, headers)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def body_too_large() -> HttpAnswer:
    """The 413 every HTTP entry gives for a body over ``MAX_BODY_BYTES``, wherever it finds out
    (a Content-Length, a chunked stream, an API Gateway event's body string)."""
    return error_answer(413, "body_too_large", f"body must be at most {MAX_BODY_BYTES} bytes")


def too_large(request: HttpRequest) -> HttpAnswer | None:
    """413 for a body over the limit: checked before authentication and parsing."""
    return body_too_large() if len(request.body) > MAX_BODY_BYTES else None


def json_body(request: HttpRequest) -> Any:
    """The parsed JSON body, or the 415 / 400 answer to give instead (an ``HttpAnswer``)."""
    content_type = (_header(request.headers, "Content-Type") or "").split(";")[0].strip()
    if content_type.lower() != "application/json":
        return error_answer(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        return parse_json(request.body)
    except ValueError:  # InvalidJson and UnicodeDecodeError are ValueErrors
        return error_answer(400, "invalid_json", "body is not valid JSON")


def status_for(outcome: Outcome) -> int:
    if outcome.status in _STATUS_FOR_OUTCOME:
        return _STATUS_FOR_OUTCOME[outcome.status]
    if outcome.retryable:
        return 503
    assert outcome.error is not None
    return _STATUS_FOR_ERROR.get(outcome.error.code, 502)


def is_status_path(path: str) -> bool:
    """``/status``, ``/status/``, ``/<prefix>/status``: the status route's paths."""
    return path.rstrip("/").rsplit("/", 1)[-1] == "status"


def status_http_status(status: ObjectStatus) -> int:
    """200 for every state (not_found too); errors map as for a restore (422, 403, 502, 503)."""
    if status.error is None:
        return 200
    if status.error.retryable:
        return 503
    return _STATUS_FOR_ERROR.get(status.error.code, 502)


def status_answer(status: ObjectStatus) -> HttpAnswer:
    code = status_http_status(status)
    headers = {**JSON_HEADERS, "Cache-Control": "no-store"}
    if code == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return HttpAnswer(code, status.model_dump(mode="json", exclude_none=True), headers)


# -- bulk jobs: the status route's job query, errors ------------------------------------------
_JOB_ID_FIELDS = ("job_id", "jobId")
_JOB_QUERY_FIELDS = frozenset({*_JOB_ID_FIELDS, "provider", "bucket", "Bucket", "region",
                               "Region", "report", "report_bucket", "report_prefix"})


def is_job_query(payload: Any) -> bool:
    """A status query naming a bulk job (``job_id``) rather than an object."""
    return isinstance(payload, Mapping) and any(name in payload for name in _JOB_ID_FIELDS)


def job_query_from(query: Mapping[str, Any]) -> dict[str, Any]:
    """The flat ``report_bucket`` / ``report_prefix`` (a GET query's spelling, accepted in a
    POST body too) as the ``report`` object."""
    payload: dict[str, Any] = {k: v for k, v in query.items()
                               if k not in ("report_bucket", "report_prefix")}
    if "report_bucket" in query or "report_prefix" in query:
        report = {"bucket": query.get("report_bucket"), "prefix": query.get("report_prefix")}
        payload["report"] = {k: v for k, v in report.items() if v is not None}
    return payload


def progress_query(job: Any) -> dict[str, Any]:
    """What to send to the status route to read this job's progress."""
    query: dict[str, Any] = {"job_id": job.job_id, "provider": job.provider,
                             "bucket": job.bucket}
    if job.region is not None:
        query["region"] = job.region
    if job.report is not None:
        query["report"] = {"bucket": job.report.bucket, "prefix": job.report.prefix}
    return query


def bulk_error_status(error: ErrorInfo) -> int:
    if error.code is ErrorCode.CONFIGURATION or error.retryable:
        return 503
    return _STATUS_FOR_ERROR.get(error.code, 502)


def bulk_error_answer(exc: Exception, what: str) -> HttpAnswer:
    """A bulk submission's or progress read's failure as an answer; unknown ones (bugs) are
    logged and answered 502, never a 500 page."""
    from shared.bulk.errors import bulk_error

    error = bulk_error(exc)
    if error is None:
        logger.error("%s: unexpected %s", what, type(exc).__name__, exc_info=exc)
        error = ErrorInfo(code=ErrorCode.PROVIDER_ERROR,
                          message=f"{what} (unexpected {type(exc).__name__})")
    status = bulk_error_status(error)
    body = error.model_dump(mode="json", exclude_none=True)
    if error.code is ErrorCode.CONFIGURATION:
        body["code"] = "not_configured"  # as every other configuration gap of the webhook
    headers = dict(JSON_HEADERS)
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return HttpAnswer(status, {"error": body}, headers)


def outcome_body(outcome: Outcome) -> dict[str, Any]:
    body: dict[str, Any] = {
        "outcome": outcome.model_dump(mode="json", exclude_none=True),
        "event_id": event_id(outcome.request_id, outcome.status),
    }
    return body


class WebhookHandler:
    """Authenticate, parse, restore, answer. One instance per process, reused."""

    def __init__(self, service: RestoreService) -> None:
        self._service = service

    def handle(self, request: HttpRequest) -> HttpAnswer:
        status_route = is_status_path(request.path)
        if request.method.upper() == "GET" and (status_route or request.query):
            return self._status_query(request)
        if request.method.upper() != "POST":
            answer = error_answer(
                405, "method_not_allowed",
                "use POST with a JSON body (GET /status with query parameters for an object's "
                "status)",
            )
            answer.headers["Allow"] = "GET, POST" if status_route else "POST"
            return answer
        if (oversized := too_large(request)) is not None:
            return oversized
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        payload = json_body(request)
        if isinstance(payload, HttpAnswer):
            return payload
        if status_route:
            if is_job_query(payload):
                return self._job_progress(payload)
            return status_answer(self._service.status(payload))
        if is_bulk_job(payload):
            return self._bulk_job(payload)
        try:
            items = split_batch(payload)
        except RequestValidationError as exc:
            return HttpAnswer(422, {"error": exc.to_dict()})
        if items is None:
            return self._single(payload)
        return self._batch(items)

    def _status_query(self, request: HttpRequest) -> HttpAnswer:
        """GET: the query parameters are the status query; the signature covers the timestamp
        and the canonical query (``auth.canonical_query``) in place of a body."""
        if (oversized := too_large(request)) is not None:
            return oversized
        refused = self._authenticate(request, auth.canonical_query(request.query))
        if refused is not None:
            return refused
        if is_job_query(request.query):
            return self._job_progress(request.query)
        return status_answer(self._service.status(dict(request.query)))

    # -- bulk jobs ---------------------------------------------------------------------------
    def _bulk_job(self, payload: Any) -> HttpAnswer:
        """Plan a bulk job: 200 dry run, 202 queued, or the error's status (never a 500)."""
        from shared.bulk.gcs_server_side import summary_url
        from shared.bulk.planner import summary_dict
        from shared.bulk.service import bulk_for, parse_job

        try:
            job = parse_job(payload)
        except RequestValidationError as exc:
            return HttpAnswer(422, {"error": exc.to_dict()})
        try:
            bulk = bulk_for(self._service)
            summary = bulk.submit(job)
            body = summary_dict(summary)
            if not job.dry_run:
                params = job.params()
                report = bulk.report_for(params)
                # A GCS server-side job (objects.bulkRestore) has counts only: no rows.
                body["report"] = (summary_url(report) if body.get("mode") == "server_side"
                                  else report.report_urls())
                body["progress_query"] = progress_query(params)
        except RequestValidationError as exc:
            return HttpAnswer(422, {"error": exc.to_dict()})
        except Exception as exc:
            return bulk_error_answer(exc, "the job could not be planned")
        return HttpAnswer(200 if job.dry_run else 202, body)

    def _job_progress(self, payload: Any) -> HttpAnswer:
        """A job's progress through the status route: 200 with the counts so far."""
        from shared.bulk.service import bulk_for

        if isinstance(payload, Mapping):
            payload = job_query_from(payload)
        extra = sorted(str(name) for name in payload if name not in _JOB_QUERY_FIELDS) \
            if isinstance(payload, Mapping) else []
        if extra:
            problems = [FieldProblem(loc=[name], field=name, type="extra_forbidden",
                                     reason="Extra inputs are not permitted") for name in extra]
            return HttpAnswer(422, {"error": RequestValidationError(problems).to_dict()})
        try:
            progress = bulk_for(self._service).progress(payload)
        except RequestValidationError as exc:
            return HttpAnswer(422, {"error": exc.to_dict()})
        except Exception as exc:
            return bulk_error_answer(exc, "the job's report could not be read")
        body = progress.model_dump(mode="json", exclude_none=True)
        body["objects_done"] = progress.objects_done
        return HttpAnswer(200, body, {**JSON_HEADERS, "Cache-Control": "no-store"})

    def _authenticate(
        self, request: HttpRequest, signed: bytes | None = None
    ) -> HttpAnswer | None:
        """None when the caller is authenticated; ``signed`` replaces the body (a GET's query)."""
        settings = self._service.settings
        mode = settings.webhook_auth
        if mode == "iam":
            return None  # the platform (Cloud Run IAM, API Gateway auth) already authenticated
        if mode == "hmac" or (mode is None and settings.webhook_secrets):
            if not settings.webhook_secrets:
                return error_answer(
                    503, "not_configured",
                    "HMAC authentication is selected but RESTORE_WEBHOOK_SECRETS is empty",
                )
            try:
                auth.verify(
                    settings.webhook_secrets, request.headers,
                    request.body if signed is None else signed,
                    tolerance_seconds=settings.webhook_tolerance_seconds,
                )
            except auth.AuthenticationError as exc:
                return error_answer(401, "unauthenticated", str(exc))
            return None
        return error_answer(
            503, "not_configured",
            "webhook authentication is not configured: set RESTORE_WEBHOOK_SECRETS (HMAC) or "
            "RESTORE_WEBHOOK_AUTH=iam when the platform authenticates callers",
        )

    def _run(self, payload: Any) -> tuple[Outcome, bool]:
        """Decide and publish; returns the outcome and whether its event was delivered."""
        # Validation rejections come back unpublished: the caller gets the field list. So does
        # a retryable failure: the caller is answered 503 and sends the request again, and an
        # event (and its callback) would tell a workflow waiting on the callback that the
        # restore failed while its retry succeeds.
        handled = self._service.handle(payload, publish_retryable=False)
        return handled.outcome, handled.delivered

    def _single(self, payload: Any) -> HttpAnswer:
        outcome, delivered = self._run(payload)
        if not delivered:
            return error_answer(
                503, "event_not_delivered",
                "the restore ran but its event could not be published; retry the request",
                retry_after=RETRY_AFTER_SECONDS, outcome=outcome.model_dump(mode="json"),
            )
        status = status_for(outcome)
        body = outcome_body(outcome)
        if outcome.error is not None:
            body["error"] = outcome.error.model_dump(mode="json", exclude_none=True)
        headers = dict(JSON_HEADERS)
        if status == 503:
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return HttpAnswer(status, body, headers)

    def _batch(self, items: list[Any]) -> HttpAnswer:
        """Overall status: 200 all done, 202 all accepted (some still running), 207 mixed with
        failures, 503 (Retry-After) when anything retryable remains: re-sending the whole batch
        is safe, since finished items answer already_restored / in_progress."""
        results = []
        statuses = []
        for index, item in enumerate(items):
            outcome, delivered = self._run(item)
            status = status_for(outcome) if delivered else 503
            statuses.append(status)
            entry = {"index": index, "status": status, **outcome_body(outcome)}
            if not delivered:
                entry["error"] = {"code": "event_not_delivered", "message": "retry this item"}
            results.append(entry)
        headers = dict(JSON_HEADERS)
        if any(s == 503 for s in statuses):
            overall = 503
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        elif all(s == 200 for s in statuses):
            overall = 200
        elif all(s in (200, 202) for s in statuses):
            overall = 202
        else:
            overall = 207
        counts: dict[str, int] = {}
        for entry in results:
            name = str(entry["outcome"]["status"])
            counts[name] = counts.get(name, 0) + 1
        return HttpAnswer(overall, {"results": results, "counts": counts}, headers)
