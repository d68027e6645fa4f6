"""The status route of the webhook: the framework-neutral contract, then as Google serves it
(functions-framework test client, configured from the environment like a deployment)."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from emulators._http import FaultPlan
from shared import auth
from shared.retry import RetryPolicy
from shared.service import RestoreService
from shared.webhook import HttpRequest, WebhookHandler, is_status_path
from tests.conftest import COS_BUCKET, GCS_BUCKET, cos_request, make_settings
from tests.gcp.conftest import WEBHOOK_SECRET, printed_events
from tests.status.conftest import cos_query, gcs_query

SECRET = SecretStr(WEBHOOK_SECRET)


@pytest.fixture
def handler(cos_emulator, gcs_emulator, sink):
    settings = make_settings(cos_emulator, gcs_emulator, webhook_secrets=(SECRET,))
    return WebhookHandler(
        RestoreService(settings, sink=sink, retry=RetryPolicy.from_settings(settings))
    )


def get(handler, query, *, path="/status", sign=True, headers=None):
    sent = dict(headers or {})
    if sign:
        sent.update(auth.sign_query(SECRET, query or {}))
    return handler.handle(HttpRequest("GET", sent, b"", path=path, query=query))


def post(handler, payload, *, path="/status", sign=True):
    body = json.dumps(payload).encode()
    sent = {"Content-Type": "application/json"}
    if sign:
        sent.update(auth.sign(SECRET, body))
    return handler.handle(HttpRequest("POST", sent, body, path=path))


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/status", True), ("/status/", True), ("/restore_http/status", True),
     ("/release/restore/status", True), ("/", False), ("", False), ("/statuses", False),
     ("/status/x", False)],
)
def test_status_paths(path, expected):
    assert is_status_path(path) is expected


def test_signed_get_answers_200_with_the_object_status(handler, sink, gcs_emulator):
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, "a.txt", b"a")
    answer = get(handler, {"bucket": GCS_BUCKET, "object": "a.txt"})
    assert answer.status == 200
    assert answer.body["state"] == "live"
    assert answer.body["live_generation"] == generation
    assert answer.body["provider"] == "gcs"
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "error" not in answer.body
    assert sink.events == []


def test_get_with_a_query_on_the_root_path_is_a_status_request(handler, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    answer = get(handler, cos_query("k.bin"), path="/")
    assert (answer.status, answer.body["state"]) == (200, "archived")
    assert answer.body["storage_class"] == "ARCHIVE"


def test_post_to_status_with_a_json_body(handler, sink, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "STANDARD")
    answer = post(handler, cos_query("k.bin"))
    assert (answer.status, answer.body["state"]) == (200, "not_archived")
    assert cos_emulator.emulator.restore_requests() == []  # not a restore
    assert sink.events == []


def test_post_elsewhere_is_still_a_restore(handler, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    answer = post(handler, cos_request("k.bin"), path="/")
    assert answer.status == 202
    assert answer.body["outcome"]["status"] == "initiated"


def test_not_found_is_a_200_state(handler, cos_emulator):
    answer = get(handler, cos_query("missing.bin"))
    assert answer.status == 200
    assert answer.body["state"] == "not_found"


def test_previous_expiry_travels_in_the_query_string(handler, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    answer = get(handler, cos_query("k.bin", previous_expiry="2020-01-01T00:00:00Z"))
    assert (answer.status, answer.body["state"]) == (200, "restore_expired")
    assert answer.body["expiry_time"] == "2020-01-01T00:00:00Z"


def test_unsigned_get_is_401_without_a_provider_call(handler, gcs_emulator):
    answer = get(handler, gcs_query("a.txt"), sign=False)
    assert answer.status == 401
    assert answer.body["error"]["code"] == "unauthenticated"
    assert gcs_emulator.log.entries() == []


def test_get_signed_over_a_different_body_is_401(handler):
    headers = auth.sign(SECRET, b'{"provider": "gcs"}')
    answer = get(handler, gcs_query("a.txt"), sign=False, headers=headers)
    assert answer.status == 401


def test_stale_signature_is_401(handler):
    headers = auth.sign(SECRET, b"", timestamp=1_000_000_000)
    answer = get(handler, gcs_query("a.txt"), sign=False, headers=headers)
    assert answer.status == 401


def test_bad_query_is_422_with_field_errors(handler):
    answer = get(handler, {"provider": "cos", "bucket": "nope", "key": "k", "days": "1"})
    assert answer.status == 422
    error = answer.body["error"]
    assert error["code"] == "validation_failed"
    assert {f["field"]: f["type"] for f in error["fields"]} == {
        "bucket": "value_error", "region": "missing", "days": "extra_forbidden"
    }
    assert answer.body["state"] == "unknown"


def test_bucket_not_allowed_is_403(handler):
    answer = get(handler, gcs_query(bucket="elsewhere"))
    assert answer.status == 403
    assert answer.body["error"]["code"] == "bucket_not_allowed"


def test_retryable_provider_failure_is_503_with_retry_after(handler, gcs_emulator):
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_path="/o"))
    answer = get(handler, gcs_query("a.txt"))
    assert answer.status == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.body["error"]["retryable"] is True
    assert answer.body["attempts"] == 3


def test_provider_refusing_our_credentials_is_502(handler, cos_emulator):
    cos_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=403))
    answer = get(handler, cos_query("k.bin"))
    assert answer.status == 502
    assert answer.body["error"]["code"] == "access_denied"


def test_other_methods_on_the_status_path_are_405_get_post(handler):
    answer = handler.handle(HttpRequest("PUT", {}, b"", path="/status"))
    assert answer.status == 405
    assert answer.headers["Allow"] == "GET, POST"


def test_bare_get_without_a_query_stays_405(handler):
    answer = handler.handle(HttpRequest("GET", {}, b"", path="/"))
    assert answer.status == 405
    assert answer.headers["Allow"] == "POST"


def test_iam_mode_needs_no_signature(cos_emulator, gcs_emulator, sink):
    settings = make_settings(cos_emulator, gcs_emulator, webhook_auth="iam")
    handler = WebhookHandler(RestoreService(settings, sink=sink))
    gcs_emulator.emulator.put_object(GCS_BUCKET, "a.txt", b"a")
    answer = get(handler, gcs_query("a.txt"), sign=False)
    assert (answer.status, answer.body["state"]) == (200, "live")


def test_http_request_stays_positional_for_existing_callers():
    request = HttpRequest("POST", {"Content-Type": "application/json"}, b"{}")
    assert (request.path, dict(request.query)) == ("/", {})


# -- as Google serves it -------------------------------------------------------------------------
def signed_get(client, path, query, *, sign=True):
    headers = auth.sign_query(SECRET, query) if sign else {}
    return client.get(path, query_string=query, headers=headers)


def test_google_function_signed_get_status(http_client, gcs_emulator, capsys):
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, "reports/q 3.csv", b"q3")
    gcs_emulator.emulator.delete_object(GCS_BUCKET, "reports/q 3.csv")
    response = signed_get(
        http_client, "/status", {"provider": "gcs", "bucket": GCS_BUCKET,
                                 "object": "reports/q 3.csv"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["state"] == "soft_deleted"
    assert body["key"] == "reports/q 3.csv"
    assert [g["generation"] for g in body["soft_deleted_generations"]] == [generation]
    assert body["soft_deleted_generations"][0]["hard_delete_time"].endswith("Z")
    assert printed_events(capsys.readouterr().out) == []  # nothing published


def test_google_function_get_on_the_root_path(http_client, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "DEEP_ARCHIVE")
    response = signed_get(http_client, "/", cos_query("k.bin"))
    assert response.status_code == 200
    assert response.get_json()["state"] == "archived"


def test_google_function_unsigned_get_is_401(http_client, gcs_emulator):
    response = signed_get(http_client, "/status", gcs_query("a.txt"), sign=False)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"
    assert gcs_emulator.log.entries() == []


def test_google_function_bad_query_is_422(http_client):
    response = signed_get(http_client, "/status", {"provider": "gcs", "bucket": GCS_BUCKET})
    assert response.status_code == 422
    assert [f["field"] for f in response.get_json()["error"]["fields"]] == ["object"]


def test_google_function_post_status_json(http_client, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    body = json.dumps(cos_query("k.bin")).encode()
    headers = {"Content-Type": "application/json", **auth.sign(SECRET, body)}
    response = http_client.post("/status", data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["state"] == "archived"
    assert cos_emulator.emulator.restore_requests() == []
