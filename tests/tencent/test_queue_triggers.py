"""CMQ topic, CKafka and timer triggers; unrecognised events; SCF retry semantics."""

from __future__ import annotations

import json

import pytest

from emulators._http import FaultPlan
from shared.sinks import SinkError
from tests.conftest import COS_BUCKET, cos_request, gcs_request
from tests.tencent.conftest import (
    cmq_event,
    golden,
    logged,
    printed_events,
    restore_posts,
    soft_delete,
    statuses,
)


def pairs(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["data"]["request_id"], e["type"].rsplit(".", 1)[-1]) for e in events]


def archive(cos_emulator, *keys: str) -> None:
    for key in keys:
        cos_emulator.emulator.put_object(COS_BUCKET, key, b"x", "ARCHIVE")


def test_golden_cmq_event_processes_every_record(scf, cos_emulator, gcs_emulator, capsys):
    archive(cos_emulator, "golden/cmq-1.bin", "golden/cmq-2.bin")
    soft_delete(gcs_emulator, "golden/cmq.txt")
    summary = scf.main_handler(golden("scf_cmq_topic.json"), {"request_id": "inv-cmq"})
    assert summary["trigger"] == "cmq"
    assert summary["records"] == 2
    assert summary["counts"] == {"initiated": 2, "completed": 1}
    assert summary["retry"] is False
    events = printed_events(capsys.readouterr().out)
    by_request = {e["data"]["request_id"]: e["type"].rsplit(".", 1)[-1] for e in events}
    assert by_request == {
        "golden-cmq-1": "initiated", "golden-cmq-2": "initiated", "golden-cmq-3": "completed",
    }


def test_golden_ckafka_event(scf, cos_emulator, capsys):
    archive(cos_emulator, "golden/kafka.bin")
    summary = scf.main_handler(golden("scf_ckafka.json"), None)
    assert (summary["trigger"], summary["counts"]) == ("ckafka", {"initiated": 1})
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["initiated"]
    assert (events[0]["data"]["tier"], events[0]["data"]["days"]) == ("Standard", 3)


def test_golden_timer_event(scf, cos_emulator, gcs_emulator, capsys):
    archive(cos_emulator, "golden/timer.bin")
    soft_delete(gcs_emulator, "golden/timer.txt")
    summary = scf.main_handler(golden("scf_timer.json"), None)
    assert summary["trigger"] == "timer"
    assert summary["counts"] == {"initiated": 1, "completed": 1}
    assert statuses(printed_events(capsys.readouterr().out)) == ["initiated", "completed"]


def test_malformed_records_are_rejected_and_the_good_ones_still_run(scf, gcs_emulator, capsys):
    soft_delete(gcs_emulator, "good.txt")
    event = cmq_event(
        json.dumps(gcs_request("good.txt")),  # fine
        "{not json",  # garbage
        json.dumps({"provider": "cos", "request_id": "bad-1", "days": 0}),  # invalid request
    )
    del event["Records"][0]["CMQ"]["msgId"]  # optional metadata missing: still fine
    event["Records"].append({"CMQ": {"type": "topic", "topicName": "restore-requests"}})
    event["Records"].append({"CLS": {"data": "..."}})
    event["Records"].append("not an object")
    summary = scf.main_handler(event, None)
    assert summary["retry"] is False
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["completed"] + ["rejected"] * 5
    fields = [
        [(f["field"], f["type"]) for f in e["data"]["error"]["fields"]] for e in events[1:]
    ]
    assert fields[0] == [("(body)", "json_invalid")]
    assert {f for f, _ in fields[1]} >= {"days", "bucket", "region", "key"}
    assert events[2]["data"]["request_id"] == "bad-1"
    assert fields[2:] == [
        [("Records.3.CMQ.msgBody", "missing")],
        [("Records.4", "unsupported_record")],
        [("Records.5", "dict_type")],
    ]


@pytest.mark.parametrize(
    ("event", "type_"),
    [
        (golden("scf_unrecognised.json"), "unsupported_event"),
        ("a bare string", "unsupported_event"),
        ({"Records": []}, "list_type"),
        ({"Type": "Timer", "TriggerName": "t", "Time": "2026-11-20T02:00:00Z"}, "missing"),
        ({"Type": "Timer", "Message": "   "}, "missing"),
    ],
)
def test_unrecognised_or_unusable_events_are_rejected_and_acknowledged(scf, capsys, event,
                                                                       type_):
    summary = scf.main_handler(event, None)
    assert summary["retry"] is False
    captured = capsys.readouterr()
    events = printed_events(captured.out)
    assert statuses(events) == ["rejected"]
    assert [f["type"] for f in events[0]["data"]["error"]["fields"]] == [type_]
    warnings = [e for e in logged(captured.err) if e["severity"] == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0]["type"] == type_


