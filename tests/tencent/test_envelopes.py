"""shared.envelopes: SCF trigger recognition and COS record decoding, without any server."""

from __future__ import annotations

import base64
import copy
from datetime import datetime, timezone

import pytest

from shared.envelopes import (
    ApiGatewayRequest,
    CosRestoreNotice,
    InvalidEvent,
    QueueMessage,
    RecordProblem,
    RecordsEvent,
    TimerMessage,
    integration_response,
    parse_cos_record,
    parse_event,
)
from shared.envelopes.cos_events import decode_key, resolve_region
from shared.envelopes.scf import summarise
from shared.validation import parse_request
from tests.tencent.conftest import golden

APPID, NAME = "1250000000", "archive"


def cos_record(**edits) -> dict:
    record = copy.deepcopy(golden("scf_cos_restore_completed.json")["Records"][0])
    for path, value in edits.items():
        target = record
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[part]
        if value is None:
            del target[leaf]
        else:
            target[leaf] = value
    return record


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("/1250000000/archive/plain.bin", "plain.bin"),
        ("/1250000000/archive/dir/with%20space.txt", "dir/with space.txt"),
        ("/1250000000/archive/%E5%BD%92%E6%A1%A3/b%2Bc.bin", "归档/b+c.bin"),
        ("/1250000000/archive/a+b.bin", "a+b.bin"),  # a literal plus is not a space
        ("/1250000000/archive-1250000000/x/y.bin", "x/y.bin"),  # full bucket name in the path
        ("/1250000000/archive//leading-slash", "/leading-slash"),
    ],
)
def test_decode_key(raw, key):
    assert decode_key(raw, NAME, APPID) == key


@pytest.mark.parametrize(
    "raw", ["/1250000000/other/x.bin", "/999/archive/x.bin", "archive/x.bin",
            "/1250000000/archive/"],
)
def test_decode_key_refuses_keys_of_other_buckets_or_empty(raw):
    assert decode_key(raw, NAME, APPID) is None


def test_decode_key_falls_back_on_the_url_only_when_the_key_is_absent():
    url = "http://archive-1250000000.cos.ap-guangzhou.myqcloud.com/from%20url.bin"
    assert decode_key("", NAME, APPID, url) == "from url.bin"
    assert decode_key("/1250000000/other/x", NAME, APPID, url) is None


@pytest.mark.parametrize(
    ("bucket", "url", "region"),
    [
        ({"s3Region": "ap-chengdu", "region": "gz"}, "", "ap-chengdu"),
        ({"cosRegion": "ap-beijing", "region": "gz"}, "", "ap-beijing"),
        ({"region": "ap-shanghai"}, "", "ap-shanghai"),
        ({"region": "zz"}, "http://b-1250000000.cos.ap-nanjing.myqcloud.com/k", "ap-nanjing"),
        ({"region": "cd"}, "", "ap-chengdu"),
        ({"region": "GZ"}, "", "ap-guangzhou"),
        ({"region": "zz"}, "", None),
        ({}, "not a url", None),
    ],
)
def test_resolve_region(bucket, url, region):
    assert resolve_region(bucket, url) == region


def test_golden_completed_record_decodes():
    notice = parse_cos_record(golden("scf_cos_restore_completed.json")["Records"][1], 1)
    assert isinstance(notice, CosRestoreNotice)
    assert (notice.bucket, notice.region, notice.key) == (
        "archive-1250000000", "ap-guangzhou", "golden/归档/b+c.bin"
    )
    assert (notice.phase, notice.version_id, notice.index) == ("completed", None, 1)
    assert notice.event_time == datetime(2025, 11, 20, 11, 0, 1, tzinfo=timezone.utc)
    # The payload handed to RestoreService.check is a valid request.
    request = parse_request(notice.check_payload())
    assert (request.bucket, request.key, request.request_id) == (
        notice.bucket, notice.key, notice.notice_id
    )


