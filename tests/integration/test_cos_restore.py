"""COS restores through cos-python-sdk-v5 over HTTP against the COS emulator."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr

from emulators._http import FaultPlan
from shared.outcome import ErrorCode, OutcomeStatus
from shared.service import RestoreService
from tests.conftest import COS_BUCKET, cos_request, make_settings

EXPEDITED_SECONDS = 60  # the emulator's ARCHIVE/Expedited duration


def restore_posts(cos_emulator, key):
    return [
        entry for entry in cos_emulator.emulator.restore_requests() if entry["key"] == key
    ]


def test_archived_object_restore_is_initiated_then_completed(service, sink, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "data/archived.bin", b"x" * 10, "ARCHIVE")

    outcome = service.restore(cos_request())
    assert outcome.status is OutcomeStatus.INITIATED
    assert outcome.storage_class == "ARCHIVE"
    assert outcome.expected_completion_after < outcome.expected_completion_before
    assert cos_emulator.emulator.restore_state(COS_BUCKET, "data/archived.bin")["status"] == (
        "ongoing"
    )

    assert service.check(cos_request()).status is OutcomeStatus.IN_PROGRESS
    cos_emulator.emulator.clock.advance(EXPEDITED_SECONDS + 1)
    done = service.check(cos_request())
    assert done.status is OutcomeStatus.COMPLETED
    # Days=3 from completion: the expiry is roughly three days ahead of the emulated clock.
    assert done.expiry_time is not None
    assert sink.types() == ["initiated", "completed"]
    assert sink.events[1].data.expiry_time == done.expiry_time


def test_duplicate_while_running_is_in_progress_without_a_second_restore_call(
    service, cos_emulator
):
    cos_emulator.emulator.put_object(COS_BUCKET, "dup.bin", b"x", "ARCHIVE")
    first = service.restore(cos_request("dup.bin"))
    second = service.restore(cos_request("dup.bin"))
    assert (first.status, second.status) == (OutcomeStatus.INITIATED, OutcomeStatus.IN_PROGRESS)
    [posts] = restore_posts(cos_emulator, "dup.bin")
    assert (posts["received"], posts["accepted"]) == (1, 1)


def test_restore_of_a_readable_copy_is_already_restored_and_moves_the_expiry(
    service, cos_emulator
):
    cos_emulator.emulator.put_object(COS_BUCKET, "ready.bin", b"x", "ARCHIVE")
    service.restore(cos_request("ready.bin", days=1))
    cos_emulator.emulator.clock.advance(EXPEDITED_SECONDS + 1)
    first_expiry = service.check(cos_request("ready.bin")).expiry_time

    again = service.restore(cos_request("ready.bin", days=10))
    assert again.status is OutcomeStatus.ALREADY_RESTORED
    assert again.expiry_time is not None
    assert again.expiry_time - first_expiry >= timedelta(days=8)
    [posts] = restore_posts(cos_emulator, "ready.bin")
    assert posts["statuses"] == [202, 200]


def test_409_from_cos_is_in_progress(service, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "race.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(script=[409], match_path="restore"))
    assert service.restore(cos_request("race.bin")).status is OutcomeStatus.IN_PROGRESS


def test_standard_object_is_rejected_before_any_restore_call(service, sink, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "hot.bin", b"x", "STANDARD")
    outcome = service.restore(cos_request("hot.bin"))
    assert outcome.status is OutcomeStatus.REJECTED
    assert outcome.error.code is ErrorCode.NOT_ARCHIVED
    assert restore_posts(cos_emulator, "hot.bin") == []
    assert sink.types() == ["rejected"]


def test_expedited_on_deep_archive_is_rejected_before_the_call(service, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "deep.bin", b"x", "DEEP_ARCHIVE")
    outcome = service.restore(cos_request("deep.bin", tier="Expedited"))
    assert outcome.status is OutcomeStatus.REJECTED
    assert outcome.error.code is ErrorCode.TIER_NOT_SUPPORTED
    assert restore_posts(cos_emulator, "deep.bin") == []
    assert service.restore(cos_request("deep.bin", tier="Bulk")).status is (
        OutcomeStatus.INITIATED
    )


def test_405_from_cos_is_rejected_not_archived(service, cos_emulator):
    # Intelligent tiering in an unknown tier: we let COS decide, and it says 405.
    cos_emulator.emulator.put_object(
        COS_BUCKET, "it.bin", b"x", "INTELLIGENT_TIERING", storage_tier="FREQUENT"
    )
    outcome = service.restore(cos_request("it.bin"))
    assert outcome.status is OutcomeStatus.REJECTED
    assert outcome.error.code is ErrorCode.NOT_ARCHIVED


def test_missing_key_fails_not_found_without_retries(service, cos_emulator):
    outcome = service.restore(cos_request("nope.bin"))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error.code is ErrorCode.NOT_FOUND
    assert outcome.error.http_status == 404
    assert outcome.error.retryable is False
    assert outcome.attempts == 1
    heads = [e for e in cos_emulator.log.entries() if e.method == "HEAD"]
    assert len(heads) == 1


def test_wrong_credentials_fail_access_denied_with_provider_code(cos_emulator, sink):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    settings = make_settings(cos_emulator)
    settings = settings.model_copy(
        update={"cos": settings.cos.model_copy(update={"secret_key": SecretStr("wrong-key")})}
    )
    outcome = RestoreService(settings, sink=sink).restore(cos_request("k.bin"))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error.code is ErrorCode.ACCESS_DENIED
    # The HEAD is refused first; a HEAD answer has no body, so the code is the status's.
    assert outcome.error.http_status == 403
    assert outcome.error.retryable is False
    assert [e.status for e in cos_emulator.log.entries()] == [403]
    assert "wrong-key" not in outcome.model_dump_json()


def test_503_then_success_is_retried(service, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "flaky.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(script=[503], match_path="restore"))
    outcome = service.restore(cos_request("flaky.bin"))
    assert outcome.status is OutcomeStatus.INITIATED
    assert outcome.attempts == 2
    [posts] = restore_posts(cos_emulator, "flaky.bin")
    assert posts["statuses"] == [503, 202]


def test_connection_reset_then_success_is_retried(service, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "reset.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(script=[0], match_path="restore"))
    outcome = service.restore(cos_request("reset.bin"))
    assert outcome.status is OutcomeStatus.INITIATED
    assert outcome.attempts == 2


def test_persistent_throttling_ends_retryable_after_bounded_attempts(service, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "slow.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_path="restore"))
    outcome = service.restore(cos_request("slow.bin"))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.error.retryable is True
    assert outcome.error.provider_code == "SlowDown"
    assert outcome.attempts == service.settings.max_attempts


def test_bucket_outside_the_allowlist_never_reaches_cos(service, sink, cos_emulator):
    outcome = service.restore(cos_request(bucket="private-1250000000"))
    assert outcome.status is OutcomeStatus.REJECTED
    assert outcome.error.code is ErrorCode.BUCKET_NOT_ALLOWED
    assert cos_emulator.log.entries() == []
    assert sink.types() == ["rejected"]


def test_unusual_keys_restore_through_the_sdk(service, cos_emulator):
    for key in ["dir with space/ünïcödé+plus%pct?q#h.txt", "a//double//slash", "x" * 800]:
        cos_emulator.emulator.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
        assert service.restore(cos_request(key)).status is OutcomeStatus.INITIATED, key
        assert cos_emulator.emulator.restore_state(COS_BUCKET, key)["status"] == "ongoing"


def test_cos_400_and_500_map_to_bad_request_and_retryable_provider_error(service, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "odd.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(script=[400], match_path="restore"))
    bad = service.restore(cos_request("odd.bin"))
    assert bad.error.code is ErrorCode.BAD_REQUEST
    assert bad.error.retryable is False
    assert bad.attempts == 1

    cos_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=500, match_path="restore"))
    broken = service.restore(cos_request("odd.bin"))
    assert broken.error.code is ErrorCode.PROVIDER_ERROR
    assert broken.error.provider_code == "InternalError"
    assert broken.error.retryable is True
    assert broken.attempts == service.settings.max_attempts