def test_unrecognised_event_log_names_fields_but_never_values(scf, capsys):
    event = golden("scf_unrecognised.json")
    scf.main_handler(event, None)
    err = capsys.readouterr().err
    (warning,) = [e for e in logged(err) if e["severity"] == "WARNING"]
    assert warning["keys"] == ["clslogs"]
    assert event["clslogs"]["data"] not in err


def test_retry_only_after_every_record_and_no_second_restore_on_retry(scf, cos_emulator,
                                                                      capsys):
    archive(cos_emulator, "first.bin", "flaky.bin")
    cos_emulator.faults.set(
        FaultPlan(error_rate=1.0, error_status=503, match_path="/flaky.bin?restore")
    )
    event = cmq_event(
        json.dumps({"requests": [cos_request("flaky.bin", request_id="r-flaky"),
                                 cos_request("first.bin", request_id="r-first")]}),
        json.dumps({"provider": "gcs"}),
    )
    with pytest.raises(scf.RetryRequested):
        scf.main_handler(event, None)
    captured = capsys.readouterr()
    # Every record ran, the item after the failing one too; the retryable one published nothing.
    events = printed_events(captured.out)
    assert pairs(events)[0] == ("r-first", "initiated")
    assert statuses(events) == ["initiated", "rejected"]
    assert restore_posts(cos_emulator, "flaky.bin")["statuses"] == [503, 503, 503]
    (summary,) = [e for e in logged(captured.err) if e["message"] == "event processed"]
    assert summary["retry"] is True and summary["counts"]["failed"] == 1

    cos_emulator.faults.clear()
    summary = scf.main_handler(event, None)  # SCF's retry: the same event again
    assert summary["retry"] is False
    events = printed_events(capsys.readouterr().out)
    # r-first is not announced again (only looked at: HEAD says in progress); r-flaky now is;
    # the invalid record's rejection went out with the first delivery and is not repeated.
    assert pairs(events)[0] == ("r-flaky", "initiated")
    assert statuses(events) == ["initiated"]
    first = restore_posts(cos_emulator, "first.bin")
    assert (first["received"], first["accepted"]) == (1, 1)  # no second restore POST
    assert restore_posts(cos_emulator, "flaky.bin")["accepted"] == 1


def test_requests_without_an_id_are_named_after_the_message(scf, cos_emulator, capsys):
    archive(cos_emulator, "anon.bin")
    request = cos_request("anon.bin")
    assert "request_id" not in request
    event = cmq_event(json.dumps(request))
    scf.main_handler(event, None)
    scf.main_handler(event, None)  # a redelivery of the same CMQ message (same msgId)
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["initiated"]  # announced once
    assert restore_posts(cos_emulator, "anon.bin")["received"] == 1
    other = cmq_event(json.dumps(request))
    other["Records"][0]["CMQ"]["msgId"] = "another-message"
    scf.main_handler(other, None)  # a new message is a new request: HEAD says in progress
    assert statuses(printed_events(capsys.readouterr().out)) == ["in_progress"]
    assert restore_posts(cos_emulator, "anon.bin")["received"] == 1


def test_connection_resets_ask_for_a_retry(scf, gcs_emulator, capsys):
    soft_delete(gcs_emulator, "reset.txt")
    gcs_emulator.faults.set(FaultPlan(reset_rate=1.0, match_path="/restore?"))
    with pytest.raises(scf.RetryRequested):
        scf.main_handler(cmq_event(json.dumps(gcs_request("reset.txt"))), None)
    assert printed_events(capsys.readouterr().out) == []
    gcs_emulator.faults.clear()
    assert scf.main_handler(cmq_event(json.dumps(gcs_request("reset.txt"))))["retry"] is False


class FailingSink:
    def publish(self, event) -> None:
        raise SinkError("down")


def test_undelivered_event_asks_for_a_retry(scf, gcs_emulator):
    soft_delete(gcs_emulator, "lost.txt")
    scf.get_service().sink = FailingSink()
    with pytest.raises(scf.RetryRequested):
        scf.main_handler({"Type": "Timer", "Message": json.dumps(gcs_request("lost.txt"))})


def test_configuration_error_fails_the_invocation_and_is_logged(scf, monkeypatch, capsys):
    monkeypatch.setenv("RESTORE_EVENT_SINK", "http")
    with pytest.raises(Exception, match="RESTORE_EVENT_HTTP_URL"):
        scf.main_handler(golden("scf_ckafka.json"), None)
    captured = capsys.readouterr()
    assert printed_events(captured.out) == []
    entries = logged(captured.err)
    assert any("RESTORE_EVENT_HTTP_URL" in e.get("error", "") for e in entries)
