"""Fuzzing the queue entry points: Google's ``restore_pubsub`` (structured and binary
CloudEvents, raw Pub/Sub push bodies), the ``restore_recheck`` Cloud Tasks target, and every
asynchronous SCF trigger shape (CMQ, CKafka, timer, COS notifications, anything else).

The documented contract: a queue entry point never raises for a message it cannot use (that
would be a redelivery loop); it acknowledges it and publishes a ``rejected`` event naming the
field, or, where there is nothing to attach a request id to (a body that is no Pub/Sub message
at all), answers a structured 4xx and logs one structured line. Only a retryable failure asks
for a redelivery, and with the emulators healthy there is none.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from shared import task_auth
from shared.validation import parse_json
from tests.gcp.conftest import WEBHOOK_SECRET, golden
from tests.hostile.conftest import count_case, fuzz_settings
from tests.hostile.contract import check_error, check_event, check_webhook_answer, strict_json
from tests.hostile.strategies import (
    base64_of,
    header_junk,
    json_body,
    json_values,
    mutated,
    recheck_message,
    request_payloads,
)

SECRET = SecretStr(WEBHOOK_SECRET)
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
QUIET_KINDS = {"restorefn.bulk.v1", "restorefn.bulk.chunk.v1", "restorefn.bulk.poll.v1",
               "restorefn.recheck.v1"}  # answered by their own paths, not one outcome each

message_bodies = json_body(request_payloads(golden))


def _logged(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _unreadable(data: str) -> bool:
    """What ``restore_pubsub`` cannot even read: not base64, not UTF-8, not strict JSON (NaN,
    Infinity and nesting too deep for the parser included)."""
    try:
        parse_json(base64.b64decode(data, validate=True).decode())
    except ValueError:
        return True
    return False


def _quiet(data: str) -> bool:
    """A message answered without one outcome per request: a bulk or re-check message."""
    try:
        payload = parse_json(base64.b64decode(data, validate=True))
    except ValueError:
        return False
    kind = payload.get("kind") if isinstance(payload, dict) else None
    return isinstance(kind, str) and kind in QUIET_KINDS


@st.composite
def pubsub_deliveries(draw: st.DrawFn) -> tuple[dict[str, str], bytes, str, bool]:
    """(headers, body, message data, whether the envelope was left intact) in the three forms
    a Pub/Sub message reaches the function: structured CloudEvent, binary CloudEvent, push."""
    data = draw(base64_of(message_bodies))
    form = draw(st.sampled_from(["structured", "binary", "push"]))
    if form == "structured":
        envelope = golden("gcp_pubsub_structured.json")
        envelope["data"]["message"]["data"] = data
        headers = {"Content-Type": "application/cloudevents+json"}
    elif form == "binary":
        envelope = golden("gcp_pubsub_structured.json")["data"]
        envelope["message"]["data"] = data
        headers = {"Content-Type": "application/json", "ce-specversion": "1.0",
                   "ce-type": PUBSUB_TYPE, "ce-id": "fuzz-1",
                   "ce-source": "//pubsub.googleapis.com/projects/p/topics/t"}
    else:
        envelope = golden("gcp_pubsub_push.json")
        envelope["message"]["data"] = data
        headers = {"Content-Type": "application/json"}
    intact = draw(st.sampled_from([True, True, False]))
    if not intact:
        envelope = draw(mutated(envelope, max_edits=2,
                                extra_keys=("message", "data", "type", "specversion")))
        if form == "binary" and draw(st.booleans()):
            headers = {**headers, **draw(st.fixed_dictionaries(
                {}, optional={"ce-type": st.sampled_from(["", "x", PUBSUB_TYPE + "x"]),
                              "ce-id": st.sampled_from(["", "\u00e9"]),
                              "ce-specversion": st.sampled_from(["0.3", "2.0", ""])}))}
    body = json.dumps(envelope).encode()
    if not intact and draw(st.integers(min_value=0, max_value=4)) == 0:
        body = draw(st.sampled_from([b"", b"{", b"[]", b"\xff", b"null", b'{"message": 1}']))
    return headers, body, data, intact


@fuzz_settings(max_examples=200)
@given(delivery=pubsub_deliveries())
def test_restore_pubsub_acks_or_refuses_every_delivery_and_never_fails(gcp, event_file,
                                                                       delivery):
    count_case("pubsub")
    headers, body, data, intact = delivery
    event_file.new()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        response = gcp.pubsub.post("/", data=body, headers=headers)
    events = event_file.new()
    for event in events:
        check_event(event)
    assert response.status_code < 500, (response.status_code, response.data)
    if response.status_code != 200:
        # Not a Pub/Sub message at all: a structured refusal, logged, nothing published.
        check_webhook_answer(response.status_code, response.headers.get("Content-Type"),
                             response.data)
        assert events == []
        assert any(e["message"] == "request refused before the function ran"
                   for e in _logged(stderr.getvalue()))
        return
    assert events or _logged(stderr.getvalue()), "acked in silence"
    if not intact:
        return
    processed = [e for e in _logged(stderr.getvalue()) if e["message"] == "message processed"]
    assert len(processed) == 1
    if not _quiet(data):
        assert sum(processed[0]["counts"].values()) >= 1, "a message was acked unread"
    if _unreadable(data):
        assert [e["data"]["outcome"] for e in events] == ["rejected"]
        assert events[0]["data"]["error"]["fields"][0]["loc"][:2] in (["message", "data"], [])


# -- restore_recheck (Cloud Tasks) -----------------------------------------------------------
recheck_bodies = json_body(st.one_of(
    mutated(recheck_message(), extra_keys=("kind", "request", "check", "not_before",
                                           "hops_left", "initiated_at", "storage_class")),
    request_payloads(golden),
))


@fuzz_settings(max_examples=150)
@given(body=recheck_bodies, signed=st.sampled_from([True, True, True, False]),
       from_tasks=st.booleans(), junk=header_junk())
def test_restore_recheck_answers_every_task_in_the_structured_shape(
    gcp, event_file, body, signed, from_tasks, junk
):
    count_case("recheck")
    headers = {**junk, "Content-Type": "application/json"}
    if signed:
        headers.update(task_auth.sign_task(SECRET, body))
    if from_tasks:
        headers.update({"X-CloudTasks-TaskName": "fuzz", "X-CloudTasks-TaskRetryCount": "0"})
    else:
        headers.pop("X-CloudTasks-TaskName", None)
    event_file.new()
    response = gcp.recheck.post("/", data=body, headers=headers)
    answer = check_webhook_answer(response.status_code, response.headers.get("Content-Type"),
                                  response.data)
    for event in event_file.new():
        check_event(event)
    if from_tasks and response.status_code != 401:
        # Cloud Tasks retries every non-2xx for days: a task that cannot succeed is acked.
        assert response.status_code == 200, answer
    if response.status_code == 200:
        assert answer["result"] in ("done", "rescheduled", "duplicate", "rejected", "ignored",
                                    "polled"), answer
        if answer["result"] == "rejected":
            check_error(answer["error"])


# -- SCF asynchronous triggers ----------------------------------------------------------------
SCF_GOLDEN = ["scf_cmq_topic.json", "scf_ckafka.json", "scf_timer.json",
              "scf_cos_restore_completed.json", "scf_cos_restore_post.json",
              "scf_unrecognised.json"]
SCF_NAMES = ("Records", "CMQ", "Ckafka", "cos", "event", "msgBody", "msgId", "Type", "Message",
             "eventName", "cosObject", "cosBucket", "key", "url", "appid", "name", "region")


@st.composite
def scf_events(draw: st.DrawFn) -> Any:
    """A golden trigger event with its message bodies swapped for hostile ones, then (mostly)
    mutated at the envelope level too; now and then no object at all."""
    event = copy.deepcopy(golden(draw(st.sampled_from(SCF_GOLDEN))))
    for record in event.get("Records", []):
        for source in ("CMQ", "Ckafka"):
            if source in record:
                raw = draw(message_bodies)
                record[source]["msgBody"] = raw.decode("utf-8", "surrogateescape")
    if event.get("Type") == "Timer":
        event["Message"] = draw(message_bodies).decode("utf-8", "surrogateescape")
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        return draw(json_values())
    return draw(mutated(event, max_edits=3, extra_keys=SCF_NAMES))


@fuzz_settings(max_examples=200)
@given(event=scf_events(), context=st.one_of(st.none(), json_values(4),
                                             st.just({"request_id": "inv-1"})))
def test_scf_main_handler_never_raises_on_an_asynchronous_event(scf, event_file, event,
                                                                context):
    count_case("scf_async")
    event_file.new()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        answer = scf.main_handler(event, context)
    events = event_file.new()
    for published in events:
        check_event(published)
    json.dumps(answer)  # the runtime serialises what the handler returns
    if isinstance(event, dict) and "httpMethod" in event and "requestContext" in event:
        assert answer["statusCode"] < 500
        return
    assert answer["retry"] is False
    summary = answer.get("trigger")
    assert isinstance(summary, str)
    if answer.get("problem") is not None:  # not a trigger at all: one rejection, logged
        assert [e["data"]["outcome"] for e in events] == ["rejected"]
        assert any(e["message"].startswith("unrecognised") for e in _logged(stderr.getvalue()))


def test_known_envelope_failures_are_structured(gcp, event_file):
    """Bodies functions-framework itself cannot turn into a CloudEvent: before the fix these were
    HTML pages quoting the request (400, 415) or a crash (500)."""
    cases = [(b'{"context": 1, "data": 2}', "application/json", 400),
             (b"{not json", "application/cloudevents+json", 400),
             (b"hello", "text/plain", 415)]
    for body, content_type, status in cases:
        response = gcp.pubsub.post("/", data=body, headers={"Content-Type": content_type})
        assert response.status_code == status
        answer = strict_json(response.data)
        check_error(answer["error"])
        assert body.decode() not in response.data.decode()
    response = gcp.pubsub.get("/")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert event_file.new() == []
