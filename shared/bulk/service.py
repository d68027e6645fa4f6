"""Bulk jobs on top of the restore service: submit (plan and fan out), work a chunk, progress.

Entry points call this the same way whatever carried the message: the webhook and the queue
functions hand it a job or a chunk payload, the CLI drives it with an in-process queue.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from shared.bulk import gcs_server_side
from shared.bulk.gcs_server_side import OperationProgress, ServerSidePlan
from shared.bulk.planner import PlanSummary, plan
from shared.bulk.queues import ChunkQueue, PubSubChunkQueue, TdmqChunkQueue
from shared.bulk.report import JobReport, Progress, job_event
from shared.bulk.schemas import BulkChunk, BulkJob, JobParams, ObjectRef, OperationPoll
from shared.bulk.selection import (
    cos_listing,
    cos_object_chunks,
    gcs_listing,
    gcs_object_chunks,
    manifest_refs,
    text_lines,
)
from shared.bulk.stores import CosReportStore, GcsReportStore, ReportStore
from shared.bulk.worker import ChunkInFlight, ChunkResult, ChunkWorker
from shared.config import ConfigurationError, Settings
from shared.ledger import Claim, DuplicateInFlight
from shared.outcome import ErrorCode, Outcome, OutcomeStatus
from shared.service import RestoreService
from shared.validation import FieldProblem, RequestValidationError, problems_from

logger = logging.getLogger("restorefn.bulk")


# Operation polls: the first after a minute, then growing, never more than an hour apart.
POLL_FIRST_SECONDS = 60.0
POLL_GROWTH = 1.5
POLL_MAX_SECONDS = 3600.0


class BulkRefused(RuntimeError):
    """The job may not run here (a bucket outside the allowlist, no queue configured, GCS
    refusing its bulkRestore: then ``code`` says why, see shared.bulk.errors)."""

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.code = code


def parse_job(payload: Any) -> BulkJob:
    try:
        return BulkJob.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(problems_from(exc)) from None


def parse_chunk(payload: Any) -> BulkChunk:
    try:
        return BulkChunk.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(problems_from(exc)) from None


def queue_from_settings(settings: Settings) -> ChunkQueue | None:
    if settings.bulk_queue == "pubsub":
        if not settings.bulk_pubsub_topic:
            raise ConfigurationError("RESTORE_BULK_QUEUE=pubsub needs RESTORE_BULK_PUBSUB_TOPIC")
        from shared.sinks.pubsub import PubSubSink

        return PubSubChunkQueue(PubSubSink(settings.bulk_pubsub_topic,
                                           endpoint=settings.event_pubsub_endpoint,
                                           timeout=settings.provider_timeout_seconds))
    if settings.bulk_queue == "tdmq":
        if not settings.bulk_tdmq_topic:
            raise ConfigurationError("RESTORE_BULK_QUEUE=tdmq needs RESTORE_BULK_TDMQ_TOPIC")
        from shared.sinks import tdmq_publisher

        return TdmqChunkQueue(tdmq_publisher(settings, settings.bulk_tdmq_topic,
                                             "RESTORE_BULK_QUEUE=tdmq"))
    return None


class BulkService:
    def __init__(self, service: RestoreService, queue: ChunkQueue | None = None, *,
                 use_settings_queue: bool = True) -> None:
        self.service = service
        self.settings = service.settings
        self.queue = queue if queue is not None or not use_settings_queue \
            else queue_from_settings(service.settings)

    # -- where things are --------------------------------------------------------------------
    def client_for(self, job: JobParams) -> Any:
        """The provider SDK client the job's adapter uses (COS: of the job's region)."""
        adapter: Any = self.service.providers.get(job.provider)
        return adapter.client(job.region) if job.provider == "cos" else adapter.client()

    _client = client_for

    def store_for(self, job: JobParams) -> ReportStore:
        assert job.report is not None
        client = self._client(job)
        if job.provider == "cos":
            return CosReportStore(client, job.report.bucket)
        return GcsReportStore(client, job.report.bucket, self.settings.provider_timeout_seconds)

    def report_for(self, job: JobParams) -> JobReport:
        return JobReport(self.store_for(job), job)

    def job_rate(self, job: BulkJob | JobParams) -> float:
        limit = (self.settings.cos_restore_rate if job.provider == "cos"
                 else self.settings.gcs_restore_rate)
        asked = job.limits.requests_per_second if isinstance(job, BulkJob) else None
        return min(limit, asked) if asked else limit

    def _check_buckets(self, job: BulkJob | JobParams) -> None:
        if getattr(job, "allow_overwrite", False) and not self.service.settings.gcs_allow_overwrite:
            from shared.service import OVERWRITE_NOT_ALLOWED

            raise RequestValidationError([OVERWRITE_NOT_ALLOWED])
        buckets = [job.bucket]
        if job.report is not None:
            buckets.append(job.report.bucket)
        if isinstance(job, BulkJob) and job.selection.manifest is not None:
            buckets.append(job.selection.manifest.bucket or job.bucket)
        for bucket in buckets:
            reason = self.service.allowlist.refusal(job.provider, bucket)
            if reason is not None:
                raise BulkRefused(reason)

    # -- submit ------------------------------------------------------------------------------
    def submit(self, payload: Any) -> PlanSummary:
        """Validate, check buckets, plan: fan the chunks out (or only count, for a dry run).

        Raises RequestValidationError (bad job), BulkRefused (not allowed / not configured).
        """
        job = payload if isinstance(payload, BulkJob) else parse_job(payload)
        self._check_buckets(job)
        # GCS listings that objects.bulkRestore can express go server-side (mode auto or
        # server_side; see shared.bulk.gcs_server_side): one call, no chunks, no queue.
        server_side = gcs_server_side.choose(job)
        if server_side is not None and not job.dry_run:
            return gcs_server_side.start(self, job, server_side)
        if not job.dry_run and self.queue is None:
            raise BulkRefused("bulk jobs need a chunk queue: set RESTORE_BULK_QUEUE "
                              "(pubsub or tdmq)")
        skips: Counter[str] = Counter()
        report = None if job.dry_run else self.report_for(job)
        summary = plan(job, self.selection(job, skips), skips, queue=self.queue, report=report,
                       job_rate=self.job_rate(job), max_instances=self.settings.bulk_max_instances)
        if report is not None:
            self.finish_if_done(job.params(), report)
        if server_side is not None:  # a dry run: what the listing holds, and the call it'd be
            return ServerSidePlan(**summary.model_dump(), request=server_side)
        return summary

    def selection(self, job: BulkJob, skips: Counter[str]) -> Iterator[ObjectRef]:
        sel = job.selection
        client = self._client(job)
        if sel.objects is not None:
            return iter(sel.objects)
        if sel.manifest is not None:
            bucket = sel.manifest.bucket or job.bucket
            reader = cos_object_chunks if job.provider == "cos" else gcs_object_chunks
            lines = text_lines(reader(client, bucket, sel.manifest.key))
            return manifest_refs(lines, sel.manifest.resolved_format(), job.bucket, skips)
        if job.provider == "cos":
            return cos_listing(client, job, skips)
        return gcs_listing(client, job, skips)

    # -- work --------------------------------------------------------------------------------
    def work(self, payload: Any) -> ChunkResult:
        """Run one chunk message. Raises ChunkRedelivery when the platform must redeliver it."""
        chunk = payload if isinstance(payload, BulkChunk) else parse_chunk(payload)
        self._check_buckets(chunk.job)
        worker = ChunkWorker(
            self.service.providers.get(chunk.job.provider), self.report_for,
            threads=self.settings.bulk_worker_threads,
            budget_seconds=self.settings.bulk_chunk_seconds, queue=self.queue,
            claim=self.claim_chunk,
        )
        result = worker.run(chunk)
        if result.chunk_done:
            self.finish_if_done(chunk.job, self.report_for(chunk.job))
        return result

    def claim_chunk(self, chunk: BulkChunk) -> Claim:
        """The ledger claim on a planner chunk and its leftovers, held while one of them runs.

        It outlives the chunk's time budget (plus the ledger's usual claim TTL for the report
        writes), so it never ages out under a live worker. Instances share it only through a
        shared ledger (``RESTORE_LEDGER=gs://...``), as they share the restore claims.
        """
        job = chunk.job
        key = "/".join(["bulk", job.provider, quote(job.bucket, safe=""),
                        quote(job.job_id, safe=""), "chunks", chunk.root_id])
        ttl = self.settings.bulk_chunk_seconds + self.settings.ledger_claim_ttl_seconds
        try:
            return self.service.ledger.claim(key, ttl_seconds=ttl)
        except DuplicateInFlight:
            raise ChunkInFlight(f"chunk {chunk.root_id} of job {job.job_id} is running in "
                                "another delivery") from None

    # -- progress and completion ---------------------------------------------------------------
    def progress(self, payload: Any) -> Progress | OperationProgress:
        """A job's progress: its report's (per-object), or its operation's (server-side)."""
        job = payload if isinstance(payload, JobParams) else _job_ref(payload)
        self._check_buckets(job)
        report = self.report_for(job)
        if job.provider == "gcs" and gcs_server_side.read_record(report) is not None:
            return gcs_server_side.poll(self, job)
        return report.progress()

    def poll_operation(self, payload: Any) -> OperationProgress:
        """A server-side job's operation (``state`` running/completed/failed, its counts); once
        it is done, this publishes the job's completed or failed event (once) and writes
        ``summary.json``. ``unknown`` when the job started no operation.

        Raises RequestValidationError (bad job reference), BulkRefused, OperationUnavailable
        (a StoreError: GCS cannot answer now).
        """
        job = payload if isinstance(payload, JobParams) else _job_ref(payload)
        self._check_buckets(job)
        return gcs_server_side.poll(self, job)

    # -- GCS operations: polled through the re-check transport ---------------------------------
    def schedule_poll(self, job: JobParams, poll: int) -> bool:
        """Have the operation looked at again later; False when no transport is configured (the
        status route and the CLI still poll). Raises ScheduleError when the transport fails."""
        scheduler = self.service.scheduler
        if scheduler is None:
            return False
        delay = min(POLL_FIRST_SECONDS * POLL_GROWTH ** (poll - 1),
                    self.settings.recheck_max_delay_seconds or POLL_MAX_SECONDS,
                    POLL_MAX_SECONDS)
        message = OperationPoll(job=job, poll=poll)
        scheduler.schedule(message.model_dump_json().encode(), delay,
                           dedup_key=f"bulk-poll-{job.job_id}-{poll}")
        return True

    def handle_poll(self, payload: Any) -> OperationProgress | Progress:
        """One delayed look: publish the job's end once it is done, else schedule the next."""
        message = payload if isinstance(payload, OperationPoll) else OperationPoll.model_validate(
            payload)
        progress = self.progress(message.job)
        if progress.state in ("running", "unknown", "planning"):
            self.schedule_poll(message.job, message.poll + 1)
        return progress

    def finish_if_done(self, job: JobParams, report: JobReport) -> bool:
        """When every chunk is done: assemble the report and publish job-completed, once."""
        if not report.all_done():
            return False
        marker = Outcome(request_id=f"bulk/{job.job_id}", status=OutcomeStatus.COMPLETED,
                         provider=job.provider, bucket=job.bucket, region=job.region)

        def finish(_: Outcome) -> None:
            counts = report.assemble()
            event = job_event(job, "completed", counts, urls=report.report_urls(),
                              skipped=dict((report.read_plan() or {}).get("skipped", {})))
            self.service.sink.publish(event)
            if job.callback_url is not None:
                self.service.callbacks.deliver(event, str(job.callback_url))

        try:
            self.service.ledger.publish_once(marker, finish)
        except DuplicateInFlight:
            return False  # another worker is finishing the same job right now
        return True


def _job_ref(payload: Any) -> JobParams:
    """A job named by provider, bucket, region, job_id and report destination."""
    if not isinstance(payload, dict):
        raise RequestValidationError([FieldProblem(loc=[], field="(body)",
                                                   reason="must be a JSON object",
                                                   type="dict_type")])
    fields = {k: v for k, v in payload.items() if k in JobParams.model_fields or k in
              ("jobId", "Bucket", "Region")}
    if payload.get("provider") == "cos" and "days" not in fields:
        fields["days"] = 1  # not used to read a report; required by the COS job schema
    try:
        job = JobParams.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(problems_from(exc)) from None
    if job.report is None:
        raise RequestValidationError([FieldProblem(loc=["report"], field="report",
                                                   reason="required to read a job's progress",
                                                   type="missing")])
    return job


_lock = threading.Lock()


def bulk_for(service: RestoreService) -> BulkService:
    """The service's bulk side, built on first use (settings' queue) and reused."""
    existing: BulkService | None = getattr(service, "bulk_service", None)
    if existing is not None:
        return existing
    with _lock:
        existing = getattr(service, "bulk_service", None)
        if existing is None:
            existing = BulkService(service)
            service.bulk_service = existing
        return existing
