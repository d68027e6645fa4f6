"""GCS server-side bulk restore: one ``objects.bulkRestore`` call and its long-running operation.

Instead of listing and restoring object by object, the job asks GCS to do it
(``POST /storage/v1/b/B/o/bulkRestore``), keeps the operation's name in the report destination
(``operation.json``), and is finished by whoever polls the operation
(``GET /storage/v1/b/B/operations/ID``: the status operation, the CLI) once it is ``done``: the
job-completed (or job-failed) event is published once through the service's ledger, like the
per-object path's, and ``summary.json`` holds the operation's counts.

When a job goes server-side (``choose``):

- ``mode: per_object`` never; ``mode: server_side`` always, or the job is refused when
  bulkRestore cannot express it; ``mode: auto`` when it can;
- bulkRestore can express a GCS listing selection: globs (``matchGlobs``, GCS glob syntax), a
  prefix ``p`` (as the glob ``p**``; with globs as well, only when every glob already starts
  with ``p``), and the four time filters (``softDeletedAfterTime`` ... ``createdBeforeTime``,
  both bounds exclusive, as the per-object listing reads them too);
- it cannot stop at ``limits.max_objects`` nor keep to ``limits.requests_per_second`` (GCS paces
  itself), and a prefix holding glob characters has no glob spelling that is sure to be read
  literally: such jobs stay per-object under ``auto``;
- a dry run never starts anything: it lists and counts what the selection holds, like the
  per-object dry run, and says which mode the real run would use and the body it would send.

Differences from the per-object path, by the API's design:

- ``allowOverwrite`` false (the default, as ``allow_overwrite``): a name with a live object is
  not restored and counts in ``failedCount`` (the per-object path counts it as skipped,
  ``live_object_exists``); true: the live object is replaced (noncurrent with versioning, else
  soft-deleted). Noncurrent objects are never in the way.
- Of several matching generations of a name, the latest is restored and the others are counted
  in ``skippedCount``, together with every soft-deleted object outside the globs or times.
- There are no per-object rows: GCS reports counts only (details are in Cloud Audit Logs), so
  the report destination holds ``operation.json`` and ``summary.json``, not ``report.csv``.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from shared.bulk.planner import PlanSummary
from shared.bulk.report import BulkJobEventData, JobReport, job_event
from shared.bulk.schemas import BulkJob, JobParams
from shared.bulk.selection import GLOB_SPECIALS, literal_prefix
from shared.ledger import DuplicateInFlight, StoreError
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.providers.base import code_for_status, is_retryable_status
from shared.records import record
from shared.schedulers.base import ScheduleError
from shared.validation import FieldProblem, RequestValidationError

if TYPE_CHECKING:
    from shared.bulk.service import BulkService

logger = logging.getLogger("restorefn.bulk")

OPERATION_FILE = "operation.json"
SUMMARY_FILE = "summary.json"
# skippedCount: outside the globs/times, or an older generation of a restored name.
SKIPPED_REASON = "outside_selection_or_older_generation"
IDEMPOTENCY_HEADER = "X-Goog-Gcs-Idempotency-Token"
_TOKEN_NAMESPACE = uuid.UUID("4f0c2a9e-5d1b-4e8a-9c37-2b6f1e0d7a44")
# google.rpc.Code names, for the error of a failed operation.
_RPC_CODES = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
              5: "NOT_FOUND", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
              9: "FAILED_PRECONDITION", 10: "ABORTED", 13: "INTERNAL", 14: "UNAVAILABLE"}


class OperationUnavailable(StoreError):
    """GCS could not be reached or answered 429/5xx: the caller must try again later.

    A ``StoreError``, so the queue entry points already nack the message (it is redelivered)
    and nothing is recorded in the ledger.
    """


class ServerSidePlan(PlanSummary):
    """The answer to a job that goes (or, for a dry run, would go) through bulkRestore.

    ``objects``/``chunks`` are 0 for a started job (GCS selects, and counts when done); a dry
    run counts what the listing holds.
    """

    mode: Literal["server_side"] = "server_side"
    operation: str | None = None
    request: dict[str, Any]


class OperationProgress(BaseModel):
    """Where a server-side job stands: what ``BulkService.poll_operation`` answers."""

    job_id: str
    mode: Literal["server_side"] = "server_side"
    state: Literal["running", "completed", "failed", "unknown"]
    operation: str | None = None
    # completed: succeededCount, failed: failedCount (only those above zero).
    counts: dict[str, int] = {}
    skipped: dict[str, int] = {}
    error: ErrorInfo | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    report: dict[str, str] | None = None

    @property
    def objects_done(self) -> int:
        return sum(self.counts.values())


@record
class ServerSideJobEventData(BulkJobEventData):
    """``data`` of a server-side job's event: the job event's, plus the operation's name."""

    mode: Literal["server_side"] = "server_side"
    operation: str


