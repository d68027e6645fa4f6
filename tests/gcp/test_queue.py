"""shared.queue: the platform-neutral message processing both queue handlers reuse."""

from __future__ import annotations

import json

from emulators._http import FaultPlan
from shared.outcome import OutcomeStatus
from shared.queue import process_message, reject_envelope
from shared.sinks import SinkError
from tests.conftest import gcs_request
from tests.gcp.conftest import soft_delete


def test_single_request_from_bytes_is_published(service, sink, gcs_emulator):
    soft_delete(gcs_emulator, "a.txt")
    result = process_message(service, json.dumps(gcs_request("a.txt")).encode())
    assert not result.retry
    assert [o.status for o in result.outcomes] == [OutcomeStatus.COMPLETED]
    assert sink.types() == ["completed"]


def test_str_input_and_batch_items_are_independent(service, sink, gcs_emulator):
    soft_delete(gcs_emulator, "b.txt")
    batch = {"requests": [{"provider": "gcs"}, gcs_request("b.txt")]}
    result = process_message(service, json.dumps(batch))
    assert not result.retry
    assert sink.types() == ["rejected", "completed"]


def test_not_json_and_not_utf8_are_single_rejections(service, sink):
    for data, reason in [(b"{nope", "not valid JSON"), (b"\xff\xfe\xfa", "not UTF-8")]:
        result = process_message(service, data)
        assert not result.retry
        (outcome,) = result.outcomes
        assert outcome.status is OutcomeStatus.REJECTED
        assert outcome.error is not None and outcome.error.code.value == "validation_failed"
        assert reason in outcome.error.message
    assert sink.types() == ["rejected", "rejected"]


def test_batch_level_error_is_one_rejection(service, sink):
    result = process_message(service, json.dumps({"requests": [], "extra": 1}))
    assert len(result.outcomes) == 1 and not result.retry
    assert result.outcomes[0].error is not None
    fields = {f.field for f in result.outcomes[0].error.fields or []}
    assert fields == {"requests", "extra"}
    assert sink.types() == ["rejected"]


def test_retryable_outcome_is_not_published_and_asks_for_retry(service, sink, gcs_emulator):
    soft_delete(gcs_emulator, "r.txt")
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_path="/restore?"))
    result = process_message(service, json.dumps(gcs_request("r.txt")))
    assert result.retry
    assert result.outcomes[0].retryable
    assert sink.events == []


class FailingOnceSink:
    def __init__(self) -> None:
        self.calls = 0
        self.delivered: list[str] = []

    def publish(self, event) -> None:
        self.calls += 1
        if self.calls == 1:
            raise SinkError("down")
        self.delivered.append(event.type)


def test_sink_error_asks_for_retry_and_later_items_still_run(service):
    service.sink = FailingOnceSink()
    batch = {"requests": [{"provider": "gcs"}, {"provider": "cos"}]}
    result = process_message(service, json.dumps(batch))
    assert result.retry
    assert len(result.outcomes) == 2
    assert service.sink.delivered == ["restorefn.object.restore.v1.rejected"]


def test_unexpected_exception_in_one_item_asks_for_retry_and_the_rest_run(
    service, sink, monkeypatch, gcs_emulator
):
    soft_delete(gcs_emulator, "fine.txt")
    handle = service.handle

    def flaky(item, **kwargs):
        if item.get("object") == "boom.txt":
            raise RuntimeError("bug")
        return handle(item, **kwargs)

    monkeypatch.setattr(service, "handle", flaky)
    batch = {"requests": [gcs_request("boom.txt"), gcs_request("fine.txt")]}
    result = process_message(service, json.dumps(batch))
    assert result.retry
    assert sink.types() == ["completed"]


def test_reject_envelope_publishes_one_rejection(service, sink):
    result = reject_envelope(service, "message data is not valid base64",
                             loc=["message", "data"], type_="base64_invalid")
    assert not result.retry
    assert sink.events[0].data.error is not None
    assert sink.events[0].data.error.fields is not None
    assert sink.events[0].data.error.fields[0].field == "message.data"
