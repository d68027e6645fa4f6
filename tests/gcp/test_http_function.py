"""restore_http through functions-framework: the webhook contract as Google serves it."""

from __future__ import annotations

import io
import json

import pytest
from pydantic import SecretStr

from emulators._http import FaultPlan
from shared import auth
from shared.webhook import MAX_BODY_BYTES, WebhookHandler
from tests.conftest import COS_BUCKET, GCS_BUCKET, cos_request, gcs_request
from tests.gcp.conftest import WEBHOOK_SECRET, golden, printed_events, soft_delete, statuses

SECRET = SecretStr(WEBHOOK_SECRET)


def post(client, payload=None, *, raw=None, sign=True, content_type="application/json",
         headers=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    sent = {"Content-Type": content_type, **(headers or {})}
    if sign:
        sent.update(auth.sign(SECRET, body))
    return client.post("/", data=body, headers=sent)


def error_code(response) -> str:
    assert response.headers["Content-Type"] == "application/json"
    return response.get_json()["error"]["code"]


def test_golden_gcs_request_answers_200_and_publishes_completed(http_client, gcs_emulator,
                                                                 capsys):
    payload = golden("gcp_webhook_gcs.json")
    generation = soft_delete(gcs_emulator, payload["object"])
    response = post(http_client, payload)
    assert response.status_code == 200
    body = response.get_json()
    assert body["outcome"]["status"] == "completed"
    assert body["outcome"]["generation"] == generation
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["completed"]
    assert events[0]["id"] == body["event_id"]
    assert events[0]["data"]["context"] == {"ticket": "OPS-2"}


def test_cos_request_answers_202_initiated(http_client, cos_emulator, capsys):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    response = post(http_client, cos_request("k.bin"))
    assert response.status_code == 202
    assert response.get_json()["outcome"]["status"] == "initiated"
    assert statuses(printed_events(capsys.readouterr().out)) == ["initiated"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"sign": False}, 401, "unauthenticated"),
        ({"content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"raw": b"{not json"}, 400, "invalid_json"),
        ({"raw": b"x" * (MAX_BODY_BYTES + 1)}, 413, "body_too_large"),
    ],
)
def test_transport_errors_are_json(http_client, capsys, kwargs, status, code):
    response = post(http_client, gcs_request(), **kwargs)
    assert response.status_code == status
    assert error_code(response) == code
    assert printed_events(capsys.readouterr().out) == []


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readinto(self, buffer):
        count = super().readinto(buffer)
        self.bytes_read += count
        return count


def test_content_length_is_checked_before_the_body_is_read(http_client, monkeypatch):
    import main  # the module functions-framework loaded from functions/gcp/main.py

    stream = CountingStream(b"x" * (MAX_BODY_BYTES + 1))
    read_when_answered = []
    respond = main._respond

    def spy(answer):
        read_when_answered.append(stream.bytes_read)
        return respond(answer)

    monkeypatch.setattr(main, "_respond", spy)
    response = http_client.post(
        "/", headers={"Content-Type": "application/json"},
        environ_overrides={"CONTENT_LENGTH": str(MAX_BODY_BYTES + 1), "wsgi.input": stream},
    )
    assert response.status_code == 413
    assert error_code(response) == "body_too_large"
    assert read_when_answered == [0]


def test_get_is_405_json(http_client):
    response = http_client.get("/")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert error_code(response) == "method_not_allowed"


def test_validation_failure_is_422_with_fields_and_no_event(http_client, capsys):
    response = post(http_client, {"provider": "cos", "bucket": "bad", "days": 0})
    assert response.status_code == 422
    fields = {f["field"] for f in response.get_json()["error"]["fields"]}
    assert {"bucket", "days", "region", "key"} <= fields
    assert printed_events(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    ("setup", "payload", "status", "code"),
    [
        (None, {"provider": "gcs", "bucket": "elsewhere", "object": "o"}, 403,
         "bucket_not_allowed"),
        (None, gcs_request("never-deleted.txt"), 404, "not_found"),
        ("conflict", gcs_request("busy.txt"), 409, "conflict"),
    ],
)
def test_outcome_status_codes(http_client, gcs_emulator, capsys, setup, payload, status, code):
    if setup == "conflict":
        soft_delete(gcs_emulator, "busy.txt")
        gcs_emulator.emulator.put_object(GCS_BUCKET, "busy.txt", b"different")
    response = post(http_client, payload)
    assert response.status_code == status
    assert error_code(response) == code
    events = printed_events(capsys.readouterr().out)
    assert [e["data"]["error"]["code"] for e in events] == [code]


def test_retryable_provider_failure_is_503_with_retry_after(http_client, gcs_emulator):
    soft_delete(gcs_emulator, "x.txt")
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_path="/restore?"))
    response = post(http_client, gcs_request("x.txt"))
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["error"]["retryable"] is True