def test_notice_id_is_stable_per_notification_and_differs_between_notifications():
    one = parse_cos_record(cos_record(), 0)
    again = parse_cos_record(cos_record(), 3)
    later = parse_cos_record(cos_record(event__eventTime=1763636999), 0)
    posted = parse_cos_record(cos_record(event__eventName="cos:ObjectRestore:Post"), 0)
    other = parse_cos_record(cos_record(cos__cosObject__vid="v2"), 0)
    ids = [n.notice_id for n in (one, again, later, posted, other)]  # type: ignore[union-attr]
    assert ids[0] == ids[1]
    assert len(set(ids)) == 4
    assert posted.phase == "posted"  # type: ignore[union-attr]
    assert other.version_id == "v2"  # type: ignore[union-attr]


def test_iso_event_time_and_appid_from_the_key():
    notice = parse_cos_record(
        cos_record(event__eventTime="2026-11-20T10:00:00.000Z", cos__cosBucket__appid=None), 0
    )
    assert isinstance(notice, CosRestoreNotice)
    assert notice.event_time == datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    assert notice.bucket == "archive-1250000000"


@pytest.mark.parametrize(
    ("edits", "field", "type_"),
    [
        ({"event": None}, "Records.0.event", "missing"),
        ({"event__eventName": None}, "Records.0.event.eventName", "missing"),
        ({"event__eventName": "cos:ObjectRemove:Delete"}, "Records.0.event.eventName",
         "unsupported_event_type"),
        ({"cos__cosBucket": None}, "Records.0.cos.cosBucket", "missing"),
        ({"cos__cosObject": "x"}, "Records.0.cos.cosObject", "missing"),
        ({"cos__cosBucket__name": ""}, "Records.0.cos.cosBucket.name", "missing"),
        ({"cos__cosBucket__appid": "abc"}, "Records.0.cos.cosBucket.appid", "missing"),
        ({"cos__cosObject__key": 42}, "Records.0.cos.cosObject.key", "key_invalid"),
    ],
)
def test_broken_cos_records_are_problems_with_a_location(edits, field, type_):
    problem = parse_cos_record(cos_record(**edits), 0)
    assert isinstance(problem, RecordProblem)
    assert (".".join(map(str, problem.problem.loc)), problem.problem.type) == (field, type_)


def test_api_gateway_golden_get_and_post():
    get = parse_event(golden("scf_apigw_get.json"))
    assert isinstance(get, ApiGatewayRequest)
    assert (get.method, get.body, get.path, get.query, get.problem) == (
        "GET", b"", "/restore", {}, None
    )
    assert get.request_id == "5a0c8a4e-1b2c-4d3e-8f9a-0b1c2d3e4f5a"
    post = parse_event(golden("scf_apigw_post_base64.json"))
    assert isinstance(post, ApiGatewayRequest)
    assert post.body.startswith(b'{"provider": "gcs"')
    assert post.headers["content-type"] == "application/json; charset=utf-8"


def apigw(**fields) -> dict:
    return {"httpMethod": "POST", "requestContext": {"requestId": "r"}, "headers": {}, **fields}


def test_api_gateway_headers_are_lower_cased_and_flattened():
    parsed = parse_event(apigw(headers={"Content-Type": "application/json", "X-Multi": ["a", "b"],
                                        "X-None": None, "X-Num": 5}))
    assert isinstance(parsed, ApiGatewayRequest)
    assert parsed.headers == {"content-type": "application/json", "x-multi": "a,b", "x-num": "5"}


@pytest.mark.parametrize(
    ("body", "flag", "decoded", "problem"),
    [
        ("{}", None, b"{}", None),
        ("{}", False, b"{}", None),
        (base64.b64encode(b'{"a": 1}').decode(), True, b'{"a": 1}', None),
        (base64.b64encode(b'{"a": 1}').decode(), "true", b'{"a": 1}', None),
        ("eyJh\nIjogMX0=", True, b'{"a": 1}', None),  # line-wrapped base64
        ("***", True, b"", "base64_invalid"),
        ("abc", True, b"", "base64_invalid"),  # bad padding
        ({"a": 1}, None, b"", "body_invalid"),
        ("ü", None, "ü".encode(), None),
    ],
)
def test_api_gateway_body(body, flag, decoded, problem):
    fields = {"body": body}
    if flag is not None:
        fields["isBase64Encoded"] = flag
    parsed = parse_event(apigw(**fields))
    assert isinstance(parsed, ApiGatewayRequest)
    assert parsed.body == decoded
    assert (parsed.problem.type if parsed.problem else None) == problem


