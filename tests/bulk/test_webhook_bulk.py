"""Bulk jobs through the webhook: acceptance (dry run, queued, refused) and job progress through
the status route, signed like every request; one dry run through the real Google entry point."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import functions_framework
import pytest
from pydantic import SecretStr

from emulators._http import FaultPlan, RunningEmulator
from shared import auth
from shared.retry import RetryPolicy
from shared.service import RestoreService
from shared.webhook import HttpAnswer, HttpRequest, WebhookHandler
from tests.bulk.conftest import REPORT_BUCKET, cos_job
from tests.conftest import COS_BUCKET, COS_REGION, CollectingSink, make_settings

SECRET = SecretStr("webhook-test-secret")


def post(handler: WebhookHandler, payload: Any, *, path: str = "/",
         sign: bool = True) -> HttpAnswer:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        headers.update(auth.sign(SECRET, body))
    return handler.handle(HttpRequest("POST", headers, body, path=path))


def get_status(handler: WebhookHandler, query: dict[str, str]) -> HttpAnswer:
    return handler.handle(HttpRequest("GET", auth.sign_query(SECRET, query), b"", path="/status",
                                      query=query))


def archive(cos: RunningEmulator, count: int, prefix: str = "logs/") -> list[str]:
    keys = [f"{prefix}day-{i:03d}.gz" for i in range(count)]
    for key in keys:
        cos.emulator.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
    return keys


def restore_posts(cos: RunningEmulator) -> int:
    return sum(r["received"] for r in cos.emulator.restore_requests())


@pytest.fixture
def bulk_webhook(cos_bulk) -> Any:
    """A webhook whose service runs chunks on an in-process queue (the harness)."""
    harness = cos_bulk(webhook_secrets=(SECRET,))
    harness.webhook = WebhookHandler(harness.service)
    return harness


@pytest.fixture
def queueless(cos_emulator: RunningEmulator, sink: CollectingSink) -> WebhookHandler:
    """A webhook deployed without RESTORE_BULK_QUEUE: dry runs only."""
    cos_emulator.emulator.create_bucket(REPORT_BUCKET)
    settings = make_settings(cos_emulator, webhook_secrets=(SECRET,))
    return WebhookHandler(RestoreService(settings, sink=sink,
                                         retry=RetryPolicy.from_settings(settings)))


def test_dry_run_answers_200_with_the_plan_and_restores_nothing(
        queueless: WebhookHandler, cos_emulator: RunningEmulator) -> None:
    archive(cos_emulator, 7)
    cos_emulator.emulator.put_object(COS_BUCKET, "logs/live.txt", b"x", "STANDARD")
    answer = post(queueless, cos_job(job_id="job-dry", dry_run=True,
                                     selection={"prefix": "logs/"}, limits={"chunk_size": 3}))
    assert answer.status == 200, answer.body
    assert answer.body["job_id"] == "job-dry"
    assert answer.body["dry_run"] is True
    assert (answer.body["objects"], answer.body["chunks"]) == (7, 3)
    assert answer.body["by_storage_class"] == {"ARCHIVE": 7}
    assert answer.body["skipped"] == {"not_archived": 1}
    assert "expected_completion_before" in answer.body
    assert restore_posts(cos_emulator) == 0


def test_accepted_job_answers_202_then_its_progress_reads_through_the_status_route(
        bulk_webhook: Any, cos_emulator: RunningEmulator, sink: CollectingSink) -> None:
    keys = archive(cos_emulator, 12)
    answer = post(bulk_webhook.webhook, cos_job(job_id="job-http", selection={"prefix": "logs/"},
                                                limits={"chunk_size": 5}))
    assert answer.status == 202, answer.body
    body = answer.body
    assert (body["job_id"], body["dry_run"], body["objects"], body["chunks"]) == \
        ("job-http", False, 12, 3)
    root = f"cos://{REPORT_BUCKET}/reports/job-http"
    assert body["report"] == {"csv": f"{root}/report.csv", "jsonl": f"{root}/report.jsonl",
                              "summary": f"{root}/summary.json"}
    query = body["progress_query"]
    assert query == {"job_id": "job-http", "provider": "cos", "bucket": COS_BUCKET,
                     "region": COS_REGION,
                     "report": {"bucket": REPORT_BUCKET, "prefix": "reports"}}
    bulk_webhook.queue.join()
    assert {r["key"] for r in cos_emulator.emulator.restore_requests()} == set(keys)

    progress = post(bulk_webhook.webhook, query, path="/status")
    assert progress.status == 200, progress.body
    assert progress.headers["Cache-Control"] == "no-store"
    assert progress.body["state"] == "completed"
    assert progress.body["counts"] == {"initiated": 12}
    assert progress.body["objects_done"] == 12
    assert (progress.body["planned_objects"], progress.body["planned_chunks"],
            progress.body["chunks_done"]) == (12, 3, 3)
    assert progress.body["report"]["csv"] == f"{root}/report.csv"

    flat = {"job_id": "job-http", "provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION,
            "report_bucket": REPORT_BUCKET, "report_prefix": "reports"}
    by_get = get_status(bulk_webhook.webhook, flat)
    assert (by_get.status, by_get.body) == (200, progress.body)
    flat_post = post(bulk_webhook.webhook, flat, path="/status")
    assert (flat_post.status, flat_post.body) == (200, progress.body)
    assert [e.type for e in sink.events] == ["restorefn.bulk.job.v1.completed"]


def test_progress_while_running_and_of_an_unknown_job(bulk_webhook: Any) -> None:
    query = {"job_id": "job-never", "provider": "cos", "bucket": COS_BUCKET,
             "region": COS_REGION, "report": {"bucket": REPORT_BUCKET, "prefix": "reports"}}
    answer = post(bulk_webhook.webhook, query, path="/status")
    assert answer.status == 200
    assert answer.body == {"job_id": "job-never", "state": "unknown", "chunks_done": 0,
                           "counts": {}, "skipped": {}, "objects_done": 0}


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (cos_job(days=0, tier="Fast"), {"days", "tier"}),
        (cos_job(selection={"prefix": "a/", "objects": [{"key": "k"}]}), {"selection"}),
        (cos_job(surprise=1), {"surprise"}),
        (cos_job(limits={"chunk_size": 5000}), {"limits.chunk_size"}),
        # Checks that need the provider run on the whole job: their reason names the field.
        (cos_job(report=None), {"report (bucket, prefix) is required"}),
        (cos_job(bucket="Not_A_Bucket"), {"BucketName-APPID"}),
        (cos_job(days=None), {"days is required"}),
    ],
)
def test_invalid_job_is_422_with_the_field_list(
        bulk_webhook: Any, cos_emulator: RunningEmulator, sink: CollectingSink,
        job: dict[str, Any], expected: set[str]) -> None:
    job = {k: v for k, v in job.items() if v is not None}
    answer = post(bulk_webhook.webhook, job)
    assert answer.status == 422, answer.body
    error = answer.body["error"]
    assert error["code"] == "validation_failed"
    assert all(set(f) == {"loc", "field", "reason", "type"} for f in error["fields"])
    named = {f["field"] for f in error["fields"]}
    reasons = " ".join(f["reason"] for f in error["fields"])
    assert all(e in named or e in reasons for e in expected), error
    assert "Not_A_Bucket" not in json.dumps(error)  # values are never echoed
    assert restore_posts(cos_emulator) == 0
    assert sink.events == []


@pytest.mark.parametrize("where", ["bucket", "report"])
def test_bucket_outside_the_allowlist_is_403(bulk_webhook: Any, where: str) -> None:
    job = cos_job(selection={"prefix": "logs/"})
    if where == "bucket":
        job["bucket"] = "elsewhere-1250000000"
    else:
        job["report"] = {"bucket": "elsewhere-1250000000"}
    answer = post(bulk_webhook.webhook, job)
    assert answer.status == 403
    assert answer.body["error"]["code"] == "bucket_not_allowed"
    assert "elsewhere-1250000000" in answer.body["error"]["message"]


def test_a_job_without_a_chunk_queue_is_503_not_configured(
        queueless: WebhookHandler, cos_emulator: RunningEmulator) -> None:
    archive(cos_emulator, 2)
    answer = post(queueless, cos_job(selection={"prefix": "logs/"}))
    assert answer.status == 503
    assert answer.body["error"]["code"] == "not_configured"
    assert "RESTORE_BULK_QUEUE" in answer.body["error"]["message"]
    assert answer.headers["Retry-After"] == "30"
    assert restore_posts(cos_emulator) == 0


def test_unsigned_job_is_401_and_plans_nothing(bulk_webhook: Any,
                                              cos_emulator: RunningEmulator) -> None:
    archive(cos_emulator, 2)
    answer = post(bulk_webhook.webhook, cos_job(selection={"prefix": "logs/"}), sign=False)
    assert answer.status == 401
    unsigned_progress = bulk_webhook.webhook.handle(HttpRequest(
        "GET", {}, b"", path="/status", query={"job_id": "j", "provider": "cos"}))
    assert unsigned_progress.status == 401
    bulk_webhook.queue.join()
    assert restore_posts(cos_emulator) == 0


def test_provider_failures_while_planning_are_mapped_never_500(
        queueless: WebhookHandler, cos_emulator: RunningEmulator) -> None:
    missing = post(queueless, cos_job(bucket="archive-missing-1250000000", dry_run=True))
    assert missing.status == 404, missing.body
    assert missing.body["error"]["code"] == "not_found"
    assert missing.body["error"]["provider_code"] == "NoSuchBucket"

    cos_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_method="GET"))
    throttled = post(queueless, cos_job(dry_run=True))
    assert throttled.status == 503, throttled.body
    assert throttled.body["error"]["retryable"] is True
    assert throttled.headers["Retry-After"] == "30"

    progress = post(queueless, {"job_id": "job-x", "provider": "cos", "bucket": COS_BUCKET,
                                "region": COS_REGION, "report": {"bucket": REPORT_BUCKET}},
                    path="/status")
    assert progress.status == 503, progress.body
    assert progress.body["error"]["retryable"] is True


@pytest.mark.parametrize(
    ("query", "status", "field_or_code"),
    [
        ({"job_id": "j", "provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION},
         422, "report"),
        ({"job_id": "j", "provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION,
          "report_bucket": REPORT_BUCKET, "key": "k"}, 422, "key"),
        ({"job_id": "j", "bucket": COS_BUCKET, "report_bucket": REPORT_BUCKET}, 422,
         "provider"),
        ({"job_id": "j", "provider": "cos", "bucket": "elsewhere-1250000000",
          "region": COS_REGION, "report_bucket": REPORT_BUCKET}, 403, "bucket_not_allowed"),
    ],
)
def test_progress_query_errors(bulk_webhook: Any, query: dict[str, str], status: int,
                               field_or_code: str) -> None:
    answer = get_status(bulk_webhook.webhook, query)
    assert answer.status == status, answer.body
    error = answer.body["error"]
    if status == 422:
        assert field_or_code in {f["field"] for f in error["fields"]}
    else:
        assert error["code"] == field_or_code


# -- the Google entry point (functions-framework) ----------------------------------------------
@pytest.fixture
def google_client(monkeypatch: pytest.MonkeyPatch, cos_emulator: RunningEmulator,
                  gcs_emulator: RunningEmulator) -> Iterator[Any]:
    from tests.gcp.conftest import _SETTINGS_VARS, SOURCE, WEBHOOK_SECRET, _reset, function_env

    assert SECRET.get_secret_value() == WEBHOOK_SECRET
    for name in (*_SETTINGS_VARS, "RESTORE_BULK_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in function_env(cos_emulator.url, gcs_emulator.url).items():
        monkeypatch.setenv(name, value)
    _reset()
    try:
        yield functions_framework.create_app("restore_http", source=SOURCE).test_client()
    finally:
        _reset()


def test_google_entry_point_accepts_a_dry_run_job(google_client: Any,
                                                 cos_emulator: RunningEmulator) -> None:
    archive(cos_emulator, 4)
    body = json.dumps(cos_job(job_id="job-google", dry_run=True,
                              selection={"prefix": "logs/"})).encode()
    response = google_client.post("/", data=body, headers={
        "Content-Type": "application/json", **auth.sign(SECRET, body)})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["objects"] == 4
    assert response.get_json()["job_id"] == "job-google"

    live = json.dumps(cos_job(selection={"prefix": "logs/"})).encode()
    refused = google_client.post("/", data=live, headers={
        "Content-Type": "application/json", **auth.sign(SECRET, live)})
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "not_configured"

    query = {"job_id": "job-google", "provider": "cos", "bucket": COS_BUCKET,
             "region": COS_REGION, "report_bucket": REPORT_BUCKET}
    cos_emulator.emulator.create_bucket(REPORT_BUCKET)
    progress = google_client.get("/status?" + urlencode(query),
                                 headers=auth.sign_query(SECRET, query))
    assert progress.status_code == 200, progress.get_json()
    assert progress.get_json()["state"] == "unknown"
    assert restore_posts(cos_emulator) == 0
