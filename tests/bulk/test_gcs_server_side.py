"""GCS bulk jobs through objects.bulkRestore: the fit rule, the request, the long-running
operation polled to its end, and exactly one job event (completed, or failed when the
operation was cancelled or failed).

The operations take a minute of emulated time (``bulk_gcs_emulator``): only ``clock.advance``
finishes one, no test sleeps.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from emulators._http import FaultPlan, RunningEmulator
from emulators.gcs import GcsEmulator
from shared.bulk.errors import bulk_error
from shared.bulk.gcs_server_side import (
    IDEMPOTENCY_HEADER,
    SKIPPED_REASON,
    OperationProgress,
    OperationUnavailable,
    ServerSidePlan,
    choose,
)
from shared.bulk.schemas import BulkJob
from shared.bulk.service import BulkRefused
from shared.queue import process_message
from shared.validation import RequestValidationError
from tests.bulk.conftest import GCS_REPORT_BUCKET, gcs_job
from tests.conftest import GCS_BUCKET, CollectingSink
from tests.integration.test_callbacks import Receiver

MINUTE = 61.0


def client_for(running: RunningEmulator) -> storage.Client:
    return storage.Client(project="p", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                          client_options={"api_endpoint": running.url})


def soft_deleted(emulator: GcsEmulator, name: str, data: bytes = b"x") -> int:
    generation = emulator.put_object(GCS_BUCKET, name, data)
    emulator.delete_object(GCS_BUCKET, name)
    return generation


def ref(job_id: str) -> dict[str, Any]:
    return {"provider": "gcs", "bucket": GCS_BUCKET, "job_id": job_id,
            "report": {"bucket": GCS_REPORT_BUCKET, "prefix": "reports"}}


def job_events(sink: CollectingSink) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type.rsplit(".", 1)[-1], e.data.model_dump(mode="json")) for e in sink.events
            if e.type.startswith("restorefn.bulk.job.v1.")]


def report_file(running: RunningEmulator, job_id: str, name: str) -> dict[str, Any]:
    blob = client_for(running).bucket(GCS_REPORT_BUCKET).blob(f"reports/{job_id}/{name}")
    loaded: dict[str, Any] = json.loads(blob.download_as_bytes())
    return loaded


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


# -- the whole motion ----------------------------------------------------------------------------
def test_an_auto_job_runs_as_one_bulk_restore_polled_to_one_completed_event(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    emulator = bulk_gcs_emulator.emulator
    soft_deleted(emulator, "logs/old", b"before the window")
    emulator.clock.advance(3600)
    window = emulator.clock.now() - 60
    soft_deleted(emulator, "logs/a", b"a")
    soft_deleted(emulator, "logs/b", b"b1")
    soft_deleted(emulator, "logs/b", b"b2")
    soft_deleted(emulator, "logs/c", b"deleted c")
    emulator.put_object(GCS_BUCKET, "logs/c", b"live c")  # not overwritten: failedCount
    soft_deleted(emulator, "other/x")
    harness = gcs_bulk()

    job = gcs_job(job_id="job-server", copy_source_acl=True, context={"ticket": "OPS-1"},
                  selection={"prefix": "logs/", "soft_deleted_after": stamp(window)})
    summary = harness.bulk.submit(job)

    assert isinstance(summary, ServerSidePlan)
    assert summary.mode == "server_side" and not summary.dry_run
    assert summary.operation is not None
    assert summary.operation.startswith(f"projects/_/buckets/{GCS_BUCKET}/operations/")
    expected_body = {"allowOverwrite": False, "matchGlobs": ["logs/**"], "copySourceAcl": True,
                     "softDeletedAfterTime": datetime.fromtimestamp(window, timezone.utc)
                     .isoformat().replace("+00:00", "Z")}
    assert summary.request == expected_body
    [operation] = emulator.operations(GCS_BUCKET)
    assert operation["name"] == summary.operation and operation["body"] == expected_body
    [post] = [e for e in bulk_gcs_emulator.log.entries() if e.path.endswith("/o/bulkRestore")]
    assert post.method == "POST" and len(post.headers[IDEMPOTENCY_HEADER.lower()]) == 32
    assert harness.queue.delivered == 0  # no chunks: GCS does the work

    running = harness.bulk.poll_operation(ref("job-server"))
    assert (running.state, running.operation, running.counts) == (
        "running", summary.operation, {})
    assert job_events(sink) == []

    # A redelivered job message answers with the same operation, and starts no other.
    again = harness.bulk.submit(job)
    assert isinstance(again, ServerSidePlan) and again.operation == summary.operation
    # ... on another instance too (its own memory ledger): operation.json is in the report.
    elsewhere = gcs_bulk().bulk.submit(job)
    assert isinstance(elsewhere, ServerSidePlan) and elsewhere.operation == summary.operation
    assert len(emulator.operations(GCS_BUCKET)) == 1

    emulator.clock.advance(MINUTE)
    done = harness.bulk.poll_operation(ref("job-server"))
    # logs/a, logs/b (its newest generation) restored; logs/c has a live object; logs/old and
    # other/x outside the selection, logs/b's older generation superseded.
    assert done.state == "completed" and done.error is None
    assert done.counts == {"completed": 2, "failed": 1}
    assert done.skipped == {SKIPPED_REASON: 3}
    assert done.report == {"summary": f"gs://{GCS_REPORT_BUCKET}/reports/job-server/summary.json"}
    bucket = client_for(bulk_gcs_emulator).bucket(GCS_BUCKET)
    assert bucket.blob("logs/b").download_as_bytes() == b"b2"
    assert bucket.blob("logs/c").download_as_bytes() == b"live c"
    assert bucket.get_blob("logs/old") is None

    [(phase, data)] = job_events(sink)
    assert phase == "completed" and data["outcome"] == "completed"
    assert data["counts"] == {"completed": 2, "failed": 1} and data["total"] == 3
    assert data["skipped"] == {SKIPPED_REASON: 3}
    assert data["operation"] == summary.operation and data["mode"] == "server_side"
    assert data["context"] == {"ticket": "OPS-1"} and data["job_id"] == "job-server"
    summary_json = report_file(bulk_gcs_emulator, "job-server", "summary.json")
    assert summary_json["counts"] == {"completed": 2, "failed": 1}
    assert summary_json["operation"] == summary.operation and summary_json["state"] == "completed"

    # Polling a finished job again (or asking its progress) publishes nothing more.
    assert harness.bulk.poll_operation(ref("job-server")).state == "completed"
    progress = harness.bulk.progress(ref("job-server"))
    assert isinstance(progress, OperationProgress) and progress.state == "completed"
    assert len(job_events(sink)) == 1


def test_allow_overwrite_replaces_live_objects(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    emulator = bulk_gcs_emulator.emulator
    soft_deleted(emulator, "keep", b"deleted copy")
    emulator.put_object(GCS_BUCKET, "keep", b"live copy")
    harness = gcs_bulk()
    summary = harness.bulk.submit(gcs_job(job_id="job-over", mode="server_side",
                                          allow_overwrite=True, selection={"globs": ["keep"]}))
    assert summary.request == {"allowOverwrite": True, "matchGlobs": ["keep"]}
    emulator.clock.advance(MINUTE)
    assert harness.bulk.poll_operation(ref("job-over")).counts == {"completed": 1}
    bucket = client_for(bulk_gcs_emulator).bucket(GCS_BUCKET)
    assert bucket.blob("keep").download_as_bytes() == b"deleted copy"
    assert [phase for phase, _ in job_events(sink)] == ["completed"]


# -- operations that do not succeed ----------------------------------------------------------------
def test_a_cancelled_operation_ends_the_job_with_one_failed_event(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    soft_deleted(bulk_gcs_emulator.emulator, "doc")
    harness = gcs_bulk()
    summary = harness.bulk.submit(gcs_job(job_id="job-cancel", selection={"globs": ["*"]}))
    assert isinstance(summary, ServerSidePlan) and summary.operation is not None
    op_id = summary.operation.rsplit("/", 1)[-1]
    client = client_for(bulk_gcs_emulator)
    cancelled = client._http.post(
        f"{bulk_gcs_emulator.url}/storage/v1/b/{GCS_BUCKET}/operations/{op_id}/cancel")
    assert cancelled.status_code == 204

    failed = harness.bulk.poll_operation(ref("job-cancel"))
    assert failed.state == "failed" and failed.error is not None
    assert (failed.error.code.value, failed.error.provider_code) == ("provider_error", "CANCELLED")
    assert harness.bulk.poll_operation(ref("job-cancel")).state == "failed"
    [(phase, data)] = job_events(sink)
    assert phase == "failed" and data["outcome"] == "failed"
    assert data["error"]["provider_code"] == "CANCELLED"
    assert "cancelled" in data["error"]["message"]
    assert report_file(bulk_gcs_emulator, "job-cancel", "summary.json")["state"] == "failed"
    assert client.bucket(GCS_BUCKET).get_blob("doc") is None


def test_a_failed_operation_ends_the_job_with_one_failed_event(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    soft_deleted(bulk_gcs_emulator.emulator, "doc")
    harness = gcs_bulk()
    receiver = Receiver()
    try:
        summary = harness.bulk.submit(gcs_job(job_id="job-fail", mode="server_side",
                                              callback_url=receiver.url))
        _fail_and_poll(bulk_gcs_emulator, harness, summary, sink)
        # The job's callback got the same event.
        [(_, body)] = receiver.accepted
        assert body["type"] == "restorefn.bulk.job.v1.failed"
        assert body["data"]["operation"] == summary.operation
    finally:
        receiver.close()


def _fail_and_poll(bulk_gcs_emulator: RunningEmulator, harness: Any, summary: Any,
                   sink: CollectingSink) -> None:
    assert isinstance(summary, ServerSidePlan) and summary.operation is not None
    bulk_gcs_emulator.emulator.fail_operation(GCS_BUCKET, summary.operation, 13, "backend gone")
    failed = harness.bulk.progress(ref("job-fail"))
    assert isinstance(failed, OperationProgress)
    assert failed.state == "failed" and failed.error is not None
    assert (failed.error.provider_code, failed.error.message) == ("INTERNAL", "backend gone")
    assert [phase for phase, _ in job_events(sink)] == ["failed"]


def test_a_refused_start_is_a_refusal_and_a_retryable_one_is_retried(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    emulator = bulk_gcs_emulator.emulator
    emulator.create_bucket("restore-nosoft", soft_delete_seconds=0)
    harness = gcs_bulk()
    with pytest.raises(BulkRefused, match="SoftDeletePolicyRequired") as refused:
        harness.bulk.submit(gcs_job(job_id="job-nosoft", bucket="restore-nosoft"))
    error = bulk_error(refused.value)
    assert error is not None and error.code.value == "soft_delete_not_enabled"

    bulk_gcs_emulator.faults.set(FaultPlan(script=[503], match_path="/o/bulkRestore"))
    job = gcs_job(job_id="job-503", selection={"prefix": "p/"})
    with pytest.raises(OperationUnavailable):
        harness.bulk.submit(job)
    assert emulator.operations(GCS_BUCKET) == []
    # Through the queue: the message is nacked while GCS cannot answer, and the redelivery
    # starts the one operation.
    bulk_gcs_emulator.faults.set(FaultPlan(script=[503], match_path="/o/bulkRestore"))
    assert process_message(harness.service, json.dumps(job)).retry is True
    result = process_message(harness.service, json.dumps(job))
    assert result.retry is False and result.bulk is not None
    assert result.bulk["mode"] == "server_side" and result.bulk["operation"]
    assert len(emulator.operations(GCS_BUCKET)) == 1
    assert job_events(sink) == []


def test_a_job_without_an_operation_has_unknown_progress(gcs_bulk: Any) -> None:
    progress = gcs_bulk().bulk.poll_operation(ref("job-never"))
    assert (progress.state, progress.operation) == ("unknown", None)


# -- the fit rule --------------------------------------------------------------------------------
def _job(**fields: Any) -> BulkJob:
    return BulkJob.model_validate(gcs_job(**fields))


def test_the_request_body_expresses_prefix_globs_and_times() -> None:
    assert choose(_job()) == {"allowOverwrite": False}  # the whole bucket
    assert choose(_job(selection={"prefix": "a/b"})) == {"allowOverwrite": False,
                                                        "matchGlobs": ["a/b**"]}
    assert choose(_job(selection={"prefix": "a/", "globs": ["a/*.gz", "a/{x,y}/**"]})) == {
        "allowOverwrite": False, "matchGlobs": ["a/*.gz", "a/{x,y}/**"]}
    body = choose(_job(copy_source_acl=False, selection={
        "globs": ["**.csv"], "soft_deleted_before": "2026-03-01T12:00:00+02:00",
        "created_after": "2026-01-01T00:00:00.5", "created_before": "2026-02-01T00:00:00Z"}))
    assert body == {"allowOverwrite": False, "matchGlobs": ["**.csv"], "copySourceAcl": False,
                    "softDeletedBeforeTime": "2026-03-01T10:00:00Z",
                    "createdAfterTime": "2026-01-01T00:00:00.500000Z",
                    "createdBeforeTime": "2026-02-01T00:00:00Z"}


@pytest.mark.parametrize(("fields", "why"), [
    ({"limits": {"max_objects": 10}}, "max_objects"),
    ({"limits": {"requests_per_second": 5}}, "requests_per_second"),
    ({"selection": {"prefix": "odd*name/"}}, "glob characters"),
    ({"selection": {"prefix": "a/", "globs": ["*.gz"]}}, "every glob must start with it"),
])
def test_auto_stays_per_object_and_server_side_refuses_what_bulk_restore_cannot_do(
        fields: dict[str, Any], why: str) -> None:
    assert choose(_job(**fields)) is None
    with pytest.raises(RequestValidationError) as exc:
        choose(_job(mode="server_side", **fields))
    [problem] = exc.value.problems
    assert problem.field == "mode" and why in problem.reason


def test_modes_that_never_go_server_side() -> None:
    assert choose(_job(mode="per_object", selection={"prefix": "a/"})) is None
    assert choose(_job(selection={"objects": [{"name": "a"}]})) is None
    assert choose(_job(selection={"manifest": {"key": "m.csv"}})) is None
    cos = {**gcs_job(mode="server_side"), "provider": "cos", "bucket": "archive-1250000000",
           "region": "ap-guangzhou", "days": 1, "report": {"bucket": "archive-1250000000"}}
    for invalid, why in (
            (gcs_job(mode="server_side", selection={"objects": [{"name": "a"}]}),
             "server_side needs a GCS listing"),
            (cos, "server_side needs a GCS listing"),
            (gcs_job(selection={"manifest": {"key": "m.csv"},
                                "soft_deleted_after": "2026-01-01T00:00:00Z"}),
             "filter a listing"),
            (gcs_job(selection={"created_after": "2026-02-01T00:00:00Z",
                                "created_before": "2026-01-01T00:00:00Z"}),
             "created_after must be earlier")):
        with pytest.raises(ValueError, match=why):
            BulkJob.model_validate(invalid)


def test_a_dry_run_lists_and_counts_and_starts_nothing(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    emulator = bulk_gcs_emulator.emulator
    for name in ("d/1", "d/2", "e/3"):
        soft_deleted(emulator, name)
    summary = gcs_bulk().bulk.submit(gcs_job(job_id="job-dry", dry_run=True,
                                             selection={"prefix": "d/"}))
    assert isinstance(summary, ServerSidePlan)
    assert (summary.dry_run, summary.objects, summary.operation) == (True, 2, None)
    assert summary.request == {"allowOverwrite": False, "matchGlobs": ["d/**"]}
    assert emulator.operations(GCS_BUCKET) == [] and job_events(sink) == []


# -- polled by itself: the re-check transport brings the operation back ----------------------------
class DelayQueue:
    """The re-check transport's contract (RecheckScheduler) kept in memory: what was scheduled,
    with which delay, to be delivered by the test when it chooses."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[bytes, float, str | None]] = []

    def schedule(self, body: bytes, delay_seconds: float, *, dedup_key: str | None = None
                 ) -> None:
        self.scheduled.append((body, delay_seconds, dedup_key))


