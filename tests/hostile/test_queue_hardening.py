"""Regression tests for bugs the hostile-input fuzzing found: messages that made a queue entry
point raise (a redelivery loop: Pub/Sub and Cloud Tasks retry it for days) or made the webhook
answer 500. Each asks for what the documented contract says: an unusable message is acked once
with a ``rejected`` event naming the field, a re-check task that cannot succeed is a 422.

- deep nesting and NaN/Infinity in a queue message (``shared.queue.process_message`` parsed
  with ``json.loads``: a RecursionError escaped, NaN became a restore with ``null`` in it);
- a bulk job whose listing fails for good (``_process_bulk`` let the SDK's exception escape);
- a re-check task without a usable ``request_id`` (``RecheckMessage`` raised KeyError);
- a context nested deeper than allowed (``rejected_for_validation`` copied it into a rejection
  pydantic could not serialize).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from pydantic import SecretStr

from emulators._http import FaultPlan
from shared import auth, task_auth
from shared.schemas import MAX_CONTEXT_DEPTH
from tests.conftest import COS_BUCKET
from tests.gcp.conftest import WEBHOOK_SECRET
from tests.hostile.contract import check_error, check_event, check_webhook_answer
from tests.hostile.strategies import (
    DEEP_BUT_PARSEABLE,
    bulk_job,
    cos_request,
    nested_context,
    recheck_message,
)

SECRET = SecretStr(WEBHOOK_SECRET)


def publish(client: Any, payload: bytes) -> Any:
    """A new Pub/Sub message each time (its own messageId, as Pub/Sub gives each message): a
    message id repeated would be a redelivery, whose rejection is not published again."""
    message_id = f"hard-{uuid.uuid4().hex[:12]}"
    envelope = {"message": {"data": base64.b64encode(payload).decode(), "messageId": message_id},
                "subscription": "projects/p/subscriptions/s"}
    return client.post("/", data=json.dumps(envelope),
                       headers={"Content-Type": "application/json"})


def rejections(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The one event a message refused whole must publish: its error, checked."""
    for event in events:
        check_event(event)
    assert [e["data"]["outcome"] for e in events] == ["rejected"], events
    error = events[0]["data"]["error"]
    check_error(error)
    return list(error["fields"])


@pytest.mark.parametrize("payload", [
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
], ids=["deep-array", "deep-object"])
def test_a_deeply_nested_message_is_acked_and_rejected(gcp, event_file, payload):
    event_file.new()
    response = publish(gcp.pubsub, payload)
    assert response.status_code == 200, response.data  # was a 500: RecursionError, redelivered
    fields = rejections(event_file.new())
    assert fields[0]["loc"][:2] in (["message", "data"], []), fields
    assert fields[0]["type"] == "json_invalid"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_non_json_constant_in_a_message_is_rejected_not_restored(gcp, event_file, constant):
    event_file.new()
    request = json.dumps(cos_request())[:-1] + f', "context": {{"n": {constant}}}}}'
    response = publish(gcp.pubsub, request.encode())
    assert response.status_code == 200, response.data
    fields = rejections(event_file.new())  # was: a restore, with the value turned into null
    assert fields[0]["type"] == "json_invalid"


def test_a_bulk_job_for_a_missing_bucket_is_acked_with_one_rejection(gcp, cos_live, event_file):
    job = {**bulk_job(), "bucket": "archive-gone-1250000000"}
    event_file.new()
    response = publish(gcp.pubsub, json.dumps(job).encode())
    assert response.status_code == 200, response.data  # was a 500: NoSuchBucket escaped
    fields = rejections(event_file.new())
    # README, bulk errors: 404 not_found, the bucket or the manifest does not exist.
    assert [(f["loc"], f["type"]) for f in fields] == [(["bucket"], "not_found")]
    assert any(entry.method == "GET" and entry.status == 404
               and "archive-gone" in entry.host + entry.path
               for entry in cos_live.log.entries()), "COS never refused a listing"


