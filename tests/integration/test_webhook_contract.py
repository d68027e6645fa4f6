"""The framework-neutral webhook contract both platforms wrap: auth, limits, status codes."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from emulators._http import FaultPlan
from shared import auth
from shared.retry import RetryPolicy
from shared.service import RestoreService
from shared.webhook import MAX_BODY_BYTES, HttpRequest, WebhookHandler
from tests.conftest import COS_BUCKET, GCS_BUCKET, cos_request, gcs_request, make_settings

SECRET = SecretStr("webhook-test-secret")


@pytest.fixture
def handler(cos_emulator, gcs_emulator, sink):
    settings = make_settings(cos_emulator, gcs_emulator, webhook_secrets=(SECRET,))
    service = RestoreService(settings, sink=sink, retry=RetryPolicy.from_settings(settings))
    return WebhookHandler(service)


def post(handler, payload, *, sign=True, content_type="application/json", raw=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": content_type}
    if sign:
        headers.update(auth.sign(SECRET, body))
    return handler.handle(HttpRequest("POST", headers, body))


def soft_delete(gcs_emulator, name):
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, name, b"bytes")
    gcs_emulator.emulator.delete_object(GCS_BUCKET, name)
    return generation


def test_gcs_restore_answers_200_with_outcome_and_event_id(handler, sink, gcs_emulator):
    soft_delete(gcs_emulator, "a.txt")
    answer = post(handler, gcs_request("a.txt"))
    assert answer.status == 200
    assert answer.body["outcome"]["status"] == "completed"
    assert answer.body["event_id"] == sink.events[0].id


def test_cos_restore_answers_202_then_202_in_progress(handler, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k", b"x", "ARCHIVE")
    first = post(handler, cos_request("k"))
    second = post(handler, cos_request("k"))
    assert (first.status, second.status) == (202, 202)
    assert second.body["outcome"]["status"] == "in_progress"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"sign": False}, 401, "unauthenticated"),
        ({"content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"raw": b"{not json"}, 400, "invalid_json"),
        ({"raw": b"x" * (MAX_BODY_BYTES + 1)}, 413, "body_too_large"),
    ],
)
def test_transport_errors_are_json_4xx(handler, sink, kwargs, status, code):
    answer = post(handler, gcs_request(), **kwargs)
    assert answer.status == status
    assert answer.body["error"]["code"] == code
    assert answer.headers["Content-Type"] == "application/json"
    assert sink.events == []


def test_validation_failure_is_422_with_the_field_list_and_no_event(handler, sink):
    answer = post(handler, {"provider": "cos", "bucket": "bad", "days": 0})
    assert answer.status == 422
    fields = {f["field"] for f in answer.body["error"]["fields"]}
    assert {"bucket", "days", "region", "key"} <= fields
    assert sink.events == []


@pytest.mark.parametrize(
    ("setup", "payload", "status"),
    [
        (None, {"provider": "gcs", "bucket": "elsewhere", "object": "o"}, 403),
        (None, gcs_request("never-deleted.txt"), 404),
        ("conflict", gcs_request("busy.txt"), 409),
    ],
)
def test_outcome_status_codes(handler, gcs_emulator, setup, payload, status):
    if setup == "conflict":
        soft_delete(gcs_emulator, "busy.txt")
        gcs_emulator.emulator.put_object(GCS_BUCKET, "busy.txt", b"different")
    assert post(handler, payload).status == status


def test_retryable_failure_is_503_with_retry_after(handler, gcs_emulator):
    soft_delete(gcs_emulator, "x.txt")
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_path="/restore?"))
    answer = post(handler, gcs_request("x.txt"))
    assert answer.status == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.body["error"]["retryable"] is True


def test_a_retryable_failure_publishes_nothing_and_the_retry_publishes_once(
    handler, sink, gcs_emulator
):
    # The caller is told 503 and retries; an event (and its callback) for the failure would
    # tell a workflow waiting on the callback that the restore failed while it succeeds.
    soft_delete(gcs_emulator, "x.txt")
    gcs_emulator.faults.set(FaultPlan(match_path="/restore?", script=[503, 503, 503]))
    request = gcs_request("x.txt", request_id="retried-1")
    assert post(handler, request).status == 503
    assert sink.events == []
    assert post(handler, request).status == 200
    assert [event.data.outcome.value for event in sink.events] == ["completed"]


def test_batch_reports_per_item_outcomes_and_a_mixed_overall_status(handler, gcs_emulator):
    soft_delete(gcs_emulator, "one.txt")
    answer = post(handler, {"requests": [gcs_request("one.txt"), {"provider": "gcs"}]})
    assert answer.status == 207
    assert [r["status"] for r in answer.body["results"]] == [200, 422]
    assert answer.body["counts"] == {"completed": 1, "rejected": 1}


def test_unconfigured_authentication_refuses_everything(cos_emulator, gcs_emulator, sink):
    handler = WebhookHandler(RestoreService(make_settings(cos_emulator, gcs_emulator), sink=sink))
    answer = post(handler, gcs_request(), sign=False)
    assert answer.status == 503
    assert "RESTORE_WEBHOOK_SECRETS" in answer.body["error"]["message"]
    assert gcs_emulator.log.entries() == []


def test_get_is_405(handler):
    answer = handler.handle(HttpRequest("GET", {}, b""))
    assert answer.status == 405
    assert answer.headers["Allow"] == "POST"