def test_the_operation_is_polled_through_the_recheck_transport_until_done(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    emulator = bulk_gcs_emulator.emulator
    soft_deleted(emulator, "polled/a")
    soft_deleted(emulator, "polled/b")
    harness = gcs_bulk()
    transport = DelayQueue()
    harness.service.scheduler = transport
    plan = harness.bulk.submit(gcs_job(job_id="job-polled", selection={"prefix": "polled/"}))
    assert isinstance(plan, ServerSidePlan) and plan.operation

    # First look a minute later; the operation is still running, so the next is scheduled.
    body, delay, key = transport.scheduled[0]
    assert delay == 60.0 and key == "bulk-poll-job-polled-1"
    assert json.loads(body)["kind"] == "restorefn.bulk.poll.v1"
    early = process_message(harness.service, body)
    assert not early.retry and early.bulk is not None and early.bulk["state"] == "running"
    assert len(transport.scheduled) == 2 and transport.scheduled[1][1] == 90.0
    assert job_events(sink) == []

    emulator.clock.advance(MINUTE)
    done = process_message(harness.service, transport.scheduled[1][0])
    assert done.bulk is not None and done.bulk["state"] == "completed"
    assert len(transport.scheduled) == 2  # done: nothing more to look at
    again = process_message(harness.service, transport.scheduled[1][0])  # a duplicate delivery
    assert not again.retry
    ((phase, data),) = job_events(sink)
    assert phase == "completed" and data["counts"]["completed"] == 2


def test_the_google_recheck_function_handler_runs_operation_polls(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    from pydantic import SecretStr

    from shared.recheck_http import RecheckHandler
    from shared.task_auth import sign_task
    from shared.webhook import HttpRequest

    secret = SecretStr("task-secret")
    soft_deleted(bulk_gcs_emulator.emulator, "viahttp/a")
    harness = gcs_bulk(webhook_secrets=(secret,), webhook_auth="hmac")
    transport = DelayQueue()
    harness.service.scheduler = transport
    harness.bulk.submit(gcs_job(job_id="job-http-poll", selection={"prefix": "viahttp/"}))
    body = transport.scheduled[0][0]
    handler = RecheckHandler(harness.service)

    unsigned = handler.handle(HttpRequest(method="POST", body=body,
                                          headers={"Content-Type": "application/json"}))
    assert unsigned.status == 401 and job_events(sink) == []
    bulk_gcs_emulator.emulator.clock.advance(MINUTE)
    signed = handler.handle(HttpRequest(method="POST", body=body, headers={
        "Content-Type": "application/json", **sign_task(secret, body)}))
    assert signed.status == 200
    assert signed.body["result"] == "polled"
    assert signed.body["progress"]["state"] == "completed"
    assert [phase for phase, _ in job_events(sink)] == ["completed"]
