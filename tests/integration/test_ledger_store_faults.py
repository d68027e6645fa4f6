"""The GCS ledger store through faults on its own bucket (the fault soak's ``--ledger-faults``
found 108 requests lost and 55 doubled per 1,000 when store calls did not retry).

Each fault is scripted on the GCS emulator, so every case is deterministic: a 5xx or a reset
is retried; a lost answer (the emulator acted, then reset the connection) is retried and the
store reads the record back to tell its own write from another copy's.
"""

from __future__ import annotations

import pytest

from emulators._http import LOST, RESET, FaultPlan
from shared.ledger import DONE, Ledger
from shared.ledger.stores import STORE_ATTEMPTS, GcsStore, StoreError
from shared.outcome import Outcome, OutcomeStatus
from shared.providers.clients import gcs_client
from tests.conftest import make_settings

BUCKET = "restore-ledger"


@pytest.fixture
def store(gcs_emulator) -> GcsStore:
    gcs_emulator.emulator.create_bucket(BUCKET)
    settings = make_settings(gcs=gcs_emulator)
    return GcsStore(BUCKET, "p", lambda: gcs_client(settings.gcs), timeout=5)


# The store's own requests are on the bucket's objects; after an error the client also reads the
# bucket itself, which neither the faults nor the counts are about.
OBJECTS = f"/b/{BUCKET}/o"


def faults(gcs_emulator, script: list[int], method: str | None = None) -> None:
    gcs_emulator.faults.set(FaultPlan(match_path=OBJECTS, match_method=method, script=script))


def calls(gcs_emulator, method: str) -> int:
    return sum(1 for entry in gcs_emulator.log.entries()
               if entry.method == method and OBJECTS in entry.path)


def test_a_create_whose_answer_was_lost_is_still_ours_and_only_once(store, gcs_emulator):
    faults(gcs_emulator, [LOST], method="POST")
    assert store.create("k", b"mine") is True  # 412 on the retry, then its own bytes read back
    assert store.get("k") == b"mine"
    assert store.create("k", b"theirs") is False  # another copy still loses
    assert calls(gcs_emulator, "POST") == 3


def test_a_create_that_lost_to_another_copy_is_not_ours_after_a_retry(store, gcs_emulator):
    assert store.create("k", b"theirs") is True
    faults(gcs_emulator, [503], method="POST")
    assert store.create("k", b"mine") is False
    assert store.get("k") == b"theirs"


@pytest.mark.parametrize("fault", [500, 503, 429, RESET])
def test_transient_failures_of_every_call_are_retried(store, gcs_emulator, fault):
    faults(gcs_emulator, [fault])
    assert store.create("k", b"v") is True
    faults(gcs_emulator, [fault])
    assert store.get("k") == b"v"
    faults(gcs_emulator, [fault])
    store.put("k", b"w")
    faults(gcs_emulator, [fault])
    assert store.replace("k", b"w", b"x") is True
    faults(gcs_emulator, [fault])
    assert store.delete_if("k", b"x") is True
    assert store.get("k") is None
    faults(gcs_emulator, [fault])
    store.delete("k")


def test_a_replace_whose_answer_was_lost_reports_its_own_write(store, gcs_emulator):
    assert store.create("claim", b"stale") is True
    faults(gcs_emulator, [LOST], method="POST")
    assert store.replace("claim", b"stale", b"fresh") is True
    assert store.get("claim") == b"fresh"
    assert store.replace("claim", b"stale", b"other") is False


def test_a_conditional_delete_whose_answer_was_lost_reports_its_own_delete(store, gcs_emulator):
    assert store.create("claim", b"held") is True
    faults(gcs_emulator, [LOST], method="DELETE")
    assert store.delete_if("claim", b"held") is True
    assert store.get("claim") is None
    assert calls(gcs_emulator, "DELETE") == 1  # the retry found it gone and sent no second


def test_the_store_gives_up_after_its_attempts_and_at_once_on_a_permanent_refusal(
    store, gcs_emulator
):
    faults(gcs_emulator, [503] * STORE_ATTEMPTS)
    with pytest.raises(StoreError, match="ServiceUnavailable"):
        store.get("k")
    assert calls(gcs_emulator, "GET") == STORE_ATTEMPTS
    faults(gcs_emulator, [403])
    with pytest.raises(StoreError, match="Forbidden"):
        store.create("k", b"v")
    assert calls(gcs_emulator, "POST") == 1


def test_a_phase_recorded_through_a_lost_answer_is_published_once(store, gcs_emulator):
    ledger = Ledger(store)
    outcome = Outcome(request_id="lost-1", status=OutcomeStatus.COMPLETED)
    published: list[Outcome] = []
    # Every write of the first publish loses its answer: the claim, the phase record.
    faults(gcs_emulator, [LOST, LOST], method="POST")
    assert ledger.publish_once(outcome, published.append) is True
    assert ledger.publish_once(outcome, published.append) is False  # a redelivery
    assert published == [outcome]
    assert ledger.recall("lost-1", DONE) == outcome