def test_api_gateway_query_forms():
    parsed = parse_event(apigw(queryString={"a": "1", "b": ["2", "3"], "flag": True, "c": None},
                               queryStringParameters={"ignored": "x"}))
    assert isinstance(parsed, ApiGatewayRequest)
    assert parsed.query == {"a": "1", "b": "2", "flag": ""}
    flat = parse_event(apigw(queryString={}, queryStringParameters={"x": "y"}))
    assert isinstance(flat, ApiGatewayRequest) and flat.query == {"x": "y"}


def test_integration_response_has_exactly_the_gateway_keys():
    response = integration_response(202, {"Content-Type": "application/json"}, '{"a":1}')
    assert response == {"isBase64Encoded": False, "statusCode": 202,
                        "headers": {"Content-Type": "application/json"}, "body": '{"a":1}'}


def test_queue_records_and_their_message_ids():
    cmq = parse_event(golden("scf_cmq_topic.json"))
    assert isinstance(cmq, RecordsEvent) and cmq.triggers == ["cmq"]
    assert [r.message_id for r in cmq.records] == ["123345346", "123345347"]  # type: ignore[union-attr]
    kafka = parse_event(golden("scf_ckafka.json"))
    assert isinstance(kafka, RecordsEvent)
    (record,) = kafka.records
    assert isinstance(record, QueueMessage)
    assert (record.source, record.message_id) == ("ckafka", "restore-requests:1:36")
    # The record key is matched case-insensitively (CKafka, ckafka, cmq...).
    odd = parse_event({"Records": [{"CKafka": {"msgBody": "{}"}}, {"cmq": {"msgBody": "{}"}}]})
    assert isinstance(odd, RecordsEvent)
    assert [(r.source, r.message_id) for r in odd.records] == [  # type: ignore[union-attr]
        ("ckafka", None), ("cmq", None)
    ]


def test_mixed_records_are_each_parsed():
    event = {"Records": [golden("scf_ckafka.json")["Records"][0],
                         golden("scf_cos_restore_post.json")["Records"][0],
                         {"CMQ": {"msgBody": 42}}]}
    parsed = parse_event(event)
    assert isinstance(parsed, RecordsEvent)
    assert parsed.triggers == ["ckafka", "cmq", "cos"]
    kinds = [type(r).__name__ for r in parsed.records]
    assert kinds == ["QueueMessage", "CosRestoreNotice", "RecordProblem"]
    assert parsed.records[2].problem.type == "string_type"  # type: ignore[union-attr]


def test_timer_golden_and_its_message_id():
    timer = parse_event(golden("scf_timer.json"))
    assert isinstance(timer, TimerMessage)
    assert timer.trigger_name == "nightly-restore"
    assert timer.message_id == "timer:nightly-restore:2026-11-20T02:00:00Z"
    assert '"requests"' in timer.body


@pytest.mark.parametrize(
    ("event", "trigger", "type_"),
    [
        (golden("scf_unrecognised.json"), "unknown", "unsupported_event"),
        ([1, 2], "unknown", "unsupported_event"),
        (None, "unknown", "unsupported_event"),
        ({"Records": "x"}, "unknown", "list_type"),
        ({"Type": "Timer"}, "timer", "missing"),
        ({"httpMethod": "GET"}, "unknown", "unsupported_event"),  # no requestContext
    ],
)
def test_invalid_events(event, trigger, type_):
    parsed = parse_event(event)
    assert isinstance(parsed, InvalidEvent)
    assert (parsed.trigger, parsed.problem.type) == (trigger, type_)


def test_summaries_carry_no_payload_values():
    secret = "s3cr3t-value"
    events = [
        apigw(body=secret),
        {"Records": [{"CMQ": {"msgBody": secret}}]},
        {"Type": "Timer", "Message": secret},
        {"unknown": secret},
    ]
    for event in events:
        assert secret not in str(summarise(parse_event(event)))
