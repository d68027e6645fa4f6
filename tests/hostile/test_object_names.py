"""Object names that break naive encoders, restored end to end on both providers.

COS goes the SCF way: an API Gateway POST restores the archived object through
cos-python-sdk-v5, the status route (a signed GET) sees it ``restoring`` then ``restored`` once
the emulator's clock passes the Expedited window, and the emulator's own COS-trigger
notification (the key URL-encoded in a ``/<appid>/<bucket>/`` path, as COS sends it) comes back
through ``main_handler`` as the ``completed`` event. GCS goes the Google way: ``restore_http``
restores the soft-deleted object through google-cloud-storage, the new live generation is read
back through the SDK with the same bytes, and the status route names it. At every step the name
that comes back must be exactly the name that went in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from pydantic import SecretStr
from qcloud_cos import CosConfig, CosS3Client

from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from shared import auth
from shared.names import COS_KEY_MAX_BYTES, GCS_OBJECT_MAX_BYTES
from tests.conftest import COS_BUCKET, COS_REGION, GCS_BUCKET
from tests.gcp.conftest import WEBHOOK_SECRET
from tests.hostile.contract import check_error, check_event
from tests.tencent.conftest import SECRET as SCF_SECRET
from tests.tencent.conftest import apigw_post, golden

SECRET = SecretStr(WEBHOOK_SECRET)
EXPEDITED_SECONDS = 60  # the emulator's ARCHIVE Expedited restore time


def _sized(prefix: str, size: int) -> str:
    """A name of exactly ``size`` bytes of UTF-8, multi-byte characters included."""
    body = prefix + "\u00e9" * ((size - len(prefix.encode())) // 2)
    return body + "x" * (size - len(body.encode()))


NAMES = {
    "unicode": "unicod\u00e9/\u65e5\u672c\u8a9e/na\u00efve.txt",
    "combining": "e\u0301te\u0301/cafe\u0301 (NFD).txt",
    "emoji": "emoji/\U0001f600\U0001f389\U0001f469\u200d\U0001f469\u200d\U0001f467.bin",
    "rtl": "rtl/\u05e9\u05dc\u05d5\u05dd/\u202eevil\u202c.txt",
    "spaces": "with space/  two  spaces .txt",
    "percent": "100%/a%20b%2F%zz.txt",
    "plus": "a+b/c+d .txt",
    "question": "what?/x?y=1",
    "hash": "tag#1/#frag",
    "double_slash": "a//b///c.txt",
    "trailing_slash": "folder/",
    "tilde": "~user/~x~",
    "amp_eq_semi": "a&b=c;d/e&f=g;",
    "dots": "./a/../b/.../c.",
    "cos_longest": _sized("cos/", COS_KEY_MAX_BYTES),
    "gcs_longest": _sized("gcs/", GCS_OBJECT_MAX_BYTES),
}
GCS_ONLY = {"leading_slash": "/leading/slash.txt", "leading_double_slash": "//x/y"}
COS_NAMES = {k: v for k, v in NAMES.items() if len(v.encode()) <= COS_KEY_MAX_BYTES}
GCS_NAMES = {**NAMES, **GCS_ONLY}


@pytest.fixture(scope="module")
def notifications(cos_live) -> list[dict[str, Any]]:
    """The COS trigger events the emulator sends (it queues them only while someone listens)."""
    received: list[dict[str, Any]] = []
    cos_live.emulator.restore_notify = received.append
    return received


def _restore_header(cos_live, key: str) -> str:
    """``x-cos-restore`` as Tencent's own SDK reads it with a HEAD of the key."""
    config = CosConfig(Region=COS_REGION, SecretId=DEFAULT_SECRET_ID, SecretKey=DEFAULT_SECRET_KEY,
                       Scheme="http", IP="127.0.0.1", Port=cos_live.port)
    head = CosS3Client(config, retry=0).head_object(Bucket=COS_BUCKET, Key=key)
    return str(head.get("x-cos-restore", ""))


