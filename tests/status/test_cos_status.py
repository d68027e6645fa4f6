"""COS object states through cos-python-sdk-v5 (HEAD) against the COS emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.outcome import OutcomeStatus
from shared.status import ObjectStatus, StatusState
from tests.conftest import COS_BUCKET, COS_REGION, cos_request
from tests.status.conftest import DAY, EXPEDITED_SECONDS, close, cos_query, emulated_now


def heads(cos_emulator) -> list[str]:
    return [entry.method for entry in cos_emulator.log.entries()]


def assert_read_only(cos_emulator, sink) -> None:
    """A status call makes no restore call and publishes nothing."""
    assert cos_emulator.emulator.restore_requests() == []
    assert sink.events == []


def test_missing_key_is_not_found(service, sink, cos_emulator, cos_clock):
    cos_emulator.emulator.create_bucket(COS_BUCKET)
    status = service.status(cos_query("nothing/here.bin"))
    assert status.state is StatusState.NOT_FOUND
    assert (status.provider, status.bucket, status.key, status.region) == (
        "cos", COS_BUCKET, "nothing/here.bin", COS_REGION
    )
    assert status.error is None
    assert status.attempts == 1
    assert heads(cos_emulator) == ["HEAD"]
    assert_read_only(cos_emulator, sink)


def test_missing_bucket_is_not_found(service, cos_emulator, cos_clock):
    status = service.status(cos_query(bucket="archive-nobucket-1250000000"))
    assert status.state is StatusState.NOT_FOUND
    assert status.error is None


@pytest.mark.parametrize("storage_class", ["STANDARD", "STANDARD_IA", "MAZ_STANDARD"])
def test_hot_classes_are_not_archived(service, sink, cos_emulator, cos_clock, storage_class):
    cos_emulator.emulator.put_object(COS_BUCKET, "hot.bin", b"12345", storage_class)
    status = service.status(cos_query("hot.bin"))
    assert status.state is StatusState.NOT_ARCHIVED
    assert status.storage_class == storage_class
    assert status.size == 5
    assert status.expiry_time is None
    assert_read_only(cos_emulator, sink)


@pytest.mark.parametrize(
    ("storage_tier", "state"),
    [("FREQUENT", StatusState.NOT_ARCHIVED), ("INFREQUENT", StatusState.NOT_ARCHIVED),
     ("ARCHIVE", StatusState.ARCHIVED), ("DEEP_ARCHIVE", StatusState.ARCHIVED)],
)
def test_intelligent_tiering_is_archived_only_in_an_archive_tier(
    service, cos_emulator, cos_clock, storage_tier, state
):
    cos_emulator.emulator.put_object(
        COS_BUCKET, "it.bin", b"x", "INTELLIGENT_TIERING", storage_tier=storage_tier
    )
    status = service.status(cos_query("it.bin"))
    assert status.state is state
    assert (status.storage_class, status.storage_tier) == ("INTELLIGENT_TIERING", storage_tier)


@pytest.mark.parametrize("storage_class", ["ARCHIVE", "DEEP_ARCHIVE", "MAZ_ARCHIVE"])
def test_archived_object_never_restored_is_archived(
    service, sink, cos_emulator, cos_clock, storage_class
):
    cos_emulator.emulator.put_object(COS_BUCKET, "cold.bin", b"x" * 7, storage_class)
    status = service.status(cos_query("cold.bin"))
    assert status.state is StatusState.ARCHIVED
    assert status.storage_class == storage_class
    assert status.size == 7
    assert (status.tier, status.requested_at, status.expiry_time) == (None, None, None)
    assert_read_only(cos_emulator, sink)


@pytest.mark.parametrize(
    ("storage_class", "tier"),
    [("ARCHIVE", "Expedited"), ("ARCHIVE", "Standard"), ("ARCHIVE", "Bulk"),
     ("DEEP_ARCHIVE", "Standard"), ("DEEP_ARCHIVE", "Bulk")],
)
def test_running_restore_is_restoring_with_its_tier_and_request_time(
    service, cos_emulator, cos_clock, storage_class, tier
):
    cos_emulator.emulator.put_object(COS_BUCKET, "job.bin", b"x", storage_class)
    requested = emulated_now(cos_emulator)
    assert service.restore(cos_request("job.bin", tier=tier)).status is OutcomeStatus.INITIATED
    cos_emulator.emulator.clock.advance(30)  # still running, whatever the tier

    status = service.status(cos_query("job.bin"))
    assert status.state is StatusState.RESTORING
    assert status.tier == tier
    assert close(status.requested_at, requested)
    assert status.expiry_time is None


def test_finished_restore_is_restored_with_its_expiry(service, cos_emulator, cos_clock):
    cos_emulator.emulator.put_object(COS_BUCKET, "ready.bin", b"x", "ARCHIVE")
    service.restore(cos_request("ready.bin", days=3, tier="Expedited"))
    cos_emulator.emulator.clock.advance(EXPEDITED_SECONDS + 1)
    done_at = emulated_now(cos_emulator)

    status = service.status(cos_query("ready.bin"))
    assert status.state is StatusState.RESTORED
    assert status.storage_class == "ARCHIVE"
    # Days=3 from completion (one second ago on the emulated clock).
    assert close(status.expiry_time, done_at + timedelta(days=3), tolerance=3)
    assert status.expiry_time == service.check(cos_request("ready.bin"), publish=False).expiry_time
    assert status.tier is None  # x-cos-restore-status is only sent while running


def test_expired_restore_needs_the_previous_expiry_from_the_caller(
    service, cos_emulator, cos_clock
):
    cos_emulator.emulator.put_object(COS_BUCKET, "gone.bin", b"x", "ARCHIVE")
    service.restore(cos_request("gone.bin", days=1, tier="Expedited"))
    cos_emulator.emulator.clock.advance(EXPEDITED_SECONDS + 1)
    restored = service.status(cos_query("gone.bin"))
    assert restored.state is StatusState.RESTORED
    expiry = restored.expiry_time
    assert expiry is not None

    cos_emulator.emulator.clock.advance(DAY + 1)  # past the expiry: COS drops x-cos-restore
    assert cos_emulator.emulator.restore_state(COS_BUCKET, "gone.bin")["x_cos_restore"] is None

    # Without history an expired restore looks like one never made...
    assert service.status(cos_query("gone.bin")).state is StatusState.ARCHIVED
    # ...with the ledger's expiry it is told apart, as an argument or in the query.
    by_argument = service.status(cos_query("gone.bin"), previous_expiry=expiry)
    by_query = service.status(cos_query("gone.bin", previous_expiry=expiry.isoformat()))
    for status in (by_argument, by_query):
        assert status.state is StatusState.RESTORE_EXPIRED
        assert status.expiry_time == expiry
        assert status.storage_class == "ARCHIVE"


def test_previous_expiry_still_ahead_is_archived(service, cos_emulator, cos_clock):
    cos_emulator.emulator.put_object(COS_BUCKET, "cold.bin", b"x", "ARCHIVE")
    ahead = emulated_now(cos_emulator) + timedelta(hours=1)
    status = service.status(cos_query("cold.bin"), previous_expiry=ahead)
    assert status.state is StatusState.ARCHIVED
    assert status.expiry_time is None


def test_naive_previous_expiry_is_taken_as_utc(service, cos_emulator, cos_clock):
    cos_emulator.emulator.put_object(COS_BUCKET, "cold.bin", b"x", "ARCHIVE")
    past = (emulated_now(cos_emulator) - timedelta(days=2)).replace(tzinfo=None)
    status = service.status(cos_query("cold.bin"), previous_expiry=past)
    assert status.state is StatusState.RESTORE_EXPIRED
    assert status.expiry_time is not None and status.expiry_time.utcoffset() == timedelta(0)
    assert status.expiry_time.replace(tzinfo=None) == past


def test_previous_expiry_does_not_turn_a_hot_object_into_an_expired_restore(
    service, cos_emulator, cos_clock
):
    cos_emulator.emulator.put_object(COS_BUCKET, "hot.bin", b"x", "STANDARD")
    past = emulated_now(cos_emulator) - timedelta(days=2)
    assert service.status(cos_query("hot.bin"), previous_expiry=past).state is (
        StatusState.NOT_ARCHIVED
    )


def test_header_whose_expiry_date_has_passed_is_restore_expired(service, cos_emulator, cos_clock):
    """COS may still send x-cos-restore after expiry-date (it drops the copy on its own
    schedule): the header alone then says restore_expired, no history needed."""
    cos_emulator.emulator.put_object(COS_BUCKET, "lag.bin", b"x", "ARCHIVE")
    service.restore(cos_request("lag.bin", days=1, tier="Expedited"))
    cos_emulator.emulator.clock.advance(EXPEDITED_SECONDS + 1)
    expiry = service.status(cos_query("lag.bin")).expiry_time
    assert expiry is not None

    cos_clock(2 * DAY)  # the function's clock is past expiry-date; COS has not dropped it yet
    state = cos_emulator.emulator.restore_state(COS_BUCKET, "lag.bin")
    assert state["status"] == "readable" and state["x_cos_restore"] is not None

    status = service.status(cos_query("lag.bin"))
    assert status.state is StatusState.RESTORE_EXPIRED
    assert status.expiry_time == expiry


def test_version_id_is_sent_and_an_unknown_version_is_not_found(service, cos_emulator, cos_clock):
    described = cos_emulator.emulator.put_object(COS_BUCKET, "v.bin", b"x", "ARCHIVE")
    found = service.status(cos_query("v.bin", versionId=described["version_id"]))
    assert found.state is StatusState.ARCHIVED
    assert found.version_id == described["version_id"]
    missing = service.status(cos_query("v.bin", version_id="no-such-version"))
    assert missing.state is StatusState.NOT_FOUND
    sent = [entry.query.get("versionId") for entry in cos_emulator.log.entries()]
    assert sent == [described["version_id"], "no-such-version"]


def test_provider_spelling_is_inferred(service, cos_emulator, cos_clock):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    status = service.status({"Bucket": COS_BUCKET, "Region": COS_REGION, "Key": "k.bin"})
    assert isinstance(status, ObjectStatus)
    assert (status.provider, status.state) == ("cos", StatusState.ARCHIVED)
