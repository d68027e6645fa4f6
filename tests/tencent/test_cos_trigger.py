"""COS trigger: cos:ObjectRestore:Completed / :Post notifications, golden and emulator-made."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from email.utils import parsedate_to_datetime

import pytest

from emulators._http import FaultPlan
from tests.conftest import COS_BUCKET, cos_request
from tests.tencent.conftest import cmq_event, golden, logged, printed_events, statuses

EXPEDITED = 60  # the emulator's ARCHIVE/Expedited duration, emulated seconds
GOLDEN_KEYS = ["golden/logs 2026-11-19.tar.gz", "golden/归档/b+c.bin"]


def start_restores(scf, cos_emulator, *keys: str) -> None:
    """Archive the objects and request their restores through the CMQ trigger."""
    for key in keys:
        cos_emulator.emulator.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
    bodies = [json.dumps(cos_request(key, request_id=f"req-{i}")) for i, key in enumerate(keys)]
    assert scf.main_handler(cmq_event(*bodies))["counts"] == {"initiated": len(keys)}


def expiry_of(cos_emulator, key: str) -> datetime:
    state = cos_emulator.emulator.restore_state(COS_BUCKET, key)
    return parsedate_to_datetime(state["expiry_date"])


def event_expiry(event: dict) -> datetime:
    return datetime.fromisoformat(event["data"]["expiry_time"].replace("Z", "+00:00"))


def heads(cos_emulator) -> int:
    return sum(1 for e in cos_emulator.log.entries() if e.method == "HEAD")


def test_golden_completed_publishes_completed_with_expiry_for_every_record(scf, cos_emulator,
                                                                           capsys):
    start_restores(scf, cos_emulator, *GOLDEN_KEYS)
    cos_emulator.emulator.clock.advance(EXPEDITED + 1)
    capsys.readouterr()
    summary = scf.main_handler(golden("scf_cos_restore_completed.json"), {"request_id": "i-1"})
    assert (summary["trigger"], summary["records"]) == ("cos", 2)
    assert summary["counts"] == {"completed": 2}
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["completed", "completed"]
    for event, key in zip(events, GOLDEN_KEYS, strict=True):
        data = event["data"]
        assert (data["bucket"], data["region"], data["key"]) == (COS_BUCKET, "ap-guangzhou", key)
        assert data["storage_class"] == "ARCHIVE"
        assert event_expiry(event) == expiry_of(cos_emulator, key)
    # restorefn started these restores: each completion is that request's, with what it asked.
    assert [e["data"]["request_id"] for e in events] == ["req-0", "req-1"]
    assert all(e["data"]["days"] == 3 and e["data"]["tier"] == "Expedited" for e in events)
    assert events[0]["source"] == "//cos.ap-guangzhou.myqcloud.com/buckets/archive-1250000000"


def test_redelivered_notification_publishes_nothing_again(scf, cos_emulator, capsys):
    start_restores(scf, cos_emulator, *GOLDEN_KEYS)
    cos_emulator.emulator.clock.advance(EXPEDITED + 1)
    capsys.readouterr()
    event = golden("scf_cos_restore_completed.json")
    scf.main_handler(event, None)
    first = printed_events(capsys.readouterr().out)
    assert statuses(first) == ["completed", "completed"]
    seen = heads(cos_emulator)
    summary = scf.main_handler(copy.deepcopy(event), None)  # SCF or COS delivers it again
    assert summary["counts"] == {"completed": 2} and summary["retry"] is False
    assert printed_events(capsys.readouterr().out) == []
    assert heads(cos_emulator) == seen  # answered from the ledger, no HEAD
    # Where the ledger is not shared (other instances, memory ledgers), the notification alone
    # names the completion: two such instances publish the same event ids.
    scf.reset_service()
    scf.main_handler(copy.deepcopy(event), None)
    second_instance = printed_events(capsys.readouterr().out)
    scf.reset_service()
    scf.main_handler(copy.deepcopy(event), None)
    third_instance = printed_events(capsys.readouterr().out)
    assert [e["id"] for e in second_instance] == [e["id"] for e in third_instance]
    assert all(e["data"]["request_id"].startswith("cos-notice-") for e in second_instance)
    # The notification does not say what an unknown request asked for.
    assert all("days" not in e["data"] and "tier" not in e["data"] for e in second_instance)


def test_golden_post_is_acknowledged_without_provider_calls(scf, cos_emulator, capsys):
    summary = scf.main_handler(golden("scf_cos_restore_post.json"), None)
    assert summary == {"trigger": "cos", "records": 2, "counts": {}, "retry": False}
    captured = capsys.readouterr()
    assert printed_events(captured.out) == []
    assert cos_emulator.log.entries() == []
    notes = [e for e in logged(captured.err) if e["message"] == "COS restore notification"]
    assert [(n["event_name"], n["outcome"]) for n in notes] == [
        ("cos:ObjectRestore:Post", "acknowledged")
    ] * 2


def test_notification_never_logs_the_request_headers_it_carries(scf, cos_emulator, capsys):
    event = golden("scf_cos_restore_completed.json")
    authorization = event["Records"][0]["event"]["requestParameters"]["requestHeaders"][
        "Authorization"
    ]
    start_restores(scf, cos_emulator, *GOLDEN_KEYS)
    cos_emulator.emulator.clock.advance(EXPEDITED + 1)
    scf.main_handler(event, None)
    captured = capsys.readouterr()
    assert "q-signature" not in captured.err + captured.out
    assert authorization not in captured.err + captured.out


def test_completed_while_head_still_says_ongoing_asks_for_a_retry(scf, cos_emulator, capsys):
    start_restores(scf, cos_emulator, *GOLDEN_KEYS)
    capsys.readouterr()
    event = golden("scf_cos_restore_completed.json")
    with pytest.raises(scf.RetryRequested):
        scf.main_handler(event, None)
    assert printed_events(capsys.readouterr().out) == []
    cos_emulator.emulator.clock.advance(EXPEDITED + 1)
    assert scf.main_handler(event, None)["counts"] == {"completed": 2}  # SCF's retry


def test_partial_failure_is_retried_without_repeating_the_finished_record(scf, cos_emulator,
                                                                          capsys):
    start_restores(scf, cos_emulator, *GOLDEN_KEYS)
    cos_emulator.emulator.clock.advance(EXPEDITED + 1)
    capsys.readouterr()
    cos_emulator.faults.set(
        FaultPlan(error_rate=1.0, error_status=503, match_method="HEAD", match_path="b%2Bc.bin")
    )
    event = golden("scf_cos_restore_completed.json")
    with pytest.raises(scf.RetryRequested):
        scf.main_handler(event, None)
    first = printed_events(capsys.readouterr().out)
    assert [e["data"]["key"] for e in first] == [GOLDEN_KEYS[0]]  # the other one published
    cos_emulator.faults.clear()
    cos_emulator.log.clear()
    assert scf.main_handler(event, None)["retry"] is False
    second = printed_events(capsys.readouterr().out)
    assert [e["data"]["key"] for e in second] == [GOLDEN_KEYS[1]]
    assert [e.path for e in cos_emulator.log.entries()] == ["/" + GOLDEN_KEYS[1]]


def with_record(event: dict, index: int, edit) -> dict:
    edit(event["Records"][index])
    return event


def test_bucket_outside_the_allowlist_is_rejected_without_a_provider_call(scf, cos_emulator,
                                                                          capsys):
    event = golden("scf_cos_restore_completed.json")
    event["Records"] = event["Records"][:1]
    cos = event["Records"][0]["cos"]
    cos["cosBucket"]["name"] = "private"
    cos["cosObject"]["key"] = cos["cosObject"]["key"].replace("/archive/", "/private/")
    summary = scf.main_handler(event, None)
    assert summary["retry"] is False
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["rejected"]
    assert events[0]["data"]["error"]["code"] == "bucket_not_allowed"
    assert events[0]["data"]["bucket"] == "private-1250000000"
    assert cos_emulator.log.entries() == []


def test_completed_for_an_object_without_a_restored_copy_is_failed_not_restored(
    scf, cos_emulator, capsys
):
    for key in GOLDEN_KEYS:
        cos_emulator.emulator.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
    summary = scf.main_handler(golden("scf_cos_restore_completed.json"), None)
    assert summary["retry"] is False
    events = printed_events(capsys.readouterr().out)
    assert [e["data"]["error"]["code"] for e in events] == ["not_restored", "not_restored"]


def test_unusable_cos_records_are_rejected_and_the_rest_still_run(scf, cos_emulator, capsys):
    start_restores(scf, cos_emulator, GOLDEN_KEYS[0])
    cos_emulator.emulator.clock.advance(EXPEDITED + 1)
    capsys.readouterr()
    template = golden("scf_cos_restore_completed.json")["Records"][0]
    created = copy.deepcopy(template)
    created["event"]["eventName"] = "cos:ObjectCreated:Put"
    foreign_key = copy.deepcopy(template)
    foreign_key["cos"]["cosObject"]["key"] = "/1250000000/otherbucket/x.bin"
    no_region = copy.deepcopy(template)
    no_region["cos"]["cosBucket"] = {"name": "archive", "appid": "1250000000", "region": "zz"}
    no_region["cos"]["cosObject"]["url"] = ""
    no_event = copy.deepcopy(template)
    del no_event["event"]
    summary = scf.main_handler(
        {"Records": [created, foreign_key, template, no_region, no_event]}, None
    )
    assert summary["retry"] is False
    events = printed_events(capsys.readouterr().out)
    assert statuses(events) == ["rejected", "rejected", "completed", "rejected", "rejected"]
    problems = [
        [(f["field"], f["type"]) for f in e["data"]["error"]["fields"]]
        for e in events if e["data"]["outcome"] == "rejected"
    ]
    assert problems == [
        [("Records.0.event.eventName", "unsupported_event_type")],
        [("Records.1.cos.cosObject.key", "key_invalid")],
        [("Records.3.cos.cosBucket.region", "region_unknown")],
        [("Records.4.event", "missing")],
    ]


def test_short_region_code_alone_is_enough(scf, cos_emulator, capsys):
    start_restores(scf, cos_emulator, GOLDEN_KEYS[0])
    cos_emulator.emulator.clock.advance(EXPEDITED + 1)
    capsys.readouterr()
    event = golden("scf_cos_restore_completed.json")
    event["Records"] = event["Records"][:1]
    bucket = event["Records"][0]["cos"]["cosBucket"]
    del bucket["s3Region"], bucket["cosRegion"]
    event["Records"][0]["cos"]["cosObject"]["url"] = ""
    assert scf.main_handler(event, None)["counts"] == {"completed": 1}
    (published,) = printed_events(capsys.readouterr().out)
    assert published["data"]["region"] == "ap-guangzhou"  # from "gz"


@pytest.mark.parametrize(("advance", "expected"), [(0, {"in_progress": 1}), (61, {"completed": 1})])
def test_a_pattern_event_name_is_checked_and_in_progress_is_acknowledged(
    scf, cos_emulator, capsys, advance, expected
):
    start_restores(scf, cos_emulator, GOLDEN_KEYS[0])
    cos_emulator.emulator.clock.advance(advance)
    capsys.readouterr()
    event = golden("scf_cos_restore_completed.json")
    event["Records"] = event["Records"][:1]
    event["Records"][0]["event"]["eventName"] = "cos:ObjectRestore:*"
    summary = scf.main_handler(event, None)
    assert (summary["counts"], summary["retry"]) == (expected, False)
    published = statuses(printed_events(capsys.readouterr().out))
    assert published == (["completed"] if "completed" in expected else [])


# -- the whole flow with the emulator's notifications ------------------------------------------
def test_full_flow_request_initiated_notified_completed(scf, cos_emulator, capsys):
    emulator = cos_emulator.emulator
    notifications: list[dict] = []
    emulator.restore_notify = notifications.append
    key = "flow/report 2026 ü+1.csv"
    emulator.put_object(COS_BUCKET, key, b"data", "ARCHIVE")

    request = cos_request(key, request_id="flow-1", days=2)
    assert scf.main_handler(cmq_event(json.dumps(request)))["counts"] == {"initiated": 1}
    (initiated,) = printed_events(capsys.readouterr().out)
    assert (initiated["data"]["request_id"], statuses([initiated])) == ("flow-1", ["initiated"])

    # The Post notification is due at once; the Completed only once the job finishes.
    (posted,) = emulator.deliver_due_notifications()
    assert posted["Records"][0]["event"]["eventName"] == "cos:ObjectRestore:Post"
    assert scf.main_handler(posted, None)["counts"] == {}
    assert printed_events(capsys.readouterr().out) == []
    assert emulator.deliver_due_notifications() == []

    emulator.clock.advance(EXPEDITED + 1)
    (completed,) = emulator.deliver_due_notifications()
    assert notifications == [posted, completed]
    assert completed["Records"][0]["event"]["eventName"] == "cos:ObjectRestore:Completed"
    assert scf.main_handler(completed, {"request_id": "inv-2"})["counts"] == {"completed": 1}
    (done,) = printed_events(capsys.readouterr().out)
    assert statuses([done]) == ["completed"]
    assert done["data"]["key"] == key
    assert event_expiry(done) == expiry_of(cos_emulator, key)
    assert emulator.restore_requests()[0]["received"] == 1


def test_several_notifications_in_one_event(scf, cos_emulator, capsys):
    emulator = cos_emulator.emulator
    emulator.restore_notify = lambda event: None
    keys = ["multi/a.bin", "multi/b.bin", "multi/c.bin"]
    start_restores(scf, cos_emulator, *keys)
    emulator.clock.advance(EXPEDITED + 1)
    capsys.readouterr()
    (event,) = emulator.deliver_due_notifications(batch=True)
    assert [r["event"]["eventName"] for r in event["Records"]] == (
        ["cos:ObjectRestore:Post"] * 3 + ["cos:ObjectRestore:Completed"] * 3
    )
    summary = scf.main_handler(event, None)
    assert (summary["records"], summary["counts"]) == (6, {"completed": 3})
    events = printed_events(capsys.readouterr().out)
    assert sorted(e["data"]["key"] for e in events) == keys
