"""Duplicate deliveries through the service and the queue path, against the emulators: the
ledger keeps each phase to one provider restore and one event; a shared ledger in a GCS bucket
works across service instances (separate function instances)."""

from __future__ import annotations

import json

from emulators._http import FaultPlan
from shared.ledger import Ledger
from shared.ledger.stores import GcsStore
from shared.outcome import OutcomeStatus
from shared.providers.clients import gcs_client
from shared.queue import process_message
from shared.retry import RetryPolicy
from shared.service import RestoreService
from tests.conftest import (
    COS_BUCKET,
    GCS_BUCKET,
    CollectingSink,
    cos_request,
    gcs_request,
    make_settings,
)


def _restore_posts(cos_emulator) -> int:
    return sum(1 for e in cos_emulator.log.entries()
               if e.method == "POST" and "restore" in e.query)


def _gcs_restores(gcs_emulator) -> int:
    return sum(1 for e in gcs_emulator.log.entries() if e.path.endswith("/restore"))


def test_cos_request_redelivered_while_running_then_after_completion(service, sink, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "dup/a.bin", b"x", "ARCHIVE")
    request = cos_request("dup/a.bin", request_id="dup-cos-1")
    first = service.handle(request)
    again = service.handle(request)
    assert first.outcome.status is OutcomeStatus.INITIATED and first.published
    assert again.replayed and again.outcome == first.outcome
    cos_emulator.emulator.clock.advance(3600)
    finished = service.handle(request)
    late = service.handle(request)
    assert finished.outcome.status is OutcomeStatus.COMPLETED and finished.published
    assert late.replayed and late.outcome.status is OutcomeStatus.COMPLETED
    assert sink.types() == ["initiated", "completed"]
    assert _restore_posts(cos_emulator) == 1


def test_a_redelivered_batch_does_not_repeat_finished_items(service, sink, gcs_emulator):
    for name in ("b/1.txt", "b/2.txt"):
        gcs_emulator.emulator.put_object(GCS_BUCKET, name, b"x")
        gcs_emulator.emulator.delete_object(GCS_BUCKET, name)
    batch = {"requests": [gcs_request("b/1.txt"), gcs_request("b/2.txt")]}
    # The second item fails retryably the first time: the message must be redelivered.
    gcs_emulator.faults.set(FaultPlan(script=[200, 503, 503, 503], match_method="POST"))
    body = json.dumps(batch)
    first = process_message(service, body, message_id="m-7")
    assert first.retry
    assert [o.status for o in first.outcomes] == [OutcomeStatus.COMPLETED, OutcomeStatus.FAILED]
    assert sink.types() == ["completed"]
    second = process_message(service, body, message_id="m-7")
    assert [o.status for o in second.outcomes] == [OutcomeStatus.COMPLETED] * 2
    assert not second.retry
    assert sink.types() == ["completed", "completed"]
    assert len({e.data.request_id for e in sink.events}) == 2
    assert _gcs_restores(gcs_emulator) == 5  # 1 + 3 refused + 1: item 1 never again
    assert first.outcomes[0].request_id == second.outcomes[0].request_id


def test_request_id_reused_for_another_object_is_refused(service, sink, gcs_emulator):
    for name in ("r/1.txt", "r/2.txt"):
        gcs_emulator.emulator.put_object(GCS_BUCKET, name, b"x")
        gcs_emulator.emulator.delete_object(GCS_BUCKET, name)
    service.handle(gcs_request("r/1.txt", request_id="same-id"))
    reused = service.handle(gcs_request("r/2.txt", request_id="same-id"))
    assert reused.outcome.status is OutcomeStatus.REJECTED
    assert reused.outcome.error is not None and reused.outcome.error.code.value == "conflict"
    assert _gcs_restores(gcs_emulator) == 1


def test_a_ledger_in_a_gcs_bucket_is_shared_between_instances(cos_emulator, gcs_emulator):
    gcs_emulator.emulator.create_bucket("restore-ledger")
    gcs_emulator.emulator.put_object(GCS_BUCKET, "shared.txt", b"x")
    gcs_emulator.emulator.delete_object(GCS_BUCKET, "shared.txt")
    settings = make_settings(cos_emulator, gcs_emulator, ledger="gs://restore-ledger/restorefn")
    sinks = [CollectingSink(), CollectingSink()]
    instances = [RestoreService(settings, sink=s, retry=RetryPolicy.from_settings(settings))
                 for s in sinks]
    request = gcs_request("shared.txt", request_id="across-1")
    first = instances[0].handle(request)
    second = instances[1].handle(request)
    assert first.published and second.replayed
    assert second.outcome == first.outcome
    assert [s.types() for s in sinks] == [["completed"], []]
    names = sorted(g["name"] for g in gcs_emulator.emulator.generations("restore-ledger")
                   if g["state"] == "live")
    assert names == ["restorefn/requests/across-1/done"]


def test_gcs_store_creates_only_when_absent(gcs_emulator):
    gcs_emulator.emulator.create_bucket("restore-ledger")
    settings = make_settings(gcs=gcs_emulator)
    store = GcsStore("restore-ledger", "p", lambda: gcs_client(settings.gcs), timeout=5)
    assert store.get("k") is None
    assert store.create("k", b"one") is True
    assert store.create("k", b"two") is False
    assert store.get("k") == b"one"
    store.delete("k")
    store.delete("k")  # absent is fine
    assert store.get("k") is None
    ledger = Ledger(store)
    assert ledger.recall("nothing", "done") is None
