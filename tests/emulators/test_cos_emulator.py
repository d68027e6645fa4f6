"""The COS emulator driven over real HTTP by Tencent's own clients (cos-python-sdk-v5, coscmd).

Time only moves through ``clock.advance``: nothing here sleeps to wait for the emulator.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_auth import CosS3Auth
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from emulators._http import FaultPlan, RunningEmulator, serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, CosEmulator
from emulators.cos.server import SlidingWindowLimiter

REGION = "ap-guangzhou"
BUCKET = "archive-1250000000"
HOST = f"{BUCKET}.cos.{REGION}.myqcloud.com"
HOUR = 3600.0
DAY = 86400.0
REPO = Path(__file__).resolve().parents[2]
COSCMD = Path(sys.executable).with_name("coscmd")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests honours these; a stray proxy would reroute the SDK away from the emulator.
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with serve(CosEmulator()) as running:
        yield running


def make_config(
    port: int, secret_id: str = DEFAULT_SECRET_ID, secret_key: str = DEFAULT_SECRET_KEY
) -> CosConfig:
    return CosConfig(
        Region=REGION,
        SecretId=secret_id,
        SecretKey=secret_key,
        Scheme="http",
        IP="127.0.0.1",
        Port=port,
    )


def make_client(port: int, **kwargs: Any) -> CosS3Client:
    return CosS3Client(make_config(port, **kwargs), retry=0)


@pytest.fixture
def client(emu: RunningEmulator) -> CosS3Client:
    return make_client(emu.port)


def restore(
    client: CosS3Client, key: str, days: int = 1, tier: str = "Standard", **kw: Any
) -> None:
    client.restore_object(
        Bucket=BUCKET,
        Key=key,
        RestoreRequest={"Days": days, "CASJobParameters": {"Tier": tier}},
        **kw,
    )


def service_error(call: Any, *args: Any, **kwargs: Any) -> CosServiceError:
    with pytest.raises(CosServiceError) as info:
        call(*args, **kwargs)
    return info.value


def restore_statuses(emu: RunningEmulator, key: str) -> list[int]:
    for entry in emu.emulator.restore_requests():
        if (entry["bucket"], entry["key"]) == (BUCKET, key):
            return list(entry["statuses"])
    return []


def signed(
    emu: RunningEmulator,
    method: str,
    key: str = "",
    *,
    params: dict[str, str] | None = None,
    body: bytes = b"",
    secret_key: str = DEFAULT_SECRET_KEY,
    expire: int = 300,
    host: str = HOST,
    sign: bool = True,
) -> requests.Response:
    """A raw request signed by the SDK's own signer, for what the SDK methods hide."""
    params = params or {}
    auth = CosS3Auth(make_config(emu.port, secret_key=secret_key), key, params, expire)
    return requests.request(
        method,
        f"{emu.url}/{key}",
        params=params,
        data=body,
        headers={"Host": host},
        auth=auth if sign else None,
        timeout=10,
    )


def md5hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def parse_xml(data: bytes) -> ET.Element:
    return ET.fromstring(data)  # noqa: S314 - the emulator's own answer


