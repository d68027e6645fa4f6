"""API Gateway trigger: the webhook contract answered as an integration response."""

from __future__ import annotations

import base64
import json

import pytest

from emulators._http import FaultPlan
from shared import auth
from shared.webhook import MAX_BODY_BYTES, WebhookHandler
from tests.conftest import COS_BUCKET, COS_REGION, cos_request, gcs_request
from tests.tencent.conftest import (
    WEBHOOK_SECRET,
    apigw_post,
    golden,
    logged,
    printed_events,
    signed,
    soft_delete,
    statuses,
)

INTEGRATION_KEYS = {"isBase64Encoded", "statusCode", "headers", "body"}


def answer_of(response: dict) -> tuple[int, dict]:
    """Check the integration response's exact shape; return its status and decoded body."""
    assert set(response) == INTEGRATION_KEYS
    assert response["isBase64Encoded"] is False
    assert isinstance(response["statusCode"], int)
    assert isinstance(response["body"], str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in response["headers"].items())
    assert response["headers"]["Content-Type"] == "application/json"
    json.dumps(response)  # the whole response is JSON-serialisable as SCF returns it
    return response["statusCode"], json.loads(response["body"])


def test_golden_post_restores_and_answers_202(scf, cos_emulator, capsys):
    event = golden("scf_apigw_post.json")
    cos_emulator.emulator.put_object(COS_BUCKET, "golden/apigw.bin", b"x", "ARCHIVE")
    signed(event, event["body"].encode())
    status, body = answer_of(scf.main_handler(event, {"request_id": "inv-1"}))
    assert status == 202
    assert body["outcome"]["status"] == "initiated"
    assert body["outcome"]["request_id"] == "golden-apigw-1"
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["initiated"]
    assert events[0]["id"] == body["event_id"]
    assert events[0]["data"]["context"] == {"ticket": "OPS-7"}


def test_golden_base64_post_is_decoded_and_answers_200(scf, gcs_emulator, capsys):
    event = golden("scf_apigw_post_base64.json")
    raw = base64.b64decode(event["body"])
    generation = soft_delete(gcs_emulator, json.loads(raw)["object"])
    signed(event, raw)  # the signature covers the decoded bytes
    status, body = answer_of(scf.main_handler(event, None))
    assert status == 200
    assert body["outcome"]["status"] == "completed"
    assert body["outcome"]["generation"] == generation
    assert statuses(printed_events(capsys.readouterr().out)) == ["completed"]


def test_base64_and_plain_bodies_answer_alike(scf, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "a.bin", b"x", "ARCHIVE")
    cos_emulator.emulator.put_object(COS_BUCKET, "b.bin", b"x", "ARCHIVE")
    plain = answer_of(scf.main_handler(apigw_post(cos_request("a.bin"))))
    encoded = answer_of(scf.main_handler(apigw_post(cos_request("b.bin"), b64=True)))
    assert plain[0] == encoded[0] == 202
    assert plain[1]["outcome"]["key"] == "a.bin"
    assert encoded[1]["outcome"]["key"] == "b.bin"


def test_golden_get_without_body_is_405_json(scf, cos_emulator, capsys):
    event = golden("scf_apigw_get.json")
    assert "body" not in event
    response = scf.main_handler(event, None)
    status, body = answer_of(response)
    assert status == 405
    assert body["error"]["code"] == "method_not_allowed"
    assert response["headers"]["Allow"] == "POST"
    assert printed_events(capsys.readouterr().out) == []
    assert cos_emulator.log.entries() == []