# -- the fit rule --------------------------------------------------------------------------------
def unfit_reasons(job: BulkJob) -> list[str]:
    """Why bulkRestore cannot run this job as asked (empty: it can)."""
    sel = job.selection
    if job.provider != "gcs" or not sel.is_listing:
        return ["bulkRestore restores a GCS listing selection (prefix/globs/times)"]
    reasons = []
    if job.limits.max_objects is not None:
        reasons.append("bulkRestore cannot stop at limits.max_objects")
    if job.limits.requests_per_second is not None:
        reasons.append("bulkRestore paces itself: limits.requests_per_second needs per_object")
    if sel.prefix and any(c in sel.prefix for c in GLOB_SPECIALS):
        reasons.append("the prefix holds glob characters (*?[{\\), which bulkRestore's globs "
                       "would not read literally")
    elif sel.prefix and sel.globs and not all(literal_prefix(g).startswith(sel.prefix)
                                              for g in sel.globs):
        reasons.append("with a prefix, every glob must start with it (bulkRestore has globs, "
                       "no prefix)")
    return reasons


def choose(job: BulkJob) -> dict[str, Any] | None:
    """The bulkRestore body when the job goes server-side, else None.

    Raises RequestValidationError for ``mode: server_side`` when bulkRestore cannot run it.
    """
    if job.mode == "per_object" or job.provider != "gcs" or not job.selection.is_listing:
        return None
    reasons = unfit_reasons(job)
    if reasons:
        if job.mode == "server_side":
            raise RequestValidationError([FieldProblem(
                loc=["mode"], field="mode", type="server_side_unfit",
                reason="server_side cannot run this job: " + "; ".join(reasons),
            )])
        return None
    return request_body(job)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def request_body(job: BulkJob) -> dict[str, Any]:
    """The ``objects.bulkRestore`` body for a job that fits (see ``unfit_reasons``)."""
    sel = job.selection
    globs = list(sel.globs) or ([sel.prefix + "**"] if sel.prefix else [])
    body: dict[str, Any] = {"allowOverwrite": job.allow_overwrite}
    if globs:
        body["matchGlobs"] = globs
    if job.copy_source_acl is not None:
        body["copySourceAcl"] = job.copy_source_acl
    for field, value in (("softDeletedAfterTime", sel.soft_deleted_after),
                         ("softDeletedBeforeTime", sel.soft_deleted_before),
                         ("createdAfterTime", sel.created_after),
                         ("createdBeforeTime", sel.created_before)):
        if value is not None:
            body[field] = _rfc3339(value)
    return body


# -- start ---------------------------------------------------------------------------------------
def _marker(job: JobParams, status: OutcomeStatus) -> Outcome:
    """The ledger entry of the job: accepted (operation started) and done (event published)."""
    return Outcome(request_id=f"bulk/{job.job_id}", status=status, provider=job.provider,
                   bucket=job.bucket, region=job.region)


def _report_key(report: JobReport, name: str) -> str:
    return f"{report.base}/{name}"


def read_record(report: JobReport) -> dict[str, Any] | None:
    """The job's ``operation.json`` (job parameters, operation name, request), if started."""
    raw = report.store.get(_report_key(report, OPERATION_FILE))
    return None if raw is None else dict(json.loads(raw))


