"""GCS restores through google-cloud-storage over HTTP against the GCS emulator."""

from __future__ import annotations

from emulators._http import FaultPlan
from emulators.gcs import LIVE
from shared.outcome import ErrorCode, OutcomeStatus
from tests.conftest import GCS_BUCKET, gcs_request


def soft_delete(gcs_emulator, name: str, data: bytes = b"payload", bucket: str = GCS_BUCKET):
    generation = gcs_emulator.emulator.put_object(bucket, name, data)
    gcs_emulator.emulator.delete_object(bucket, name)
    return generation


def live_generations(gcs_emulator, name: str, bucket: str = GCS_BUCKET) -> list[int]:
    return [
        int(g["generation"]) for g in gcs_emulator.emulator.generations(bucket, name)
        if g["state"] == LIVE
    ]


def restore_calls(gcs_emulator) -> list:
    return [e for e in gcs_emulator.log.entries() if e.path.endswith("/restore")]


def test_newest_soft_deleted_generation_is_found_and_restored(service, sink, gcs_emulator):
    soft_delete(gcs_emulator, "reports/2026.csv", b"old")
    newest = soft_delete(gcs_emulator, "reports/2026.csv", b"new")
    soft_delete(gcs_emulator, "reports/2026.csv.bak", b"other name, same prefix")

    outcome = service.restore(gcs_request())
    assert outcome.status is OutcomeStatus.COMPLETED
    assert outcome.generation == newest
    assert live_generations(gcs_emulator, "reports/2026.csv") == [outcome.restored_generation]
    assert outcome.restored_generation != newest
    [call] = restore_calls(gcs_emulator)
    assert call.query["ifGenerationMatch"] == "0"
    assert call.query["generation"] == str(newest)
    assert sink.types() == ["completed"]
    assert sink.events[0].data.restored_generation == outcome.restored_generation


def test_explicit_generation_and_options_are_sent(service, gcs_emulator):
    generation = soft_delete(gcs_emulator, "a.txt")
    outcome = service.restore(
        gcs_request("a.txt", generation=generation, copySourceAcl=True, projection="full")
    )
    assert outcome.status is OutcomeStatus.COMPLETED
    [call] = restore_calls(gcs_emulator)
    assert call.query["copySourceAcl"].lower() == "true"
    assert call.query["projection"] == "full"


def test_duplicate_of_a_finished_restore_is_already_restored(service, sink, gcs_emulator):
    generation = soft_delete(gcs_emulator, "dup.txt")
    first = service.restore(gcs_request("dup.txt", generation=generation))
    second = service.restore(gcs_request("dup.txt", generation=generation))
    third = service.restore(gcs_request("dup.txt"))  # generation looked up again
    assert first.status is OutcomeStatus.COMPLETED
    assert second.status is OutcomeStatus.ALREADY_RESTORED
    assert third.status is OutcomeStatus.ALREADY_RESTORED
    assert second.restored_generation == first.restored_generation
    assert live_generations(gcs_emulator, "dup.txt") == [first.restored_generation]
    assert sink.types() == ["completed", "already_restored", "already_restored"]


def test_duplicate_never_makes_a_second_live_generation_when_the_source_is_dropped(
    service, gcs_emulator
):
    gcs_emulator.emulator.keep_soft_deleted_on_restore = False
    generation = soft_delete(gcs_emulator, "dropped.txt")
    first = service.restore(gcs_request("dropped.txt", generation=generation))
    second = service.restore(gcs_request("dropped.txt", generation=generation))
    assert first.status is OutcomeStatus.COMPLETED
    # The source generation is gone, so this cannot be told from a stale request: not found.
    assert second.status is OutcomeStatus.FAILED
    assert second.error.code is ErrorCode.NOT_FOUND
    assert live_generations(gcs_emulator, "dropped.txt") == [first.restored_generation]


def test_a_different_live_object_is_a_conflict_and_is_left_alone(service, gcs_emulator):
    generation = soft_delete(gcs_emulator, "busy.txt", b"deleted bytes")
    live = gcs_emulator.emulator.put_object(GCS_BUCKET, "busy.txt", b"someone else's bytes")
    outcome = service.restore(gcs_request("busy.txt", generation=generation))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error.code is ErrorCode.CONFLICT
    assert outcome.error.retryable is False
    assert live_generations(gcs_emulator, "busy.txt") == [live]


def test_allow_overwrite_replaces_the_live_object(service, gcs_emulator):
    generation = soft_delete(gcs_emulator, "replace.txt", b"wanted")
    old_live = gcs_emulator.emulator.put_object(GCS_BUCKET, "replace.txt", b"unwanted")
    outcome = service.restore(
        gcs_request("replace.txt", generation=generation, allow_overwrite=True)
    )
    assert outcome.status is OutcomeStatus.COMPLETED
    assert live_generations(gcs_emulator, "replace.txt") == [outcome.restored_generation]
    assert outcome.restored_generation != old_live
    [call] = restore_calls(gcs_emulator)
    assert "ifGenerationMatch" not in call.query