def _answer(result: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return result["statusCode"], json.loads(result["body"])


def _scf_status(scf, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    event = golden("scf_apigw_get.json")
    event["queryString"] = dict(query)
    signed = auth.sign_query(SCF_SECRET, query)
    event["headers"].update({name.lower(): value for name, value in signed.items()})
    return _answer(scf.main_handler(event, None))


@pytest.mark.parametrize("name", list(COS_NAMES.values()), ids=list(COS_NAMES))
def test_cos_archived_object_restores_and_completes_under_its_exact_name(
    scf, cos_live, event_file, notifications, name
):
    emulator = cos_live.emulator
    emulator.put_object(COS_BUCKET, name, b"archived:" + name.encode(), "ARCHIVE")
    event_file.new()
    request = {"provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "key": name,
               "days": 2, "tier": "Expedited",
               "request_id": "names-" + hashlib.sha256(name.encode()).hexdigest()[:16]}

    status, body = _answer(scf.main_handler(apigw_post(request), None))
    assert status == 202, body
    assert (body["outcome"]["status"], body["outcome"]["key"]) == ("initiated", name)
    # The POST ?restore the SDK sent reached the emulator under the very same key.
    assert [r["key"] for r in emulator.restore_requests() if r["key"] == name] == [name]

    query = {"provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "key": name}
    status, seen = _scf_status(scf, query)
    assert (status, seen["state"], seen["key"]) == (200, "restoring", name)
    assert 'ongoing-request="true"' in _restore_header(cos_live, name)

    emulator.clock.advance(EXPEDITED_SECONDS + 1)
    status, seen = _scf_status(scf, query)
    assert (status, seen["state"], seen["key"]) == (200, "restored", name)
    assert seen["expiry_time"]
    assert 'ongoing-request="false"' in _restore_header(cos_live, name)

    due = emulator.deliver_due_notifications()
    completions = [e for e in due
                   if e["Records"][0]["event"]["eventName"] == "cos:ObjectRestore:Completed"]
    assert len(completions) == 1
    for notification in due:
        scf.main_handler(notification, None)
    events = event_file.new()
    for event in events:
        check_event(event)
    assert [(e["data"]["outcome"], e["data"]["key"], e["data"]["request_id"]) for e in events] == [
        ("initiated", name, request["request_id"]), ("completed", name, request["request_id"])]


@pytest.mark.parametrize("name", list(GCS_NAMES.values()), ids=list(GCS_NAMES))
def test_gcs_soft_deleted_object_restores_as_a_readable_generation_under_its_exact_name(
    gcp, gcs_live, event_file, name
):
    data = b"soft-deleted:" + name.encode()
    source = int(gcs_live.emulator.put_object(GCS_BUCKET, name, data))
    gcs_live.emulator.delete_object(GCS_BUCKET, name)
    event_file.new()
    body = json.dumps({"provider": "gcs", "bucket": GCS_BUCKET, "object": name}).encode()
    response = gcp.http.post("/", data=body, headers={"Content-Type": "application/json",
                                                      **auth.sign(SECRET, body)})
    assert response.status_code == 200, response.data
    outcome = response.get_json()["outcome"]
    assert (outcome["status"], outcome["key"], outcome["generation"]) == ("completed", name,
                                                                          source)
    restored = outcome["restored_generation"]

    client = storage.Client(project="test-project", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": gcs_live.url})
    blob = client.bucket(GCS_BUCKET).get_blob(name)
    assert (blob.name, blob.generation) == (name, restored)
    assert blob.download_as_bytes() == data

    query = {"provider": "gcs", "bucket": GCS_BUCKET, "object": name}
    response = gcp.http.get("/status", query_string=query,
                            headers=auth.sign_query(SECRET, query))
    seen = response.get_json()
    assert (response.status_code, seen["state"], seen["key"], seen["live_generation"]) == (
        200, "live", name, restored)

    events = event_file.new()
    for event in events:
        check_event(event)
    assert [(e["data"]["outcome"], e["data"]["key"]) for e in events] == [("completed", name)]


def _refusal(status: int, body: dict[str, Any]) -> list[list[Any]]:
    assert status == 422, body
    check_error(body["error"])
    return [problem["loc"] for problem in body["error"]["fields"]]


REFUSED_COS_KEYS = {
    "over_850_bytes": _sized("cos/", COS_KEY_MAX_BYTES + 1),
    "leading_slash": "/leading.bin",
    "leading_backslash": "\\leading.bin",
    "dot_segment_last": "a/..",
    "line_feed": "a\nb",
    "escape_character": "a\x1bb",
}


@pytest.mark.parametrize("key", list(REFUSED_COS_KEYS.values()), ids=list(REFUSED_COS_KEYS))
def test_cos_keys_outside_tencents_rules_are_a_422_naming_the_key(scf, cos_live, key):
    before = len(cos_live.log.entries())
    request = {"provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "key": key,
               "days": 1}
    assert _refusal(*_answer(scf.main_handler(apigw_post(request), None))) == [["key"]]
    query = {"provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "key": key}
    assert _refusal(*_scf_status(scf, query)) == [["key"]]
    assert len(cos_live.log.entries()) == before  # refused before any provider call


@pytest.mark.parametrize("size", [GCS_OBJECT_MAX_BYTES + 1, 4096])
def test_gcs_names_over_1024_bytes_are_a_422_naming_the_object(gcp, gcs_live, size):
    name = _sized("gcs/", size)
    before = len(gcs_live.log.entries())
    body = json.dumps({"provider": "gcs", "bucket": GCS_BUCKET, "object": name}).encode()
    response = gcp.http.post("/", data=body, headers={"Content-Type": "application/json",
                                                      **auth.sign(SECRET, body)})
    assert _refusal(response.status_code, response.get_json()) == [["object"]]
    query = {"provider": "gcs", "bucket": GCS_BUCKET, "object": name}
    response = gcp.http.get("/status", query_string=query,
                            headers=auth.sign_query(SECRET, query))
    assert _refusal(response.status_code, response.get_json()) == [["object"]]
    assert len(gcs_live.log.entries()) == before


def test_the_longest_names_are_exactly_at_the_documented_limits():
    assert len(NAMES["cos_longest"].encode()) == COS_KEY_MAX_BYTES == 850
    assert len(NAMES["gcs_longest"].encode()) == GCS_OBJECT_MAX_BYTES == 1024
    assert len(REFUSED_COS_KEYS["over_850_bytes"].encode()) == 851
