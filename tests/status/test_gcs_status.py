"""GCS object states through google-cloud-storage against the GCS emulator."""

from __future__ import annotations

from emulators._http import FaultPlan
from shared.status import StatusState
from tests.conftest import GCS_BUCKET
from tests.status.conftest import DAY, gcs_query, parse_time

WEEK = 7 * DAY


def soft_delete(gcs_emulator, name: str, data: bytes = b"payload", bucket: str = GCS_BUCKET):
    generation = gcs_emulator.emulator.put_object(bucket, name, data)
    gcs_emulator.emulator.delete_object(bucket, name)
    return generation


def summaries(gcs_emulator, name: str, bucket: str = GCS_BUCKET) -> dict[int, dict]:
    return {g["generation"]: g for g in gcs_emulator.emulator.generations(bucket, name)}


def test_live_object_is_live_with_its_generation(service, sink, gcs_emulator):
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, "a.txt", b"hello")
    status = service.status(gcs_query("a.txt"))
    assert status.state is StatusState.LIVE
    assert (status.provider, status.bucket, status.key) == ("gcs", GCS_BUCKET, "a.txt")
    assert status.live_generation == generation
    assert (status.size, status.storage_class) == (5, "STANDARD")
    assert status.soft_deleted_generations == []
    assert status.soft_delete_retention_seconds is None  # the bucket was not read
    assert sink.events == []
    assert not any(e.path.endswith("/restore") for e in gcs_emulator.log.entries())


def test_live_object_lists_its_soft_deleted_generations_too(service, gcs_emulator):
    old = soft_delete(gcs_emulator, "b.txt", b"old bytes")
    live = gcs_emulator.emulator.put_object(GCS_BUCKET, "b.txt", b"new")
    status = service.status(gcs_query("b.txt"))
    assert status.state is StatusState.LIVE
    assert status.live_generation == live
    [generation] = status.soft_deleted_generations
    assert generation.generation == old
    assert generation.size == len(b"old bytes")
    assert generation.soft_delete_time is not None


def test_soft_deleted_object_lists_generations_newest_first_with_times(service, gcs_emulator):
    first = soft_delete(gcs_emulator, "reports/q3.csv", b"one")
    second = soft_delete(gcs_emulator, "reports/q3.csv", b"second")
    soft_delete(gcs_emulator, "reports/q3.csv.bak", b"same prefix, other name")

    status = service.status(gcs_query("reports/q3.csv"))
    assert status.state is StatusState.SOFT_DELETED
    assert status.live_generation is None
    assert [g.generation for g in status.soft_deleted_generations] == [second, first]
    stored = summaries(gcs_emulator, "reports/q3.csv")
    for generation in status.soft_deleted_generations:
        seeded = stored[generation.generation]
        assert generation.soft_delete_time == parse_time(seeded["softDeleteTime"])
        assert generation.hard_delete_time == parse_time(seeded["hardDeleteTime"])
        assert (generation.hard_delete_time - generation.soft_delete_time).total_seconds() == WEEK
        assert generation.size == seeded["size"]
    assert [g.size for g in status.soft_deleted_generations] == [6, 3]


def test_never_written_object_is_not_found_and_the_policy_is_reported(service, gcs_emulator):
    status = service.status(gcs_query("never.txt"))
    assert status.state is StatusState.NOT_FOUND
    assert status.error is None
    assert status.soft_delete_retention_seconds == WEEK
    assert status.soft_deleted_generations == []


def test_generation_past_its_hard_delete_time_is_not_found(service, gcs_emulator):
    soft_delete(gcs_emulator, "old.txt")
    assert service.status(gcs_query("old.txt")).state is StatusState.SOFT_DELETED
    gcs_emulator.emulator.clock.advance(WEEK + 1)
    assert service.status(gcs_query("old.txt")).state is StatusState.NOT_FOUND


def test_bucket_without_soft_delete_is_soft_delete_disabled(service, gcs_emulator):
    gcs_emulator.emulator.create_bucket("restore-nosoft", soft_delete_seconds=0)
    soft_delete(gcs_emulator, "x.txt", bucket="restore-nosoft")  # deleted for good
    assert summaries(gcs_emulator, "x.txt", bucket="restore-nosoft") == {}

    status = service.status(gcs_query("x.txt", bucket="restore-nosoft"))
    assert status.state is StatusState.SOFT_DELETE_DISABLED
    assert status.soft_delete_retention_seconds == 0
    assert status.soft_deleted_generations == []


def test_live_object_in_a_bucket_without_soft_delete_is_live(service, gcs_emulator):
    gcs_emulator.emulator.create_bucket("restore-nosoft", soft_delete_seconds=0)
    generation = gcs_emulator.emulator.put_object("restore-nosoft", "y.txt", b"y")
    status = service.status(gcs_query("y.txt", bucket="restore-nosoft"))
    assert (status.state, status.live_generation) == (StatusState.LIVE, generation)


def test_soft_delete_turned_off_later_reads_as_disabled(service, gcs_emulator):
    # softDeletePolicy patched to 0 through the JSON API, as `gcloud storage buckets update
    # --clear-soft-delete` does.
    gcs_emulator.emulator.store.patch_bucket(
        GCS_BUCKET, {"softDeletePolicy": {"retentionDurationSeconds": 0}}
    )
    status = service.status(gcs_query("never.txt"))
    assert status.state is StatusState.SOFT_DELETE_DISABLED


def test_missing_bucket_is_not_found(service, gcs_emulator):
    status = service.status(gcs_query("a.txt", bucket="restore-missing"))
    assert status.state is StatusState.NOT_FOUND
    assert status.error is None
    assert "bucket" in (status.message or "")


def test_unreadable_bucket_policy_still_answers_not_found(service, gcs_emulator):
    # An object-only role lacks storage.buckets.get: every bucket read is refused (the SDK's
    # own background bucket-metadata fetch included), object reads are not.
    gcs_emulator.faults.set(
        FaultPlan(error_rate=1.0, error_status=403, match_method="GET",
                  match_path=f"/b/{GCS_BUCKET}?")
    )
    status = service.status(gcs_query("never.txt"))
    assert status.state is StatusState.NOT_FOUND
    assert status.error is None
    assert status.soft_delete_retention_seconds is None
    assert "storage.buckets.get" in (status.message or "")
    bucket_path = f"/storage/v1/b/{GCS_BUCKET}"
    bucket_reads = [e for e in gcs_emulator.log.entries() if e.path == bucket_path]
    assert bucket_reads and all(e.status == 403 for e in bucket_reads)


def test_name_spelling_infers_gcs(service, gcs_emulator):
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, "n.txt", b"n")
    status = service.status({"bucket": GCS_BUCKET, "name": "n.txt"})
    assert (status.provider, status.state, status.live_generation) == (
        "gcs", StatusState.LIVE, generation
    )
