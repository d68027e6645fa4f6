"""The GCS emulator driven by the real google-cloud-storage client over real HTTP.

No test sleeps: emulated time moves with ``emu.emulator.clock.advance``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import google_crc32c
import pytest
import requests
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from emulators._http import FaultPlan, RunningEmulator, serve
from emulators.gcs import GcsEmulator
from emulators.gcs.store import rfc3339

WEEK = 7 * 86_400


def make_client(url: str) -> storage.Client:
    return storage.Client(
        project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    # Bulk restores take a minute of emulated time here, so a slow machine cannot finish one
    # between two calls of a test: only ``clock.advance`` does.
    with serve(GcsEmulator(bulk_restore_seconds=60.0)) as running:
        yield running


@pytest.fixture
def client(emu: RunningEmulator) -> storage.Client:
    return make_client(emu.url)


@pytest.fixture
def bucket(client: storage.Client) -> storage.Bucket:
    return client.create_bucket("soft-bucket")


def reason(exc: pytest.ExceptionInfo[exceptions.GoogleAPICallError]) -> str:
    errors = exc.value.errors
    if not errors:
        # Upload failures come through the media layer, which leaves ``errors`` empty: the
        # JSON error body is still on the response.
        errors = exc.value.response.json()["error"]["errors"]
    return str(errors[0]["reason"])


def upload(bucket: storage.Bucket, name: str, data: bytes) -> storage.Blob:
    blob = bucket.blob(name)
    blob.upload_from_string(data, content_type="text/plain")
    return blob


def deleted(bucket: storage.Bucket, name: str, data: bytes = b"payload") -> int:
    """Upload then delete ``name``; return the now soft-deleted generation."""
    blob = upload(bucket, name, data)
    generation = int(blob.generation)
    bucket.delete_blob(name)
    return generation


def states(emu: RunningEmulator, bucket: str, name: str) -> list[str]:
    return [g["state"] for g in emu.emulator.generations(bucket, name)]


# --- buckets ---------------------------------------------------------------------------------


def test_bucket_defaults_to_seven_day_soft_delete(client: storage.Client) -> None:
    created = client.create_bucket("bkt1")
    fetched = client.get_bucket("bkt1")
    assert created.soft_delete_policy.retention_duration_seconds == WEEK
    assert fetched.soft_delete_policy.retention_duration_seconds == WEEK
    assert fetched.versioning_enabled is False
    assert fetched.retention_period is None


def test_unknown_bucket_is_not_found_on_every_route(client: storage.Client) -> None:
    ghost = client.bucket("ghost")
    with pytest.raises(exceptions.NotFound) as exc:
        client.get_bucket("ghost")
    assert reason(exc) == "notFound"
    with pytest.raises(exceptions.NotFound):
        list(ghost.list_blobs())
    with pytest.raises(exceptions.NotFound):
        ghost.blob("x").upload_from_string(b"x")
    with pytest.raises(exceptions.NotFound):
        ghost.restore_blob("x", generation=1, retry=None)


@pytest.mark.parametrize(
    ("seconds", "ok"),
    [(0, True), (WEEK, True), (90 * 86_400, True), (3 * 86_400, False), (91 * 86_400, False)],
)
def test_soft_delete_policy_validation(client: storage.Client, seconds: int, ok: bool) -> None:
    bucket = client.bucket(f"policy-{seconds}")
    bucket.soft_delete_policy.retention_duration_seconds = seconds
    if ok:
        bucket.create()
        assert client.get_bucket(bucket.name).soft_delete_policy.retention_duration_seconds == (
            seconds
        )
    else:
        with pytest.raises(exceptions.BadRequest) as exc:
            bucket.create()
        assert reason(exc) == "invalid"


def test_patch_bucket_turns_soft_delete_off(emu: RunningEmulator, bucket: storage.Bucket) -> None:
    bucket.soft_delete_policy.retention_duration_seconds = 0
    bucket.patch()
    assert bucket.soft_delete_policy.retention_duration_seconds == 0
    upload(bucket, "gone", b"x")
    bucket.delete_blob("gone")
    assert emu.emulator.generations("soft-bucket", "gone") == []


def test_duplicate_bucket_conflicts(client: storage.Client, bucket: storage.Bucket) -> None:
    with pytest.raises(exceptions.Conflict):
        client.create_bucket(bucket.name)


# --- uploads and downloads -------------------------------------------------------------------


def test_multipart_upload_roundtrip_with_real_checksums(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    data = b"hello soft delete"
    blob = bucket.blob("greeting.txt")
    blob.metadata = {"owner": "tests"}
    blob.upload_from_string(data, content_type="text/plain")

    fetched = bucket.get_blob("greeting.txt")
    assert fetched is not None
    assert fetched.size == len(data)
    assert fetched.content_type == "text/plain"
    assert fetched.metadata == {"owner": "tests"}
    assert (
        fetched.md5_hash
        == base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    )
    crc = google_crc32c.value(data).to_bytes(4, "big")
    assert fetched.crc32c == base64.b64encode(crc).decode()
    assert fetched.metageneration == 1
    assert fetched.generation == blob.generation
    assert bucket.blob("greeting.txt").download_as_bytes() == data
    uploads = [e for e in emu.log.entries() if e.path.startswith("/upload/")]
    assert [e.query.get("uploadType") for e in uploads] == ["multipart"]


def test_resumable_upload_in_chunks_and_ranged_download(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    data = bytes(range(256)) * 2600  # 650 KiB: three 256 KiB chunks
    blob = bucket.blob("big.bin", chunk_size=256 * 1024)
    blob.upload_from_file(io.BytesIO(data))  # no size given: the client goes resumable

    puts = [e for e in emu.log.entries() if e.method == "PUT"]
    assert len(puts) == 3
    assert puts[0].headers["content-range"] == "bytes 0-262143/*"
    assert puts[-1].headers["content-range"].endswith(f"/{len(data)}")
    assert [e.status for e in puts] == [308, 308, 200]

    reader = bucket.blob("big.bin", chunk_size=256 * 1024)
    assert reader.download_as_bytes() == data
    ranged = [e for e in emu.log.entries() if e.headers.get("range")]
    assert len(ranged) == 3
    assert all(e.status == 206 for e in ranged)


def test_upload_if_generation_match_zero_refuses_overwrite(bucket: storage.Bucket) -> None:
    upload(bucket, "once", b"1")
    with pytest.raises(exceptions.PreconditionFailed) as exc:
        bucket.blob("once").upload_from_string(b"2", if_generation_match=0)
    assert reason(exc) == "conditionNotMet"
    assert bucket.blob("once").download_as_bytes() == b"1"


@pytest.mark.parametrize(
    "name",
    [
        "dir/sub dir/ünïcødé ✓.txt",
        "100%+plus?query#hash&amp=1",
        "a" * 1024,
        "é" * 512,  # 1024 bytes in UTF-8
        "double//slash/",
        "~tilde restore",
    ],
)
def test_awkward_names_roundtrip_through_delete_and_restore(
    bucket: storage.Bucket, name: str
) -> None:
    data = name.encode()[:64]
    generation = deleted(bucket, name, data)
    listed = list(bucket.list_blobs(soft_deleted=True, prefix=name[:5]))
    assert [b.name for b in listed] == [name]
    soft = bucket.get_blob(name, generation=generation, soft_deleted=True)
    assert soft is not None
    assert soft.name == name
    restored = bucket.restore_blob(name, generation=generation, if_generation_match=0)
    assert restored.name == name
    assert bucket.blob(name).download_as_bytes() == data


def test_name_longer_than_1024_bytes_is_rejected(bucket: storage.Bucket) -> None:
    with pytest.raises(exceptions.BadRequest) as exc:
        bucket.blob("é" * 513).upload_from_string(b"x")
    assert reason(exc) == "invalid"


# --- soft delete and listing ----------------------------------------------------------------


def test_delete_soft_deletes_with_hard_delete_time(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    generation = deleted(bucket, "doc.txt")

    assert bucket.get_blob("doc.txt") is None
    assert list(bucket.list_blobs()) == []
    (soft,) = bucket.list_blobs(soft_deleted=True)
    assert soft.generation == generation
    assert soft.soft_delete_time is not None
    assert soft.hard_delete_time - soft.soft_delete_time == timedelta(seconds=WEEK)
    fetched = bucket.get_blob("doc.txt", generation=generation, soft_deleted=True)
    assert fetched is not None
    assert fetched.hard_delete_time == soft.hard_delete_time
    assert states(emu, "soft-bucket", "doc.txt") == ["soft-deleted"]


def test_get_soft_deleted_requires_generation(
    client: storage.Client, bucket: storage.Bucket
) -> None:
    deleted(bucket, "doc.txt")
    with pytest.raises(exceptions.BadRequest):
        client._connection.api_request(
            method="GET", path="/b/soft-bucket/o/doc.txt", query_params={"softDeleted": "true"}
        )


def test_soft_deleted_and_versions_cannot_combine(bucket: storage.Bucket) -> None:
    with pytest.raises(exceptions.BadRequest):
        list(bucket.list_blobs(soft_deleted=True, versions=True))


def test_soft_deleted_listing_is_oldest_generation_first(bucket: storage.Bucket) -> None:
    first = deleted(bucket, "x", b"1")
    second = deleted(bucket, "x", b"2")
    gens = [b.generation for b in bucket.list_blobs(soft_deleted=True)]
    assert gens == [first, second]
    assert first < second


def test_hard_delete_time_passing_makes_the_object_gone(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    generation = deleted(bucket, "doc.txt")
    emu.emulator.clock.advance(WEEK - 60)
    assert len(list(bucket.list_blobs(soft_deleted=True))) == 1
    emu.emulator.clock.advance(61)
    assert list(bucket.list_blobs(soft_deleted=True)) == []
    assert bucket.get_blob("doc.txt", generation=generation, soft_deleted=True) is None
    with pytest.raises(exceptions.NotFound) as exc:
        bucket.restore_blob("doc.txt", generation=generation, retry=None)
    assert reason(exc) == "notFound"
    assert emu.emulator.generations("soft-bucket", "doc.txt") == []


def test_versioning_overwrite_and_delete_make_noncurrent(
    emu: RunningEmulator, client: storage.Client
) -> None:
    bucket = client.bucket("versioned")
    bucket.versioning_enabled = True
    bucket.create()
    first = int(upload(bucket, "v", b"1").generation)
    second = int(upload(bucket, "v", b"2").generation)

    versions = list(bucket.list_blobs(versions=True))
    assert [b.generation for b in versions] == [first, second]
    assert versions[0].time_deleted is not None
    assert versions[1].time_deleted is None
    assert list(bucket.list_blobs(soft_deleted=True)) == []
    assert states(emu, "versioned", "v") == ["noncurrent", "live"]

    bucket.delete_blob("v")  # no generation: the live version becomes noncurrent
    assert states(emu, "versioned", "v") == ["noncurrent", "noncurrent"]
    bucket.delete_blob("v", generation=first)  # a specific generation: soft-deleted
    assert states(emu, "versioned", "v") == ["soft-deleted", "noncurrent"]


def test_unversioned_overwrite_soft_deletes_previous(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    upload(bucket, "o", b"1")
    upload(bucket, "o", b"2")
    assert states(emu, "soft-bucket", "o") == ["soft-deleted", "live"]
    assert bucket.blob("o").download_as_bytes() == b"2"


def test_list_prefix_delimiter_and_paging(emu: RunningEmulator, bucket: storage.Bucket) -> None:
    for name in ["a/1", "a/2", "a/b/3", "c", "d", "e"]:
        emu.emulator.put_object("soft-bucket", name, b"x")
    it = bucket.list_blobs(delimiter="/")
    names = [b.name for b in it]
    assert names == ["c", "d", "e"]
    assert it.prefixes == {"a/"}
    nested = bucket.list_blobs(prefix="a/", delimiter="/")
    assert [b.name for b in nested] == ["a/1", "a/2"]
    assert nested.prefixes == {"a/b/"}

    pages = list(bucket.list_blobs(page_size=2).pages)
    assert [[b.name for b in page] for page in pages] == [
        ["a/1", "a/2"],
        ["a/b/3", "c"],
        ["d", "e"],
    ]


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("a/*.txt", ["a/b.txt"]),
        ("**.txt", ["a/b.txt", "a/c/d.txt", "b.txt"]),
        ("a/**/d.txt", ["a/c/d.txt"]),
        ("a/**.txt", ["a/b.txt", "a/c/d.txt"]),
        ("?.txt", ["b.txt"]),
        ("a/[bc]*", ["a/b.txt"]),
        ("a/[!b]*", ["a/e.csv"]),
        ("*", ["b.txt"]),
        ("{a/e.csv,b.txt}", ["a/e.csv", "b.txt"]),
    ],
)
def test_match_glob(
    emu: RunningEmulator, bucket: storage.Bucket, glob: str, expected: list[str]
) -> None:
    for name in ["a/b.txt", "a/c/d.txt", "a/e.csv", "b.txt"]:
        emu.emulator.put_object("soft-bucket", name, b"x")
    assert [b.name for b in bucket.list_blobs(match_glob=glob)] == expected
    for name in ["a/b.txt", "a/c/d.txt", "a/e.csv", "b.txt"]:
        emu.emulator.delete_object("soft-bucket", name)
    soft = [b.name for b in bucket.list_blobs(match_glob=glob, soft_deleted=True)]
    assert soft == expected


# --- restore --------------------------------------------------------------------------------


def test_restore_creates_new_generation(emu: RunningEmulator, bucket: storage.Bucket) -> None:
    blob = bucket.blob("doc.txt")
    blob.metadata = {"k": "v"}
    blob.upload_from_string(b"content", content_type="text/markdown")
    generation = int(blob.generation)
    bucket.delete_blob("doc.txt")
    emu.emulator.clock.advance(3600)

    restored = bucket.restore_blob("doc.txt", generation=generation, if_generation_match=0)

    assert restored.generation > generation
    assert restored.metageneration == 1
    assert restored.soft_delete_time is None
    assert restored.hard_delete_time is None
    assert restored.time_created - blob.time_created >= timedelta(seconds=3600)
    assert restored.content_type == "text/markdown"
    assert restored.metadata == {"k": "v"}
    assert bucket.blob("doc.txt").download_as_bytes() == b"content"
    gens = emu.emulator.generations("soft-bucket", "doc.txt")
    assert [g["state"] for g in gens] == ["soft-deleted", "live"]
    assert [g["state"] for g in gens].count("live") == 1

    (call,) = [e for e in emu.log.entries() if e.path.endswith("/restore")]
    assert call.method == "POST"
    assert call.query["ifGenerationMatch"] == "0"
    assert call.query["generation"] == str(generation)


def test_drop_soft_deleted_on_restore() -> None:
    with serve(GcsEmulator(keep_soft_deleted_on_restore=False)) as running:
        bucket = make_client(running.url).create_bucket("drop")
        generation = deleted(bucket, "doc.txt")
        bucket.restore_blob("doc.txt", generation=generation, if_generation_match=0)
        assert list(bucket.list_blobs(soft_deleted=True)) == []
        assert [g["state"] for g in running.emulator.generations("drop", "doc.txt")] == ["live"]


@pytest.mark.parametrize("keep", [True, False])
def test_duplicate_restore_with_if_generation_match_zero_cannot_replace_first(
    keep: bool,
) -> None:
    with serve(GcsEmulator(keep_soft_deleted_on_restore=keep)) as running:
        bucket = make_client(running.url).create_bucket("dupes")
        generation = deleted(bucket, "doc.txt")
        first = bucket.restore_blob("doc.txt", generation=generation, if_generation_match=0)
        expected = exceptions.PreconditionFailed if keep else exceptions.NotFound
        with pytest.raises(expected) as exc:
            bucket.restore_blob("doc.txt", generation=generation, if_generation_match=0)
        assert reason(exc) == ("conditionNotMet" if keep else "notFound")
        gens = running.emulator.generations("dupes", "doc.txt")
        live = [g for g in gens if g["state"] == "live"]
        assert [g["generation"] for g in live] == [first.generation]


def test_repeated_restore_without_precondition_overwrites_the_first(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    generation = deleted(bucket, "doc.txt")
    first = bucket.restore_blob("doc.txt", generation=generation, if_generation_match=0)
    second = bucket.restore_blob("doc.txt", generation=generation)
    assert second.generation > first.generation
    by_gen = {g["generation"]: g["state"] for g in emu.emulator.generations("soft-bucket")}
    assert by_gen == {
        generation: "soft-deleted",
        first.generation: "soft-deleted",
        second.generation: "live",
    }


def test_restore_without_generation_is_bad_request(
    client: storage.Client, bucket: storage.Bucket
) -> None:
    deleted(bucket, "doc.txt")
    with pytest.raises(exceptions.BadRequest) as exc:
        client._connection.api_request(method="POST", path="/b/soft-bucket/o/doc.txt/restore")
    assert reason(exc) == "required"


def test_restore_needs_soft_delete_policy(client: storage.Client) -> None:
    bucket = client.bucket("no-soft")
    bucket.soft_delete_policy.retention_duration_seconds = 0
    bucket.create()
    with pytest.raises(exceptions.BadRequest) as exc:
        bucket.restore_blob("x", generation=1, if_generation_match=0)
    assert exc.value.code == 400
    assert reason(exc) == "SoftDeletePolicyRequired"


def test_restore_unknown_generation_is_not_found(bucket: storage.Bucket) -> None:
    generation = deleted(bucket, "doc.txt")
    with pytest.raises(exceptions.NotFound) as exc:
        bucket.restore_blob("doc.txt", generation=generation + 1, if_generation_match=0)
    assert reason(exc) == "notFound"


def test_restore_live_or_noncurrent_is_object_not_soft_deleted(client: storage.Client) -> None:
    bucket = client.bucket("versioned")
    bucket.versioning_enabled = True
    bucket.create()
    noncurrent = int(upload(bucket, "v", b"1").generation)
    live = int(upload(bucket, "v", b"2").generation)
    for generation in (live, noncurrent):
        with pytest.raises(exceptions.PreconditionFailed) as exc:
            bucket.restore_blob("v", generation=generation, if_generation_match=0)
        assert reason(exc) == "objectNotSoftDeleted"


def test_restore_if_generation_match_zero_fails_when_live_exists(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    generation = deleted(bucket, "doc.txt", b"old")
    upload(bucket, "doc.txt", b"new")
    with pytest.raises(exceptions.PreconditionFailed) as exc:
        bucket.restore_blob("doc.txt", generation=generation, if_generation_match=0)
    assert reason(exc) == "conditionNotMet"
    assert bucket.blob("doc.txt").download_as_bytes() == b"new"


def test_restore_over_live_generation_with_matching_precondition(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    generation = deleted(bucket, "doc.txt", b"old")
    live = int(upload(bucket, "doc.txt", b"new").generation)
    with pytest.raises(exceptions.PreconditionFailed) as exc:
        bucket.restore_blob("doc.txt", generation=generation, if_generation_match=live + 1)
    assert reason(exc) == "conditionNotMet"
    bucket.restore_blob("doc.txt", generation=generation, if_generation_match=live)
    assert bucket.blob("doc.txt").download_as_bytes() == b"old"
    # Without versioning the overwritten live object is soft-deleted.
    assert states(emu, "soft-bucket", "doc.txt") == ["soft-deleted", "soft-deleted", "live"]


def test_restore_over_live_in_versioned_bucket_makes_it_noncurrent(
    emu: RunningEmulator, client: storage.Client
) -> None:
    bucket = client.bucket("versioned")
    bucket.versioning_enabled = True
    bucket.create()
    blob = upload(bucket, "v", b"old")
    blob.delete()  # with its generation: soft-deleted even though versioning is on
    live = int(upload(bucket, "v", b"new").generation)
    bucket.restore_blob("v", generation=int(blob.generation), if_generation_match=live)
    assert states(emu, "versioned", "v") == ["soft-deleted", "noncurrent", "live"]


@pytest.mark.parametrize(
    "precondition",
    [
        {"if_generation_match": 123},
        {"if_generation_not_match": 123},
        {"if_generation_not_match": 0},
        {"if_metageneration_match": 1},
        {"if_metageneration_not_match": 2},
    ],
)
def test_restore_preconditions_fail_without_live_object(
    bucket: storage.Bucket, precondition: dict[str, int]
) -> None:
    generation = deleted(bucket, "doc.txt")
    with pytest.raises(exceptions.PreconditionFailed) as exc:
        bucket.restore_blob("doc.txt", generation=generation, retry=None, **precondition)
    assert reason(exc) == "conditionNotMet"


def test_restore_metageneration_preconditions_against_live(bucket: storage.Bucket) -> None:
    generation = deleted(bucket, "doc.txt", b"old")
    live = upload(bucket, "doc.txt", b"new")
    live.metadata = {"patched": "yes"}
    live.patch()
    assert live.metageneration == 2
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.restore_blob("doc.txt", generation=generation, if_metageneration_match=1)
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.restore_blob("doc.txt", generation=generation, if_metageneration_not_match=2)
    restored = bucket.restore_blob(
        "doc.txt", generation=generation, if_metageneration_match=2, if_generation_not_match=0
    )
    assert restored.metageneration == 1


def test_restore_blocked_by_retention_policy_until_object_is_old_enough(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    generation = deleted(bucket, "doc.txt")
    bucket.retention_period = 3600
    bucket.patch()
    with pytest.raises(exceptions.Forbidden) as exc:
        bucket.restore_blob("doc.txt", generation=generation, if_generation_match=0)
    assert reason(exc) == "retentionPolicyNotMet"
    emu.emulator.clock.advance(3601)
    restored = bucket.restore_blob("doc.txt", generation=generation, if_generation_match=0)
    assert restored.generation > generation


def test_retention_policy_blocks_delete(client: storage.Client) -> None:
    bucket = client.bucket("locked")
    bucket.retention_period = 3600
    bucket.create()
    upload(bucket, "doc.txt", b"x")
    with pytest.raises(exceptions.Forbidden) as exc:
        bucket.delete_blob("doc.txt")
    assert reason(exc) == "retentionPolicyNotMet"


def test_generations_strictly_increase_on_a_frozen_clock() -> None:
    emulator = GcsEmulator(clock_factor=0.0)
    emulator.create_bucket("frozen")
    gens = [emulator.put_object("frozen", "x", bytes([i])) for i in range(5)]
    assert gens == sorted(set(gens))
    assert len(gens) == 5


# --- bulk restore ---------------------------------------------------------------------------


def bulk_restore(client: storage.Client, bucket: str, **body: object) -> dict[str, object]:
    return client._connection.api_request(
        method="POST", path=f"/b/{bucket}/o/bulkRestore", data=body
    )


def get_operation(client: storage.Client, name: str) -> dict[str, object]:
    bucket, op_id = name.split("/")[3], name.split("/")[-1]
    return client._connection.api_request(method="GET", path=f"/b/{bucket}/operations/{op_id}")


def test_bulk_restore_operation_runs_as_time_passes(
    emu: RunningEmulator, client: storage.Client, bucket: storage.Bucket
) -> None:
    for name in ["logs/1", "logs/2", "logs/3", "other"]:
        deleted(bucket, name, name.encode())
    upload(bucket, "logs/3", b"live")  # a live object: not overwritten without allowOverwrite

    op = bulk_restore(client, "soft-bucket", matchGlobs=["logs/**"], allowOverwrite=False)
    assert op["kind"] == "storage#operation"
    assert op["done"] is False
    assert str(op["name"]).startswith("projects/_/buckets/soft-bucket/operations/")
    assert op["metadata"]["@type"] == (
        "type.googleapis.com/google.storage.control.v2.BulkRestoreObjectsMetadata"
    )
    assert op["metadata"]["matchGlobs"] == ["logs/**"]
    assert op["metadata"]["commonMetadata"]["type"] == "bulk-restore-objects"
    assert get_operation(client, op["name"])["done"] is False
    assert bucket.get_blob("logs/1") is None

    emu.emulator.clock.advance(60)
    done = get_operation(client, op["name"])
    assert done["done"] is True
    assert "response" in done
    assert done["metadata"]["succeededCount"] == "2"
    assert done["metadata"]["failedCount"] == "1"
    assert done["metadata"]["skippedCount"] == "1"  # "other": outside the glob
    assert done["response"]["@type"].endswith("control.v2.BulkRestoreObjectsResponse")
    assert bucket.blob("logs/1").download_as_bytes() == b"logs/1"
    assert bucket.blob("logs/3").download_as_bytes() == b"live"
    assert bucket.get_blob("other") is None

    listed = client._connection.api_request(method="GET", path="/b/soft-bucket/operations")
    assert [o["name"] for o in listed["operations"]] == [op["name"]]


def test_bulk_restore_allow_overwrite_and_time_filters(
    emu: RunningEmulator, client: storage.Client, bucket: storage.Bucket
) -> None:
    deleted(bucket, "early", b"early")
    emu.emulator.clock.advance(100)
    marker = emu.emulator.clock.now() - 50
    deleted(bucket, "late", b"late")
    upload(bucket, "late", b"live")
    op = bulk_restore(
        client, "soft-bucket", allowOverwrite=True, softDeletedAfterTime=rfc3339(marker)
    )
    emu.emulator.clock.advance(60)
    done = get_operation(client, op["name"])
    assert done["metadata"]["succeededCount"] == "1"
    assert bucket.blob("late").download_as_bytes() == b"late"
    assert bucket.get_blob("early") is None


def test_bulk_restore_restores_the_latest_matching_generation_and_skips_the_rest(
    emu: RunningEmulator, client: storage.Client, bucket: storage.Bucket
) -> None:
    deleted(bucket, "doc", b"first")
    deleted(bucket, "doc", b"second")
    deleted(bucket, "other", b"x")
    op = bulk_restore(client, "soft-bucket", matchGlobs=["doc"])
    emu.emulator.clock.advance(60)
    done = get_operation(client, op["name"])
    assert (done["metadata"]["succeededCount"], done["metadata"]["skippedCount"],
            done["metadata"]["failedCount"]) == ("1", "2", "0")
    assert bucket.blob("doc").download_as_bytes() == b"second"
    [recorded] = emu.emulator.operations("soft-bucket")
    assert recorded["body"] == {"matchGlobs": ["doc"]}


def test_an_operation_failed_on_purpose_ends_with_its_error(
    emu: RunningEmulator, client: storage.Client, bucket: storage.Bucket
) -> None:
    deleted(bucket, "doc")
    op = bulk_restore(client, "soft-bucket")
    emu.emulator.fail_operation("soft-bucket", str(op["name"]), 13, "boom")
    emu.emulator.clock.advance(60)
    failed = get_operation(client, op["name"])
    assert failed["done"] is True and failed["error"] == {"code": 13, "message": "boom"}
    assert "response" not in failed
    assert bucket.get_blob("doc") is None
    with pytest.raises(exceptions.NotFound):
        get_operation(client, "projects/_/buckets/soft-bucket/operations/nope")


def test_bulk_restore_default_duration_is_one_emulated_second() -> None:
    with serve(GcsEmulator(clock_factor=0.0)) as running:
        client = make_client(running.url)
        bucket = client.create_bucket("frozen")
        deleted(bucket, "doc.txt")
        op = bulk_restore(client, "frozen")
        running.emulator.clock.advance(0.9)
        assert get_operation(client, op["name"])["done"] is False
        running.emulator.clock.advance(0.1)
        done = get_operation(client, op["name"])
        assert done["done"] is True
        assert done["metadata"]["succeededCount"] == "1"
        assert bucket.get_blob("doc.txt") is not None


def test_bulk_restore_cancel(
    emu: RunningEmulator, client: storage.Client, bucket: storage.Bucket
) -> None:
    deleted(bucket, "doc.txt")
    op = bulk_restore(client, "soft-bucket")
    op_id = str(op["name"]).rsplit("/", 1)[-1]
    response = client._http.post(f"{emu.url}/storage/v1/b/soft-bucket/operations/{op_id}/cancel")
    assert response.status_code == 204
    emu.emulator.clock.advance(10)
    cancelled = get_operation(client, op["name"])
    assert cancelled["done"] is True
    assert cancelled["error"] == {
        "code": 1, "message": "The long-running operation has been cancelled by the user."
    }
    assert cancelled["metadata"]["commonMetadata"]["requestedCancellation"] is True
    assert "response" not in cancelled
    assert bucket.get_blob("doc.txt") is None
    again = client._http.post(f"{emu.url}/storage/v1/b/soft-bucket/operations/{op_id}/cancel")
    assert again.status_code == 412
    assert again.json()["error"]["errors"][0]["reason"] == "conditionNotMet"


def test_bulk_restore_counts_retention_failures(
    emu: RunningEmulator, client: storage.Client, bucket: storage.Bucket
) -> None:
    deleted(bucket, "young")
    bucket.retention_period = 3600
    bucket.patch()
    op = bulk_restore(client, "soft-bucket")
    emu.emulator.clock.advance(60)
    done = get_operation(client, op["name"])
    assert (done["metadata"]["succeededCount"], done["metadata"]["failedCount"]) == ("0", "1")
    assert bucket.get_blob("young") is None


def test_bulk_restore_needs_soft_delete_policy(client: storage.Client) -> None:
    bucket = client.bucket("no-soft")
    bucket.soft_delete_policy.retention_duration_seconds = 0
    bucket.create()
    with pytest.raises(exceptions.BadRequest) as exc:
        bulk_restore(client, "no-soft")
    assert reason(exc) == "SoftDeletePolicyRequired"


# --- faults, request log, control API -------------------------------------------------------


def test_injected_503_then_success(emu: RunningEmulator, bucket: storage.Bucket) -> None:
    emu.faults.set(FaultPlan(script=[503]))
    with pytest.raises(exceptions.ServiceUnavailable) as exc:
        bucket.reload(retry=None)
    assert reason(exc) == "backendError"
    bucket.reload(retry=None)
    assert [e.fault for e in emu.log.entries()[-2:]] == ["injected", None]


def test_injected_429_is_rate_limit(emu: RunningEmulator, bucket: storage.Bucket) -> None:
    emu.faults.set(FaultPlan(script=[429]))
    with pytest.raises(exceptions.TooManyRequests) as exc:
        bucket.reload(retry=None)
    assert reason(exc) == "rateLimitExceeded"


def test_injected_reset_is_connection_error(emu: RunningEmulator, bucket: storage.Bucket) -> None:
    emu.faults.set(FaultPlan(script=[0]))
    with pytest.raises(requests.exceptions.ConnectionError):
        bucket.reload(retry=None)
    bucket.reload(retry=None)


def test_default_retry_recovers_from_a_503_on_restore(
    emu: RunningEmulator, bucket: storage.Bucket
) -> None:
    generation = deleted(bucket, "doc.txt")
    emu.faults.set(FaultPlan(script=[503], match_path="/restore"))
    restored = bucket.restore_blob("doc.txt", generation=generation, if_generation_match=0)
    assert restored.generation > generation
    calls = [e for e in emu.log.entries() if e.path.endswith("/restore")]
    assert [e.status for e in calls] == [503, 200]


def test_control_api_over_http(emu: RunningEmulator) -> None:
    created = requests.post(
        f"{emu.url}/_emulator/buckets",
        json={"name": "ctl", "softDeletePolicy": {"retentionDurationSeconds": "0"}},
        timeout=5,
    )
    assert created.status_code == 200
    assert created.json()["softDeletePolicy"]["retentionDurationSeconds"] == "0"
    listed = requests.get(f"{emu.url}/_emulator/buckets", timeout=5).json()
    assert [b["name"] for b in listed] == ["ctl"]
    put = requests.post(
        f"{emu.url}/_emulator/objects",
        json={"bucket": "ctl", "name": "a b", "data": "hi"},
        timeout=5,
    )
    assert put.json()["state"] == "live"
    objects = requests.get(f"{emu.url}/_emulator/objects", params={"bucket": "ctl"}, timeout=5)
    assert [(o["name"], o["state"], o["size"]) for o in objects.json()] == [("a b", "live", 2)]
    missing = requests.get(f"{emu.url}/_emulator/objects", params={"bucket": "nope"}, timeout=5)
    assert missing.status_code == 404
    advanced = requests.post(f"{emu.url}/_emulator/clock", json={"advance": 60}, timeout=5)
    assert advanced.status_code == 200


def test_python_helpers(emu: RunningEmulator, client: storage.Client) -> None:
    helper = emu.emulator
    helper.create_bucket("helpers", versioning=True, retention_seconds=None)
    first = helper.put_object("helpers", "k", b"1", content_type="text/plain")
    second = helper.put_object("helpers", "k", b"2")
    helper.delete_object("helpers", "k")
    gens = helper.generations("helpers", "k")
    assert [(g["generation"], g["state"]) for g in gens] == [
        (first, "noncurrent"),
        (second, "noncurrent"),
    ]
    fetched = client.bucket("helpers").get_blob("k", generation=first)
    assert fetched is not None
    assert fetched.content_type == "text/plain"


def test_cli_serves_and_reports_its_url() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.gcs", "--port", "0", "--drop-soft-deleted-on-restore"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.strip().rsplit(" ", 1)[-1]
        client = make_client(url)
        bucket = client.create_bucket("cli")
        generation = deleted(bucket, "x")
        bucket.restore_blob("x", generation=generation, if_generation_match=0)
        assert list(bucket.list_blobs(soft_deleted=True)) == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_quoted_paths_in_media_links(emu: RunningEmulator, bucket: storage.Bucket) -> None:
    name = "x/y z?#%"
    upload(bucket, name, b"data")
    blob = bucket.get_blob(name)
    assert blob is not None
    assert quote(name, safe="~") in blob.media_link
    assert blob.media_link.startswith(emu.url)
    assert blob.download_as_bytes() == b"data"  # follows mediaLink