def test_a_bulk_job_whose_listing_fails_for_now_is_redelivered(gcp, cos_live, event_file):
    """The other half of the classification, kept from turning into the fix's own bug: a
    retryable listing failure must not become a rejection (that would lose the job); the message
    is handed back, nothing published, and the redelivery runs the job."""
    cos_live.emulator.put_object(COS_BUCKET, "hostile/bulk-1.bin", b"x", "ARCHIVE")
    event_file.new()
    cos_live.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_method="GET"))
    try:
        response = publish(gcp.pubsub, json.dumps(bulk_job()).encode())
    finally:
        cos_live.faults.clear()
    assert response.status_code == 500, response.data
    assert response.get_json()["error"]["code"] == "redelivery_requested"
    assert event_file.new() == []
    cos_live.log.clear()
    response = publish(gcp.pubsub, json.dumps(bulk_job()).encode())
    assert response.status_code == 200, response.data  # the same job, once COS answers again
    assert event_file.new() == []  # a dry run: planned, nothing refused, nothing restored
    assert any(entry.method == "GET" and entry.status == 200 and entry.fault is None
               for entry in cos_live.log.entries()), "the redelivered job never listed"


def _signed_recheck(request: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({**recheck_message(), "request": request}).encode()
    return body, {"Content-Type": "application/json", **task_auth.sign_task(SECRET, body)}


@pytest.mark.parametrize("request_id", [None, 7, ["hr-1"], "", "x" * 10_000],
                         ids=["missing", "number", "list", "empty", "huge"])
def test_a_recheck_task_without_a_usable_request_id_is_a_422(gcp, event_file, request_id):
    request = {**cos_request(), "request_id": request_id}
    if request_id is None:
        del request["request_id"]
    body, headers = _signed_recheck(request)
    event_file.new()
    response = gcp.recheck.post("/", data=body, headers=headers)
    answer = check_webhook_answer(response.status_code, response.headers.get("Content-Type"),
                                  response.data)
    # Was a 500 without one (KeyError, retried for days); one of another type was coerced
    # into the re-check's own id and its request rejected from inside a 200.
    assert response.status_code == 422, answer
    assert any(f["loc"][:1] == ["request"] for f in answer["error"]["fields"]), answer
    assert event_file.new() == []


def test_a_recheck_task_with_a_request_id_is_still_accepted(gcp):
    """The new check refuses only what it must: the golden re-check message still passes it."""
    body, headers = _signed_recheck(recheck_message()["request"])
    response = gcp.recheck.post("/", data=body, headers=headers)
    answer = check_webhook_answer(response.status_code, response.headers.get("Content-Type"),
                                  response.data)
    assert response.status_code == 200, answer


@pytest.mark.parametrize("body", DEEP_BUT_PARSEABLE, ids=lambda body: f"{len(body)}B")
def test_a_context_nested_too_deep_is_a_422_and_a_rejected_event(gcp, event_file, body):
    event_file.new()
    response = gcp.http.post("/", data=body, headers={"Content-Type": "application/json",
                                                      **auth.sign(SECRET, body)})
    answer = check_webhook_answer(response.status_code, response.headers.get("Content-Type"),
                                  response.data)
    # Was a 500 from a few hundred levels (the rejection could not be serialized); below
    # that, the refused context was echoed back in the rejection.
    assert response.status_code == 422, answer
    assert answer["error"]["fields"][0]["loc"] == ["context"]
    assert "context" not in answer.get("outcome", {}) or answer["outcome"]["context"] is None
    event_file.new()
    response = publish(gcp.pubsub, body)
    assert response.status_code == 200, response.data  # was a 500, redelivered forever
    fields = rejections(event_file.new())
    assert fields[0]["loc"] == ["context"]


def test_a_context_at_the_depth_limit_is_kept_in_its_rejection(gcp, event_file):
    """Only an over-deep context is dropped: one the schema accepts is still echoed back in a
    rejection for another field, as before."""
    body = nested_context(MAX_CONTEXT_DEPTH, bucket="Not A Bucket")
    context = json.loads(body)["context"]
    response = gcp.http.post("/", data=body, headers={"Content-Type": "application/json",
                                                      **auth.sign(SECRET, body)})
    answer = check_webhook_answer(response.status_code, response.headers.get("Content-Type"),
                                  response.data)
    assert response.status_code == 422, answer
    assert answer["outcome"]["context"] == context