def start(bulk: BulkService, job: BulkJob, body: dict[str, Any]) -> ServerSidePlan:
    """Start the operation once per job (a redelivered job answers with the same operation).

    Raises OperationUnavailable (retry later) and, through the caller, BulkRefused when GCS
    refuses the request for good (no soft delete policy, access denied, a bad glob).
    """
    from shared.bulk.service import BulkRefused

    params = job.params()
    report = bulk.report_for(params)
    client = bulk.client_for(params)
    timeout = bulk.settings.provider_timeout_seconds

    def begin(_: Outcome) -> None:
        # The report destination outlives any instance (the default memory ledger does not):
        # a job another instance started has its operation.json there.
        if read_record(report) is not None:
            return
        operation = post_bulk_restore(client, job.bucket, body, job.job_id, timeout)
        record = {"job": params.model_dump(mode="json"), "operation": operation["name"],
                  "request": body, "started_at": datetime.now(timezone.utc).isoformat()}
        report.store.put(_report_key(report, OPERATION_FILE), json.dumps(record).encode())
        # Nobody has to ask for the job's end: a delayed poll publishes it (when a re-check
        # transport is configured; otherwise the status route and the CLI poll).
        try:
            bulk.schedule_poll(params, 1)
        except ScheduleError as exc:  # the operation runs anyway; status and the CLI poll it
            logger.warning("bulk job %s: operation poll not scheduled (%s)", job.job_id, exc)

    operation: str | None = None
    try:
        record = read_record(report)
        if record is None:
            bulk.service.ledger.publish_once(_marker(params, OutcomeStatus.INITIATED), begin)
            record = read_record(report)
        operation = None if record is None else str(record["operation"])
    except DuplicateInFlight:
        pass  # another delivery of this job is starting it right now
    except _GoogleRefusal as exc:
        raise BulkRefused(f"bulkRestore refused: {exc}", exc.error.code) from None
    return ServerSidePlan(
        job_id=job.job_id, dry_run=False, objects=0, chunks=0, by_storage_class={}, skipped={},
        rate_per_worker=0.0, max_instances=bulk.settings.bulk_max_instances,
        operation=operation, request=body,
    )


# -- the wire ------------------------------------------------------------------------------------
class _GoogleRefusal(RuntimeError):
    """A non-retryable answer (4xx other than 429) to a bulkRestore or operations call."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(f"{error.http_status} {error.provider_code or error.code.value}: "
                         f"{error.message}")
        self.error = error


def _api_error(exc: Any) -> ErrorInfo:
    http_status = int(exc.code) if getattr(exc, "code", None) is not None else None
    reason = next((str(e["reason"]) for e in (getattr(exc, "errors", None) or [])
                   if isinstance(e, dict) and e.get("reason")), None)
    code = code_for_status(http_status)
    if reason and reason.lower() in ("softdeletepolicyrequired", "softdeletepolicynotset"):
        code = ErrorCode.SOFT_DELETE_NOT_ENABLED
    return ErrorInfo(code=code, message=str(getattr(exc, "message", exc)),
                     retryable=is_retryable_status(http_status), http_status=http_status,
                     provider_code=reason)


def _call(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """One JSON API call through the storage client's authorized session (its api_endpoint,
    its credentials), with google.api_core errors sorted into retry-later and refused."""
    import requests
    from google.api_core.exceptions import GoogleAPICallError
    from google.auth.exceptions import TransportError

    try:
        answer: dict[str, Any] = fn(*args, **kwargs)
    except GoogleAPICallError as exc:
        error = _api_error(exc)
        if error.retryable:
            raise OperationUnavailable(f"GCS answered {error.http_status}") from None
        raise _GoogleRefusal(error) from None
    except (requests.RequestException, TransportError, ConnectionError, TimeoutError) as exc:
        raise OperationUnavailable(f"GCS unreachable: {type(exc).__name__}") from None
    return answer


def post_bulk_restore(client: Any, bucket: str, body: dict[str, Any], job_id: str,
                      timeout: float) -> dict[str, Any]:
    """``POST /b/B/o/bulkRestore``: the operation resource. Not retried here (the caller's
    queue redelivers); the idempotency token, derived from the job, is the same every time."""
    token = uuid.uuid5(_TOKEN_NAMESPACE, job_id).hex
    return _call(client._post_resource, f"/b/{quote(bucket, safe='')}/o/bulkRestore", body,
                 headers={IDEMPOTENCY_HEADER: token}, timeout=timeout, retry=None)


def get_operation(client: Any, bucket: str, name: str, timeout: float) -> dict[str, Any]:
    """``GET /b/B/operations/ID`` for an operation named ``projects/_/buckets/B/operations/ID``."""
    op_id = name.rsplit("/", 1)[-1]
    return _call(client._get_resource,
                 f"/b/{quote(bucket, safe='')}/operations/{quote(op_id, safe='')}",
                 timeout=timeout, retry=None)


# -- poll and finish -----------------------------------------------------------------------------
def _count(metadata: dict[str, Any], name: str) -> int:
    try:
        return int(metadata.get(name) or 0)
    except (TypeError, ValueError):
        return 0


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _operation_error(status: dict[str, Any]) -> ErrorInfo:
    """A failed (or cancelled) operation's google.rpc.Status as our error."""
    code = status.get("code")
    name = _RPC_CODES.get(code, str(code)) if isinstance(code, int) else None
    return ErrorInfo(code=ErrorCode.PROVIDER_ERROR, provider_code=name,
                     message=str(status.get("message") or "the bulkRestore operation failed"))


