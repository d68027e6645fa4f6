"""RESTORE_GCS_ALLOW_OVERWRITE=0: a deployment granted no storage.objects.delete refuses
overwriting restores itself (422 naming ``allow_overwrite``) before any provider call."""

from __future__ import annotations

from shared.config import Settings
from shared.outcome import OutcomeStatus
from shared.retry import RetryPolicy
from shared.service import RestoreService
from tests.conftest import GCS_BUCKET, CollectingSink, gcs_request, make_settings


def _service(gcs_emulator, **overrides) -> RestoreService:
    settings = make_settings(gcs=gcs_emulator, **overrides)
    return RestoreService(settings, sink=CollectingSink(),
                          retry=RetryPolicy.from_settings(settings))


def _restores(gcs_emulator) -> int:
    return sum(1 for e in gcs_emulator.log.entries() if e.path.endswith("/restore"))


def _soft_deleted_with_live_copy(gcs_emulator, name: str) -> None:
    gcs_emulator.emulator.put_object(GCS_BUCKET, name, b"old")
    gcs_emulator.emulator.delete_object(GCS_BUCKET, name)
    gcs_emulator.emulator.put_object(GCS_BUCKET, name, b"live")


def test_the_setting_reads_from_the_environment_and_defaults_to_allowed():
    assert Settings.from_env({}).gcs_allow_overwrite is True
    assert Settings.from_env({"RESTORE_GCS_ALLOW_OVERWRITE": "0"}).gcs_allow_overwrite is False
    assert Settings.from_env({"RESTORE_GCS_ALLOW_OVERWRITE": "1"}).gcs_allow_overwrite is True


def test_an_overwriting_restore_is_refused_without_a_provider_call(gcs_emulator):
    _soft_deleted_with_live_copy(gcs_emulator, "ow/a.csv")
    service = _service(gcs_emulator, gcs_allow_overwrite=False)
    handled = service.handle(gcs_request("ow/a.csv", allow_overwrite=True))
    assert handled.outcome.status is OutcomeStatus.REJECTED
    [problem] = handled.outcome.error.fields
    assert (problem.field, problem.type) == ("allow_overwrite", "overwrite_not_allowed")
    assert _restores(gcs_emulator) == 0
    # The same deployment still restores when nothing would be replaced.
    gcs_emulator.emulator.put_object(GCS_BUCKET, "ow/b.csv", b"b")
    gcs_emulator.emulator.delete_object(GCS_BUCKET, "ow/b.csv")
    assert service.handle(gcs_request("ow/b.csv")).outcome.status is OutcomeStatus.COMPLETED
    assert _restores(gcs_emulator) == 1


def test_allowed_by_default_the_overwrite_reaches_the_provider(gcs_emulator):
    _soft_deleted_with_live_copy(gcs_emulator, "ow/c.csv")
    handled = _service(gcs_emulator).handle(gcs_request("ow/c.csv", allow_overwrite=True))
    assert handled.outcome.status is OutcomeStatus.COMPLETED
    assert _restores(gcs_emulator) == 1
