"""restore_pubsub through functions-framework: structured and binary CloudEvents, raw push."""

from __future__ import annotations

import base64
import json

import pytest

from emulators._http import FaultPlan
from tests.conftest import COS_BUCKET, cos_request, gcs_request
from tests.gcp.conftest import golden, printed_events, soft_delete, statuses

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
SOURCE = "//pubsub.googleapis.com/projects/test-project/topics/restore-requests"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def binary_event(client, data: dict, *, event_type: str = PUBSUB_TYPE, event_id: str = "m-1"):
    headers = {
        "ce-specversion": "1.0", "ce-type": event_type, "ce-source": SOURCE, "ce-id": event_id,
        "Content-Type": "application/json",
    }
    return client.post("/", data=json.dumps(data), headers=headers)


def message(payload: bytes) -> dict:
    return {"message": {"data": b64(payload), "messageId": "m-1",
                        "publishTime": "2026-11-20T10:00:00Z"},
            "subscription": "projects/test-project/subscriptions/restore"}


def send(client, request_payload) -> object:
    return binary_event(client, message(json.dumps(request_payload).encode()))


def test_golden_structured_event_acks_and_publishes_completed(pubsub_client, gcs_emulator,
                                                             capsys):
    event = golden("gcp_pubsub_structured.json")
    request = json.loads(base64.b64decode(event["data"]["message"]["data"]))
    generation = soft_delete(gcs_emulator, request["object"])
    response = pubsub_client.post(
        "/", data=json.dumps(event), headers={"Content-Type": "application/cloudevents+json"}
    )
    assert response.status_code == 200
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["completed"]
    assert events[0]["data"]["request_id"] == "golden-pubsub-1"
    assert events[0]["data"]["generation"] == generation
    assert events[0]["data"]["context"] == {"ticket": "OPS-1"}


def test_golden_raw_push_body_is_converted_and_restored(pubsub_client, gcs_emulator, capsys):
    push = golden("gcp_pubsub_push.json")
    request = json.loads(base64.b64decode(push["message"]["data"]))
    soft_delete(gcs_emulator, request["object"])
    response = pubsub_client.post(
        "/", data=json.dumps(push), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["completed"]
    assert events[0]["data"]["request_id"] == "golden-push-1"


def test_binary_mode_event_with_a_cos_request_publishes_initiated(pubsub_client, cos_emulator,
                                                                  capsys):
    cos_emulator.emulator.put_object(COS_BUCKET, "q.bin", b"x", "ARCHIVE")
    response = send(pubsub_client, cos_request("q.bin"))
    assert response.status_code == 200
    assert statuses(printed_events(capsys.readouterr().out)) == ["initiated"]


def test_redelivery_of_a_done_gcs_restore_replays_without_a_second_restore_or_event(
    pubsub_client, gcs_emulator, capsys
):
    soft_delete(gcs_emulator, "twice.txt")
    first = send(pubsub_client, gcs_request("twice.txt", request_id="twice-1"))
    second = send(pubsub_client, gcs_request("twice.txt", request_id="twice-1"))
    assert (first.status_code, second.status_code) == (200, 200)
    assert statuses(printed_events(capsys.readouterr().out)) == ["completed"]
    restores = [e for e in gcs_emulator.log.entries() if e.path.endswith("/restore")]
    assert len(restores) == 1


@pytest.mark.parametrize(
    ("data", "field", "type_"),
    [
        ({"message": {"data": "***not base64***", "messageId": "m-1"}}, "message.data",
         "base64_invalid"),
        ({"message": {"messageId": "m-1", "attributes": {"a": "b"}}}, "message.data", "missing"),
        (message(b"{not json"), "(body)", "json_invalid"),
        (message(b"\xff\xfe\x00garbage"), "(body)", "utf8_invalid"),
    ],
)
def test_unreadable_message_acks_and_publishes_a_rejection(pubsub_client, capsys, data, field,
                                                            type_):
    response = binary_event(pubsub_client, data)
    assert 200 <= response.status_code < 300
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["rejected"]
    error = events[0]["data"]["error"]
    assert error["code"] == "validation_failed"
    assert [(f["field"], f["type"]) for f in error["fields"]] == [(field, type_)]


def test_invalid_request_acks_and_publishes_a_rejection_with_the_request_id(pubsub_client,
                                                                            capsys):
    response = send(pubsub_client, {"provider": "cos", "request_id": "bad-1", "days": 0})
    assert response.status_code == 200
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["rejected"]
    assert events[0]["data"]["request_id"] == "bad-1"
    assert "days" in {f["field"] for f in events[0]["data"]["error"]["fields"]}


def test_bucket_not_allowed_is_acked_and_rejected(pubsub_client, capsys):
    response = send(pubsub_client, {"provider": "gcs", "bucket": "elsewhere", "object": "o"})
    assert response.status_code == 200
    events = printed_events(capsys.readouterr().out)
    assert [e["data"]["error"]["code"] for e in events] == ["bucket_not_allowed"]


def test_event_of_another_type_is_acked_and_rejected(pubsub_client, capsys):
    response = binary_event(pubsub_client, {"bucket": "b", "name": "n"},
                            event_type="google.cloud.storage.object.v1.finalized")
    assert response.status_code == 200
    captured = capsys.readouterr()
    events = printed_events(captured.out)
    assert statuses(events) == ["rejected"]
    assert events[0]["data"]["error"]["fields"][0]["field"] == "type"
    assert "google.cloud.storage.object.v1.finalized" in captured.err


def test_retryable_failure_fails_the_invocation_and_publishes_nothing(pubsub_client,
                                                                      gcs_emulator, capsys):
    soft_delete(gcs_emulator, "flaky.txt")
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_path="/restore?"))
    response = send(pubsub_client, gcs_request("flaky.txt"))
    assert response.status_code == 500
    assert printed_events(capsys.readouterr().out) == []


def test_batch_publishes_the_done_items_and_asks_for_redelivery_of_the_rest(
    pubsub_client, gcs_emulator, capsys
):
    soft_delete(gcs_emulator, "ok.txt")
    soft_delete(gcs_emulator, "flaky.txt")
    gcs_emulator.faults.set(
        FaultPlan(error_rate=1.0, error_status=503, match_path="flaky.txt/restore?")
    )
    batch = {"requests": [gcs_request("flaky.txt"), gcs_request("ok.txt"), {"provider": "gcs"}]}
    response = send(pubsub_client, batch)
    assert response.status_code == 500
    assert statuses(printed_events(capsys.readouterr().out)) == ["completed", "rejected"]


def test_configuration_error_fails_the_invocation_and_is_logged(pubsub_client, monkeypatch,
                                                                capsys):
    monkeypatch.setenv("RESTORE_EVENT_SINK", "http")
    response = send(pubsub_client, gcs_request())
    assert response.status_code == 500
    captured = capsys.readouterr()
    assert printed_events(captured.out) == []
    logged = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert any("RESTORE_EVENT_HTTP_URL" in e.get("error", "") for e in logged)