def progress_of(job_id: str, operation: dict[str, Any],
                started_at: datetime | None = None) -> OperationProgress:
    metadata = operation.get("metadata") or {}
    common = metadata.get("commonMetadata") or {}
    counts = {"completed": _count(metadata, "succeededCount"),
              "failed": _count(metadata, "failedCount")}
    skipped = _count(metadata, "skippedCount")
    error = operation.get("error")
    done = bool(operation.get("done"))
    state: Literal["running", "completed", "failed"] = (
        "running" if not done else "failed" if error else "completed"
    )
    return OperationProgress(
        job_id=job_id, state=state, operation=str(operation.get("name") or "") or None,
        counts={k: v for k, v in counts.items() if v},
        skipped={SKIPPED_REASON: skipped} if skipped else {},
        error=_operation_error(error) if done and isinstance(error, dict) else None,
        started_at=_time(common.get("createTime")) or started_at,
        ended_at=_time(common.get("endTime")),
    )


def poll(bulk: BulkService, job: JobParams) -> OperationProgress:
    """Look at the job's operation; when it is done, finish the job (once). Raises
    OperationUnavailable when GCS cannot answer now."""
    report = bulk.report_for(job)
    record = read_record(report)
    if record is None:
        return OperationProgress(job_id=job.job_id, state="unknown")
    params = JobParams.model_validate(record["job"])  # the job as submitted: context, callback
    name = str(record["operation"])
    try:
        operation = get_operation(bulk.client_for(params), params.bucket, name,
                                  bulk.settings.provider_timeout_seconds)
    except _GoogleRefusal as exc:  # e.g. 404: the operation is no longer kept
        return OperationProgress(job_id=job.job_id, state="unknown", operation=name,
                                 error=exc.error, started_at=_time(record.get("started_at")))
    progress = progress_of(job.job_id, operation, _time(record.get("started_at")))
    if progress.state == "running":
        return progress
    finish(bulk, params, report, progress)
    return progress.model_copy(update={"report": summary_url(report)})


def summary_url(report: JobReport) -> dict[str, str]:
    assert report.job.report is not None
    return {"summary": f"gs://{report.job.report.bucket}/{report.base}/{SUMMARY_FILE}"}


def finish(bulk: BulkService, job: JobParams, report: JobReport,
           progress: OperationProgress) -> bool:
    """Write ``summary.json`` and publish the job's terminal event, once (the ledger's done
    phase of ``bulk/JOB_ID``, the same entry the per-object path finishes with)."""
    failed = progress.state == "failed"
    operation = progress.operation
    assert operation is not None

    def publish(_: Outcome) -> None:
        summary = {"job_id": job.job_id, "mode": "server_side", "operation": operation,
                   "state": progress.state, "counts": progress.counts,
                   "total": progress.objects_done, "skipped": progress.skipped,
                   "error": None if progress.error is None else progress.error.model_dump(
                       mode="json", exclude_none=True),
                   "completed_at": datetime.now(timezone.utc).isoformat()}
        report.store.put(_report_key(report, SUMMARY_FILE), json.dumps(summary).encode())
        base = job_event(job, "failed" if failed else "completed", progress.counts,
                         skipped=progress.skipped, failed=failed)
        data = ServerSideJobEventData(**{**base.data.model_dump(), "error": progress.error},
                                      operation=operation)
        event = base.model_copy(update={"data": data})
        bulk.service.sink.publish(event)
        if job.callback_url is not None:
            bulk.service.callbacks.deliver(event, str(job.callback_url))

    marker = _marker(job, OutcomeStatus.FAILED if failed else OutcomeStatus.COMPLETED)
    try:
        return bulk.service.ledger.publish_once(marker, publish)
    except DuplicateInFlight:
        return False  # another poller is finishing the job right now