def test_caller_precondition_failure_is_precondition_failed(service, gcs_emulator):
    generation = soft_delete(gcs_emulator, "pre.txt")
    gcs_emulator.emulator.put_object(GCS_BUCKET, "pre.txt", b"live")
    outcome = service.restore(
        gcs_request("pre.txt", generation=generation, allow_overwrite=True, ifGenerationMatch=1)
    )
    assert outcome.error.code is ErrorCode.PRECONDITION_FAILED
    assert outcome.error.http_status == 412


def test_bucket_without_soft_delete(service, gcs_emulator):
    gcs_emulator.emulator.create_bucket("restore-nosoft", soft_delete_seconds=0)
    outcome = service.restore(
        {"provider": "gcs", "bucket": "restore-nosoft", "object": "x", "generation": 5}
    )
    assert outcome.error.code is ErrorCode.SOFT_DELETE_NOT_ENABLED
    assert outcome.error.http_status == 400
    assert outcome.attempts == 1


def test_live_generation_is_not_soft_deleted(service, gcs_emulator):
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, "alive.txt", b"x")
    outcome = service.restore(
        gcs_request("alive.txt", generation=generation, allow_overwrite=True)
    )
    assert outcome.error.code is ErrorCode.OBJECT_NOT_SOFT_DELETED
    assert outcome.error.provider_code == "objectNotSoftDeleted"


def test_retention_policy_not_met(service, gcs_emulator):
    generation = soft_delete(gcs_emulator, "locked.txt")
    gcs_emulator.emulator.store.buckets[GCS_BUCKET].retention_seconds = 10 * 86400
    outcome = service.restore(gcs_request("locked.txt", generation=generation))
    assert outcome.error.code is ErrorCode.RETENTION_POLICY_NOT_MET
    assert outcome.error.http_status == 403


def test_never_deleted_name_and_purged_generation_are_not_found(service, gcs_emulator):
    outcome = service.restore(gcs_request("never-existed.txt"))
    assert outcome.error.code is ErrorCode.NOT_FOUND
    generation = soft_delete(gcs_emulator, "purged.txt")
    gcs_emulator.emulator.clock.advance(8 * 86400)  # past the 7-day soft-delete window
    outcome = service.restore(gcs_request("purged.txt", generation=generation))
    assert outcome.error.code is ErrorCode.NOT_FOUND
    assert outcome.error.http_status == 404
    assert outcome.attempts == 1


def test_503_then_success_is_retried_and_404_is_not(service, gcs_emulator):
    generation = soft_delete(gcs_emulator, "flaky.txt")
    gcs_emulator.faults.set(FaultPlan(script=[503], match_path="/restore?"))
    outcome = service.restore(gcs_request("flaky.txt", generation=generation))
    assert outcome.status is OutcomeStatus.COMPLETED
    assert outcome.attempts == 2
    assert [c.status for c in restore_calls(gcs_emulator)] == [503, 200]

    gcs_emulator.log.clear()
    missing = service.restore(gcs_request("flaky.txt", generation=generation + 999))
    assert missing.error.code is ErrorCode.NOT_FOUND
    assert len(restore_calls(gcs_emulator)) == 1


def test_reset_after_the_restore_is_retried_into_already_restored(service, gcs_emulator):
    generation = soft_delete(gcs_emulator, "reset.txt")
    gcs_emulator.faults.set(FaultPlan(script=[0], match_path="/restore?"))
    outcome = service.restore(gcs_request("reset.txt", generation=generation))
    assert outcome.status in (OutcomeStatus.COMPLETED, OutcomeStatus.ALREADY_RESTORED)
    assert outcome.attempts == 2
    assert len(live_generations(gcs_emulator, "reset.txt")) == 1


def test_throttling_is_retryable_and_bounded(service, gcs_emulator):
    generation = soft_delete(gcs_emulator, "busy-api.txt")
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=429, match_path="/restore?"))
    outcome = service.restore(gcs_request("busy-api.txt", generation=generation))
    assert outcome.error.code is ErrorCode.THROTTLED
    assert outcome.error.retryable is True
    assert len(restore_calls(gcs_emulator)) == service.settings.max_attempts


def test_restore_token_is_sent_for_hierarchical_namespace_buckets(service, gcs_emulator):
    generation = soft_delete(gcs_emulator, "hns/file.txt")
    outcome = service.restore(
        gcs_request("hns/file.txt", generation=generation, restoreToken="tok-123")
    )
    assert outcome.status is OutcomeStatus.COMPLETED
    [call] = restore_calls(gcs_emulator)
    assert call.query["restoreToken"] == "tok-123"
    assert call.query["ifGenerationMatch"] == "0"


def test_unusual_names_restore_through_the_sdk(service, gcs_emulator):
    names = ["dir with space/ünïcödé+plus%pct?q#h.txt", "/leading", "a//double", "é" * 512]
    for name in names:
        soft_delete(gcs_emulator, name)
        outcome = service.restore(gcs_request(name))
        assert outcome.status is OutcomeStatus.COMPLETED, (name, outcome.error)
        assert live_generations(gcs_emulator, name) == [outcome.restored_generation]


def test_bucket_outside_the_allowlist_never_reaches_gcs(service, gcs_emulator):
    outcome = service.restore({"provider": "gcs", "bucket": "payroll", "object": "x"})
    assert outcome.error.code is ErrorCode.BUCKET_NOT_ALLOWED
    assert gcs_emulator.log.entries() == []