def test_bad_base64_is_400_and_touches_nothing(scf, cos_emulator, capsys):
    event = apigw_post(cos_request())
    event["body"] = "***not base64***"
    event["isBase64Encoded"] = True
    status, body = answer_of(scf.main_handler(event, None))
    assert status == 400
    assert body["error"]["code"] == "base64_invalid"
    assert printed_events(capsys.readouterr().out) == []
    assert cos_emulator.log.entries() == []


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"sign": False}, 401, "unauthenticated"),
        ({"content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"raw": b"{not json"}, 400, "invalid_json"),
        ({"raw": b"\xff\xfe garbage", "b64": True}, 400, "invalid_json"),
        ({"raw": b"x" * (MAX_BODY_BYTES + 1)}, 413, "body_too_large"),
    ],
)
def test_transport_errors_are_structured_json(scf, capsys, kwargs, status, code):
    response = scf.main_handler(apigw_post(gcs_request(), **kwargs), None)
    got_status, body = answer_of(response)
    assert (got_status, body["error"]["code"]) == (status, code)
    assert printed_events(capsys.readouterr().out) == []


def test_tampered_signature_is_401(scf):
    event = apigw_post(gcs_request())
    event["body"] = event["body"].replace("reports", "secrets")
    status, body = answer_of(scf.main_handler(event, None))
    assert (status, body["error"]["code"]) == (401, "unauthenticated")


def test_validation_failure_is_422_with_fields_and_no_event(scf, capsys):
    response = scf.main_handler(apigw_post({"provider": "cos", "bucket": "bad", "days": 0}))
    status, body = answer_of(response)
    assert status == 422
    assert {"bucket", "days", "region", "key"} <= {f["field"] for f in body["error"]["fields"]}
    assert printed_events(capsys.readouterr().out) == []


def test_bucket_not_allowed_is_403_and_published(scf, capsys):
    payload = {"provider": "gcs", "bucket": "elsewhere", "object": "o"}
    status, body = answer_of(scf.main_handler(apigw_post(payload)))
    assert (status, body["error"]["code"]) == (403, "bucket_not_allowed")
    events = printed_events(capsys.readouterr().out)
    assert [e["data"]["error"]["code"] for e in events] == ["bucket_not_allowed"]


def test_retryable_provider_failure_is_503_with_retry_after(scf, gcs_emulator):
    soft_delete(gcs_emulator, "x.txt")
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_path="/restore?"))
    response = scf.main_handler(apigw_post(gcs_request("x.txt")))
    status, body = answer_of(response)
    assert status == 503
    assert int(response["headers"]["Retry-After"]) > 0
    assert body["error"]["retryable"] is True


def test_mixed_batch_is_207_with_per_item_statuses(scf, gcs_emulator):
    soft_delete(gcs_emulator, "one.txt")
    batch = {"requests": [gcs_request("one.txt"), {"provider": "gcs"}]}
    status, body = answer_of(scf.main_handler(apigw_post(batch)))
    assert status == 207
    assert [r["status"] for r in body["results"]] == [200, 422]


def test_configuration_error_is_json_503_and_logged(scf, monkeypatch, capsys):
    monkeypatch.setenv("RESTORE_MAX_ATTEMPTS", "not-a-number")
    response = scf.main_handler(apigw_post(gcs_request()))
    status, body = answer_of(response)
    assert (status, body["error"]["code"]) == (503, "not_configured")
    assert "Retry-After" in response["headers"]
    entries = logged(capsys.readouterr().err)
    assert any(e["severity"] == "ERROR" and "max_attempts" in e["error"] for e in entries)


def test_unexpected_exception_is_generic_500_logged_without_secrets(scf, monkeypatch, capsys):
    def boom(self, request):
        raise RuntimeError(f"leaky detail {WEBHOOK_SECRET}")

    monkeypatch.setattr(WebhookHandler, "handle", boom)
    status, body = answer_of(scf.main_handler(apigw_post(gcs_request())))
    assert (status, body["error"]["code"]) == (500, "internal_error")
    captured = capsys.readouterr()
    assert '"error_type": "RuntimeError"' in captured.err
    assert WEBHOOK_SECRET not in captured.err + captured.out + json.dumps(body)


def test_service_is_built_once_and_reused(scf, gcs_emulator):
    soft_delete(gcs_emulator, "a.txt")
    soft_delete(gcs_emulator, "b.txt")
    assert answer_of(scf.main_handler(apigw_post(gcs_request("a.txt"))))[0] == 200
    first = scf.get_service()
    assert answer_of(scf.main_handler(apigw_post(gcs_request("b.txt"))))[0] == 200
    assert scf.get_service() is first


def test_get_status_route_receives_path_and_query(scf, cos_emulator, capsys):
    cos_emulator.emulator.put_object(COS_BUCKET, "asked.bin", b"x", "ARCHIVE")
    event = golden("scf_apigw_get.json")
    event["path"] = "/restore/status"
    event["queryString"] = {
        "provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION,
        "key": ["asked.bin", "ignored.bin"],  # a repeated parameter: the first value counts
    }
    # A GET signs its query in canonical form: the values the function acts on (first ones).
    signed(event, auth.canonical_query({"provider": "cos", "bucket": COS_BUCKET,
                                        "region": COS_REGION, "key": "asked.bin"}))
    status, body = answer_of(scf.main_handler(event, None))
    assert status == 200
    assert (body["state"], body["key"]) == ("archived", "asked.bin")
    assert printed_events(capsys.readouterr().out) == []  # the status route publishes nothing