def control(emu: RunningEmulator, method: str, verb: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{emu.url}/_emulator/{verb}", data=data, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


# ---------------------------------------------------------------- objects


def test_put_head_get_delete_standard_object(emu: RunningEmulator, client: CosS3Client) -> None:
    put = client.put_object(Bucket=BUCKET, Key="docs/a.txt", Body=b"hello")
    assert put["ETag"] == '"' + md5hex(b"hello") + '"'

    head = client.head_object(Bucket=BUCKET, Key="docs/a.txt")
    assert head["Content-Length"] == "5"
    assert head["ETag"] == put["ETag"]
    assert head["x-cos-request-id"]
    assert head["x-cos-trace-id"]
    assert parsedate_to_datetime(head["Last-Modified"]).year >= 2024
    # STANDARD objects carry no storage-class header, and nothing was ever restored.
    assert "x-cos-storage-class" not in head
    assert "x-cos-restore" not in head

    got = client.get_object(Bucket=BUCKET, Key="docs/a.txt")
    assert got["Body"].get_raw_stream().read() == b"hello"

    client.delete_object(Bucket=BUCKET, Key="docs/a.txt")
    assert emu.log.entries()[-1].status == 204
    err = service_error(client.head_object, Bucket=BUCKET, Key="docs/a.txt")
    assert err.get_status_code() == 404
    assert err.get_error_code() == "NoSuchResource"  # the SDK's name for a bodiless HEAD 404


def test_storage_class_header_round_trips(client: CosS3Client) -> None:
    for cls in ("STANDARD_IA", "ARCHIVE", "DEEP_ARCHIVE", "INTELLIGENT_TIERING"):
        client.put_object(Bucket=BUCKET, Key=f"k-{cls}", Body=b"x", StorageClass=cls)
        assert client.head_object(Bucket=BUCKET, Key=f"k-{cls}")["x-cos-storage-class"] == cls
    err = service_error(
        client.put_object, Bucket=BUCKET, Key="bad", Body=b"x", StorageClass="GLACIER"
    )
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")


def test_get_archived_object_is_403_invalid_object_state(client: CosS3Client) -> None:
    client.put_object(Bucket=BUCKET, Key="cold", Body=b"ice", StorageClass="ARCHIVE")
    err = service_error(client.get_object, Bucket=BUCKET, Key="cold")
    assert (err.get_status_code(), err.get_error_code()) == (403, "InvalidObjectState")
    # HEAD still works on an archived object.
    assert client.head_object(Bucket=BUCKET, Key="cold")["x-cos-storage-class"] == "ARCHIVE"


def test_list_objects_paginates_with_max_keys_and_marker(client: CosS3Client) -> None:
    keys = sorted(["a/1", "a/2", "a/3 space", "b/ü+plus", "c"])
    for i, key in enumerate(keys):
        cls = "ARCHIVE" if i % 2 else "STANDARD"
        client.put_object(Bucket=BUCKET, Key=key, Body=b"x" * i, StorageClass=cls)

    seen: list[str] = []
    marker = ""
    pages = 0
    while True:
        page = client.list_objects(Bucket=BUCKET, MaxKeys=2, Marker=marker)
        pages += 1
        assert page["Name"] == BUCKET
        assert page["MaxKeys"] == "2"
        seen += [c["Key"] for c in page["Contents"]]
        if page["IsTruncated"] == "false":
            assert "NextMarker" not in page
            break
        assert page["IsTruncated"] == "true"
        marker = page["NextMarker"]
        assert marker == seen[-1]
    assert pages == 3
    assert seen == keys  # sorted, no duplicates, unusual characters decoded back

    everything = client.list_objects(Bucket=BUCKET)["Contents"]
    by_key = {c["Key"]: c for c in everything}
    assert by_key["a/2"]["StorageClass"] == "ARCHIVE"
    assert by_key["a/1"]["StorageClass"] == "STANDARD"
    assert by_key["c"]["Size"] == "4"
    assert by_key["c"]["ETag"] == '"' + md5hex(b"xxxx") + '"'
    assert by_key["c"]["Owner"]["ID"]
    assert by_key["c"]["LastModified"].endswith("Z")

    prefixed = client.list_objects(Bucket=BUCKET, Prefix="a/")
    assert [c["Key"] for c in prefixed["Contents"]] == ["a/1", "a/2", "a/3 space"]

    grouped = client.list_objects(Bucket=BUCKET, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "b/"]
    assert [c["Key"] for c in grouped["Contents"]] == ["c"]

    # Common prefixes count against max-keys and the marker resumes after them.
    first = client.list_objects(Bucket=BUCKET, Delimiter="/", MaxKeys=1)
    assert first["IsTruncated"] == "true"
    assert [p["Prefix"] for p in first["CommonPrefixes"]] == ["a/"]
    second = client.list_objects(
        Bucket=BUCKET, Delimiter="/", MaxKeys=5, Marker=first["NextMarker"]
    )
    assert [p["Prefix"] for p in second["CommonPrefixes"]] == ["b/"]
    assert [c["Key"] for c in second["Contents"]] == ["c"]


def test_unknown_bucket_and_bucket_api(emu: RunningEmulator, client: CosS3Client) -> None:
    err = service_error(client.list_objects, Bucket="nothing-1250000000")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchBucket")
    client.create_bucket(Bucket="fresh-1250000000")
    assert client.list_objects(Bucket="fresh-1250000000").get("Contents", []) == []
    err = service_error(client.create_bucket, Bucket="fresh-1250000000")
    assert (err.get_status_code(), err.get_error_code()) == (409, "BucketAlreadyOwnedByYou")


# ---------------------------------------------------------------- restore state machine


def test_restore_lifecycle(emu: RunningEmulator, client: CosS3Client) -> None:
    clock = emu.emulator.clock
    client.put_object(Bucket=BUCKET, Key="cold.bin", Body=b"payload", StorageClass="ARCHIVE")

    restore(client, "cold.bin", days=2, tier="Standard")
    assert restore_statuses(emu, "cold.bin") == [202]
    head = client.head_object(Bucket=BUCKET, Key="cold.bin")
    assert head["x-cos-restore"] == 'ongoing-request="true"'
    status = head["x-cos-restore-status"]
    assert status.startswith('tier="standard"; request-date="')
    requested = parsedate_to_datetime(status.split('request-date="')[1].rstrip('"')).timestamp()
    assert abs(requested - clock.now()) < 5
    err = service_error(client.get_object, Bucket=BUCKET, Key="cold.bin")
    assert err.get_error_code() == "InvalidObjectState"

    err = service_error(restore, client, "cold.bin", days=2)
    assert (err.get_status_code(), err.get_error_code()) == (409, "RestoreAlreadyInProgress")
    assert restore_statuses(emu, "cold.bin") == [202, 409]

    clock.advance(3 * HOUR - 30)  # ARCHIVE Standard takes 3 h of emulated time
    assert client.head_object(Bucket=BUCKET, Key="cold.bin")["x-cos-restore"] == (
        'ongoing-request="true"'
    )
    clock.advance(60)
    head = client.head_object(Bucket=BUCKET, Key="cold.bin")
    assert head["x-cos-restore"].startswith('ongoing-request="false", expiry-date="')
    assert "x-cos-restore-status" not in head
    expiry = parsedate_to_datetime(head["x-cos-restore"].split('expiry-date="')[1].rstrip('"'))
    assert abs(expiry.timestamp() - (requested + 3 * HOUR + 2 * DAY)) < 5
    got = client.get_object(Bucket=BUCKET, Key="cold.bin")
    assert got["Body"].get_raw_stream().read() == b"payload"
    assert got["x-cos-restore"] == head["x-cos-restore"]

    # A repeat restore on a readable copy is a 200 that moves the expiry to now + Days.
    clock.advance(DAY)
    restore(client, "cold.bin", days=5)
    assert restore_statuses(emu, "cold.bin")[-1] == 200
    moved = client.head_object(Bucket=BUCKET, Key="cold.bin")["x-cos-restore"]
    new_expiry = parsedate_to_datetime(moved.split('expiry-date="')[1].rstrip('"')).timestamp()
    assert abs(new_expiry - (clock.now() + 5 * DAY)) < 5
    assert new_expiry > expiry.timestamp() + 2 * DAY

    # Past the expiry the copy is gone: header absent, GET refused, a new restore allowed.
    clock.advance(5 * DAY + 10)
    head = client.head_object(Bucket=BUCKET, Key="cold.bin")
    assert "x-cos-restore" not in head
    assert "x-cos-restore-status" not in head
    err = service_error(client.get_object, Bucket=BUCKET, Key="cold.bin")
    assert (err.get_status_code(), err.get_error_code()) == (403, "InvalidObjectState")
    state = emu.emulator.restore_state(BUCKET, "cold.bin")
    assert state["status"] == "none"
    assert len(state["history"]) == 1
    restore(client, "cold.bin", days=1, tier="Bulk")
    assert restore_statuses(emu, "cold.bin") == [202, 409, 200, 202]
    head = client.head_object(Bucket=BUCKET, Key="cold.bin")
    assert head["x-cos-restore-status"].startswith('tier="bulk"')


def test_default_durations_per_class_and_tier(emu: RunningEmulator, client: CosS3Client) -> None:
    clock = emu.emulator.clock
    cases = [
        ("ARCHIVE", "Expedited", 60.0),
        ("ARCHIVE", "Bulk", 5 * HOUR),
        ("DEEP_ARCHIVE", "Standard", 12 * HOUR),
        ("DEEP_ARCHIVE", "Bulk", 24 * HOUR),
    ]
    for cls, tier, _ in cases:
        client.put_object(Bucket=BUCKET, Key=f"{cls}-{tier}", Body=b"x", StorageClass=cls)
        restore(client, f"{cls}-{tier}", tier=tier)
    elapsed = 0.0
    for cls, tier, seconds in sorted(cases, key=lambda c: c[2]):
        clock.advance(seconds - 30 - elapsed)
        state = emu.emulator.restore_state(BUCKET, f"{cls}-{tier}")
        assert state["status"] == "ongoing", (cls, tier)
        clock.advance(60)
        elapsed = seconds + 30
        assert emu.emulator.restore_state(BUCKET, f"{cls}-{tier}")["status"] == "readable"


def test_restore_durations_can_be_overridden() -> None:
    emulator = CosEmulator(restore_durations={("DEEP_ARCHIVE", "Bulk"): 10})
    with serve(emulator) as running:
        client = make_client(running.port)
        client.put_object(Bucket=BUCKET, Key="deep", Body=b"x", StorageClass="DEEP_ARCHIVE")
        restore(client, "deep", tier="Bulk")
        emulator.clock.advance(11)
        assert client.get_object(Bucket=BUCKET, Key="deep")["Body"].get_raw_stream().read() == b"x"
    with pytest.raises(ValueError, match="unknown restore duration"):
        CosEmulator(restore_durations={("STANDARD", "Bulk"): 1})


def test_restore_errors(emu: RunningEmulator, client: CosS3Client) -> None:
    client.put_object(Bucket=BUCKET, Key="std", Body=b"x")
    client.put_object(Bucket=BUCKET, Key="ia", Body=b"x", StorageClass="STANDARD_IA")
    client.put_object(Bucket=BUCKET, Key="deep", Body=b"x", StorageClass="DEEP_ARCHIVE")
    client.put_object(Bucket=BUCKET, Key="arch", Body=b"x", StorageClass="ARCHIVE")

    for key in ("std", "ia"):
        err = service_error(restore, client, key)
        assert (err.get_status_code(), err.get_error_code()) == (405, "RestoreNonArchiveObject")

    err = service_error(restore, client, "missing")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchKey")
    assert err.get_request_id()
    assert err.get_error_msg()

    for days in (0, 366, -1):
        err = service_error(restore, client, "arch", days=days)
        assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")
    err = service_error(restore, client, "arch", tier="Immediate")
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")

    err = service_error(restore, client, "deep", tier="Expedited")
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")
    assert "Expedited" in err.get_error_msg()

    for body in (b"<RestoreRequest><Days>1</Days>", b"", b"<Other/>", b"<RestoreRequest/>"):
        raw = signed(emu, "POST", "arch", params={"restore": ""}, body=body)
        assert raw.status_code == 400
        assert parse_xml(raw.content).findtext("Code") == "MalformedXML"

    # None of the refused requests started anything; Days=365 is still allowed.
    assert emu.emulator.restore_state(BUCKET, "arch")["status"] == "none"
    assert emu.emulator.restore_state(BUCKET, "deep")["status"] == "none"
    restore(client, "arch", days=365)
    assert emu.emulator.restore_state(BUCKET, "arch")["days"] == 365


def test_intelligent_tiering_archive_tier_needs_restore(
    emu: RunningEmulator, client: CosS3Client
) -> None:
    emu.emulator.put_object(BUCKET, "it-arch", b"x", "INTELLIGENT_TIERING", storage_tier="ARCHIVE")
    emu.emulator.put_object(BUCKET, "it-hot", b"x", "INTELLIGENT_TIERING", storage_tier="FREQUENT")
    assert client.head_object(Bucket=BUCKET, Key="it-arch")["x-cos-storage-tier"] == "ARCHIVE"
    assert service_error(client.get_object, Bucket=BUCKET, Key="it-arch").get_status_code() == 403
    restore(client, "it-arch", tier="Expedited")
    assert restore_statuses(emu, "it-arch") == [202]
    assert client.get_object(Bucket=BUCKET, Key="it-hot")["Body"].get_raw_stream().read() == b"x"
    err = service_error(restore, client, "it-hot")
    assert err.get_error_code() == "RestoreNonArchiveObject"


def test_version_ids(emu: RunningEmulator, client: CosS3Client) -> None:
    client.put_object(Bucket=BUCKET, Key="v", Body=b"x", StorageClass="ARCHIVE")
    version = client.head_object(Bucket=BUCKET, Key="v")["x-cos-version-id"]
    assert version
    assert client.head_object(Bucket=BUCKET, Key="v", VersionId=version)["ETag"]
    err = service_error(restore, client, "v", VersionId="not-a-version")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchVersion")
    restore(client, "v", VersionId=version)
    err = service_error(restore, client, "v", VersionId="null")
    assert err.get_error_code() == "RestoreAlreadyInProgress"
    assert restore_statuses(emu, "v") == [404, 202, 409]


def test_concurrent_restores_create_exactly_one_job(emu: RunningEmulator) -> None:
    emu.emulator.put_object(BUCKET, "shared", b"x", "ARCHIVE")

    def attempt(_: int) -> int:
        try:
            restore(make_client(emu.port), "shared")
        except CosServiceError as err:
            return int(err.get_status_code())
        return 202

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = sorted(pool.map(attempt, range(8)))
    assert outcomes == [202] + [409] * 7
    [entry] = emu.emulator.restore_requests()
    assert (entry["received"], entry["accepted"]) == (8, 1)


# ---------------------------------------------------------------- rate limit


def test_restore_rate_limit_answers_503_slowdown() -> None:
    emulator = CosEmulator(restore_rate_limit=1)
    emulator.put_object(BUCKET, "one", b"x", "ARCHIVE")
    emulator.put_object(BUCKET, "two", b"x", "ARCHIVE")
    with serve(emulator) as running:
        client = make_client(running.port)
        # Other requests do not count against the restore limit.
        for _ in range(5):
            client.head_object(Bucket=BUCKET, Key="one")
        restore(client, "one")
        err = service_error(restore, client, "two")
        assert (err.get_status_code(), err.get_error_code()) == (503, "SlowDown")
        assert err.get_request_id()
    assert emulator.restore_state(BUCKET, "two")["status"] == "none"
    assert emulator.restore_state(BUCKET, "one")["status"] == "ongoing"


def test_sliding_window_limiter_boundaries() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter(2, window=1.0, now=lambda: now[0])
    admitted = []
    for t in (0.0, 0.1, 0.2, 0.99, 1.0, 1.05, 1.1, 1.2):
        now[0] = t
        admitted.append(limiter.admit())
    # 0.0 and 0.1 fill the window; 1.0 is the first instant 0.0 has left it, 1.1 frees 0.1's slot.
    assert admitted == [True, True, False, False, True, False, True, False]
    assert all(SlidingWindowLimiter(0).admit() for _ in range(1000))


# ---------------------------------------------------------------- signatures


def test_wrong_secret_key_is_signature_does_not_match(emu: RunningEmulator) -> None:
    emu.emulator.put_object(BUCKET, "k", b"x", "ARCHIVE")
    bad = make_client(emu.port, secret_key="not-the-key")
    err = service_error(restore, bad, "k")
    assert (err.get_status_code(), err.get_error_code()) == (403, "SignatureDoesNotMatch")
    assert emu.emulator.restore_state(BUCKET, "k")["status"] == "none"


def test_unknown_secret_id(emu: RunningEmulator) -> None:
    stranger = make_client(emu.port, secret_id="AKIDSOMEONEELSE")
    err = service_error(stranger.list_objects, Bucket=BUCKET)
    assert (err.get_status_code(), err.get_error_code()) == (403, "InvalidAccessKeyId")


def test_signature_covers_path_method_and_time(emu: RunningEmulator) -> None:
    emu.emulator.put_object(BUCKET, "a", b"x", "STANDARD")
    emu.emulator.put_object(BUCKET, "b", b"x", "STANDARD")
    assert signed(emu, "GET", "a").status_code == 200

    # A signature made for key "a" replayed on key "b".
    auth = CosS3Auth(make_config(emu.port), "a", {}, 300)
    prepared = requests.Request("GET", f"{emu.url}/a", headers={"Host": HOST}).prepare()
    header = auth(prepared).headers["Authorization"]
    replay = requests.get(
        f"{emu.url}/b", headers={"Host": HOST, "Authorization": header}, timeout=10
    )
    assert replay.status_code == 403
    root = parse_xml(replay.content)
    assert root.findtext("Code") == "SignatureDoesNotMatch"
    assert root.findtext("StringToSign", "").startswith("sha1\n")

    unsigned = signed(emu, "GET", "a", sign=False)
    assert unsigned.status_code == 403
    assert parse_xml(unsigned.content).findtext("Code") == "AccessDenied"

    expired = signed(emu, "GET", "a", expire=-120)  # window ended 60 s ago (real time)
    assert expired.status_code == 403
    assert parse_xml(expired.content).findtext("Code") == "AccessDenied"
    assert "expired" in (parse_xml(expired.content).findtext("Message") or "")


def test_presigned_url_query_string_auth(emu: RunningEmulator) -> None:
    emu.emulator.put_object(BUCKET, "dl/file name.txt", b"data", "STANDARD")
    # Sign for the real endpoint, then reach the emulator as a proxy, as a browser would.
    real = CosS3Client(
        CosConfig(
            Region=REGION,
            SecretId=DEFAULT_SECRET_ID,
            SecretKey=DEFAULT_SECRET_KEY,
            Scheme="http",
        )
    )
    url = real.get_presigned_url(Bucket=BUCKET, Key="dl/file name.txt", Method="GET")
    assert "q-signature=" in url
    proxies = {"http": emu.url}
    assert requests.get(url, proxies=proxies, timeout=10).content == b"data"
    tampered = url.replace("q-signature=", "q-signature=0")
    assert requests.get(tampered, proxies=proxies, timeout=10).status_code == 403


def test_verify_signatures_off_accepts_anything() -> None:
    with serve(CosEmulator(verify_signatures=False)) as running:
        make_client(running.port, secret_key="whatever").put_object(
            Bucket=BUCKET, Key="k", Body=b"x"
        )
        assert signed(running, "GET", "k", sign=False).content == b"x"


# ---------------------------------------------------------------- error shape


def test_error_body_has_all_fields_the_sdk_needs(emu: RunningEmulator) -> None:
    emu.emulator.create_bucket(BUCKET)
    raw = signed(emu, "GET", "no/such key")
    assert raw.status_code == 404
    assert raw.headers["Content-Type"] == "application/xml"
    assert raw.content.startswith(b"<?xml version='1.0' encoding='utf-8' ?><Error>")
    root = parse_xml(raw.content)
    fields = {name: root.findtext(name) for name in ("Code", "Message", "Resource", "RequestId")}
    assert all(fields.values()), fields
    assert fields["Code"] == "NoSuchKey"
    assert fields["RequestId"] == raw.headers["x-cos-request-id"]
    assert root.findtext("TraceId") == raw.headers["x-cos-trace-id"]
    assert fields["Resource"] == f"{HOST}/no/such%20key"

    head = signed(emu, "HEAD", "no/such key")
    assert head.status_code == 404
    assert head.content == b""
    assert head.headers["Content-Length"] == "0"
    assert head.headers["x-cos-request-id"]

    bad_host = signed(emu, "GET", "x", host="127.0.0.1")
    assert bad_host.status_code == 400
    assert parse_xml(bad_host.content).findtext("Code") == "InvalidURI"

    unmodelled = signed(emu, "GET", "x", params={"acl": ""})
    assert unmodelled.status_code == 501


# ---------------------------------------------------------------- faults, log, control API


def test_injected_503_then_success(emu: RunningEmulator, client: CosS3Client) -> None:
    emu.emulator.put_object(BUCKET, "k", b"x", "ARCHIVE")
    emu.faults.set(FaultPlan(script=[503]))
    err = service_error(restore, client, "k")
    assert (err.get_status_code(), err.get_error_code()) == (503, "SlowDown")
    assert err.get_request_id()
    assert emu.emulator.restore_state(BUCKET, "k")["status"] == "none"
    restore(client, "k")
    assert restore_statuses(emu, "k") == [503, 202]
    assert [e.fault for e in emu.log.entries()] == ["injected", None]


def test_injected_statuses_carry_the_restore_api_codes(
    emu: RunningEmulator, client: CosS3Client
) -> None:
    emu.emulator.put_object(BUCKET, "k", b"x", "ARCHIVE")
    emu.faults.set(FaultPlan(script=[409, 500, 404], match_path="restore"))
    codes = [service_error(restore, client, "k").get_error_code() for _ in range(3)]
    assert codes == ["RestoreAlreadyInProgress", "InternalError", "NoSuchKey"]
    emu.faults.set(FaultPlan(script=[409]))
    assert service_error(client.head_object, Bucket=BUCKET, Key="k").get_status_code() == 409
    assert emu.emulator.restore_state(BUCKET, "k")["status"] == "none"


def test_injected_reset_is_a_client_error(emu: RunningEmulator, client: CosS3Client) -> None:
    emu.emulator.put_object(BUCKET, "k", b"x", "ARCHIVE")
    control(emu, "POST", "faults", {"script": [0], "match_method": "POST"})
    with pytest.raises(CosClientError):
        restore(client, "k")
    assert emu.log.entries()[-1].fault == "reset"
    assert emu.emulator.restore_state(BUCKET, "k")["status"] == "none"
    restore(client, "k")
    assert emu.emulator.restore_state(BUCKET, "k")["status"] == "ongoing"


def test_sdk_retry_after_500_creates_one_job(emu: RunningEmulator) -> None:
    emu.emulator.put_object(BUCKET, "k", b"x", "ARCHIVE")
    emu.faults.set(FaultPlan(script=[500]))
    retrying = CosS3Client(make_config(emu.port), retry=1)  # the SDK itself sleeps 1 s
    restore(retrying, "k")
    [entry] = emu.emulator.restore_requests()
    assert entry["statuses"] == [500, 202]
    assert entry["accepted"] == 1


def test_request_log_records_restores(emu: RunningEmulator, client: CosS3Client) -> None:
    emu.emulator.put_object(BUCKET, "logged", b"x", "ARCHIVE")
    restore(client, "logged", days=3, tier="Bulk")
    client.head_object(Bucket=BUCKET, Key="logged")
    post, head = emu.log.entries()
    assert (post.method, post.host, post.path, post.query, post.status) == (
        "POST",
        HOST,
        "/logged",
        {"restore": ""},
        202,
    )
    assert post.headers["authorization"] == "<redacted>"
    assert post.body_size > 0
    assert (head.method, head.status) == ("HEAD", 200)
    over_http = control(emu, "GET", "requests")
    assert [(e["method"], e["status"]) for e in over_http] == [("POST", 202), ("HEAD", 200)]


def test_control_api(emu: RunningEmulator, client: CosS3Client) -> None:
    seeded = control(
        emu,
        "POST",
        "objects",
        {"bucket": BUCKET, "key": "seed/1", "body": "seeded", "storage_class": "DEEP_ARCHIVE"},
    )
    assert seeded["storage_class"] == "DEEP_ARCHIVE"
    head = client.head_object(Bucket=BUCKET, Key="seed/1")
    assert head["x-cos-storage-class"] == "DEEP_ARCHIVE"
    assert head["Content-Length"] == "6"

    restore(client, "seed/1", days=2, tier="Standard")
    [listed] = control(emu, "GET", f"objects?bucket={BUCKET}")
    assert listed["key"] == "seed/1"
    assert listed["restore"]["status"] == "ongoing"
    assert listed["restore"]["x_cos_restore"] == 'ongoing-request="true"'
    assert control(emu, "GET", "restore-requests") == [
        {"bucket": BUCKET, "key": "seed/1", "received": 1, "accepted": 1, "statuses": [202]}
    ]

    control(emu, "POST", "clock", {"advance": 12 * HOUR + 1})
    state = control(emu, "GET", f"restore-state?bucket={BUCKET}&key=seed/1")
    assert state["status"] == "readable"
    assert state["expires_at"] == pytest.approx(state["completes_at"] + 2 * DAY)
    assert client.get_object(Bucket=BUCKET, Key="seed/1")["Body"].get_raw_stream().read() == (
        b"seeded"
    )

    settings = control(emu, "POST", "settings", {"restore_rate_limit": 7})
    assert settings["restore_rate_limit"] == 7
    assert emu.emulator.restore_rate_limit == 7
    control(emu, "DELETE", "restore-requests")
    assert emu.emulator.restore_requests() == []


# ---------------------------------------------------------------- other clients / entry points


def _coscmd_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["http_proxy"] = f"http://127.0.0.1:{port}"
    return env


def test_coscmd_restore_through_proxy(emu: RunningEmulator, tmp_path: Path) -> None:
    if not COSCMD.exists():
        pytest.skip("coscmd is not installed in this environment")
    emu.emulator.put_object(BUCKET, "dir/obj.bin", b"x", "ARCHIVE")
    conf = tmp_path / "cos.conf"
    subprocess.run(
        [str(COSCMD), "-c", str(conf), "config", "-a", DEFAULT_SECRET_ID, "-s", DEFAULT_SECRET_KEY,
         "-b", BUCKET, "-r", REGION, "--do-not-use-ssl"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert "schema = http" in conf.read_text()

    def coscmd_restore() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(COSCMD), "-c", str(conf), "restore", "dir/obj.bin", "-d", "3", "-t", "Expedited"],
            capture_output=True, text=True, timeout=120, env=_coscmd_env(emu.port),
        )  # fmt: skip

    first = coscmd_restore()
    assert first.returncode == 0, first.stderr
    state = emu.emulator.restore_state(BUCKET, "dir/obj.bin")
    assert (state["status"], state["tier"], state["days"]) == ("ongoing", "Expedited", 3)
    [entry] = emu.log.entries()
    assert entry.host == HOST  # it arrived as a proxy request for the real endpoint
    assert entry.headers["user-agent"].startswith("coscmd")

    # coscmd recognises the 409 as "already in progress" (its own spelling), though its
    # single-file restore still exits with -1.
    second = coscmd_restore()
    assert "already in pogress" in second.stderr
    assert second.returncode == 255
    assert restore_statuses(emu, "dir/obj.bin") == [202, 409]


def test_standalone_entry_point() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.cos", "--port", "0", "--rate-limit", "5"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "COS emulator listening on http://127.0.0.1:" in line
        url = line.split()[-1]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{url}/_emulator/settings", timeout=10) as response:
            assert json.loads(response.read())["restore_rate_limit"] == 5
    finally:
        proc.terminate()
        proc.wait(timeout=10)