def test_golden_batch_reports_each_item(http_client, gcs_emulator, cos_emulator, capsys):
    payload = golden("gcp_webhook_batch.json")
    soft_delete(gcs_emulator, "golden/batch.txt")
    cos_emulator.emulator.put_object(COS_BUCKET, "golden/batch.bin", b"x", "ARCHIVE")
    response = post(http_client, payload)
    assert response.status_code == 202  # one completed, one initiated
    body = response.get_json()
    assert [r["status"] for r in body["results"]] == [200, 202]
    assert body["counts"] == {"completed": 1, "initiated": 1}
    assert sorted(statuses(printed_events(capsys.readouterr().out))) == ["completed", "initiated"]


def test_mixed_batch_is_207(http_client, gcs_emulator):
    soft_delete(gcs_emulator, "one.txt")
    response = post(http_client, {"requests": [gcs_request("one.txt"), {"provider": "gcs"}]})
    assert response.status_code == 207
    assert [r["status"] for r in response.get_json()["results"]] == [200, 422]


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [("RESTORE_EVENT_SINK", "http", "RESTORE_EVENT_HTTP_URL"),
     ("RESTORE_MAX_ATTEMPTS", "not-a-number", "max_attempts")],
)
def test_configuration_error_is_json_503_and_logged(http_client, monkeypatch, capsys, name,
                                                    value, named):
    monkeypatch.setenv(name, value)
    response = post(http_client, gcs_request())
    assert response.status_code == 503
    assert error_code(response) == "not_configured"
    assert "Retry-After" in response.headers
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()
              if line.startswith("{")]
    assert any(e["severity"] == "ERROR" and named in e["error"] for e in logged)


def test_unauthenticated_webhook_is_503_when_no_secret_is_configured(http_client, monkeypatch):
    monkeypatch.delenv("RESTORE_WEBHOOK_SECRETS")
    response = post(http_client, gcs_request(), sign=False)
    assert response.status_code == 503
    assert "RESTORE_WEBHOOK_SECRETS" in response.get_json()["error"]["message"]


def test_unexpected_exception_is_generic_json_500_logged_without_secrets(
    http_client, monkeypatch, capsys
):
    def boom(self, request):
        raise RuntimeError(f"leaky detail {WEBHOOK_SECRET}")

    monkeypatch.setattr(WebhookHandler, "handle", boom)
    response = post(http_client, gcs_request())
    assert response.status_code == 500
    assert error_code(response) == "internal_error"
    assert WEBHOOK_SECRET not in response.get_data(as_text=True)
    captured = capsys.readouterr()
    assert '"error_type": "RuntimeError"' in captured.err
    assert WEBHOOK_SECRET not in captured.err + captured.out


def test_service_is_built_once_and_reused(http_client, gcs_emulator):
    import main  # the module functions-framework loaded from functions/gcp/main.py

    soft_delete(gcs_emulator, "a.txt")
    soft_delete(gcs_emulator, "b.txt")
    assert post(http_client, gcs_request("a.txt")).status_code == 200
    first = main.get_service()
    assert post(http_client, gcs_request("b.txt")).status_code == 200
    assert main.get_service() is first
