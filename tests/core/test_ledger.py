"""The ledger's publish-at-most-once policy over the in-memory store."""

from __future__ import annotations

import threading

import pytest

from shared.ledger import DONE, DuplicateInFlight, Ledger, MemoryStore
from shared.outcome import Outcome, OutcomeStatus


def outcome(status: OutcomeStatus = OutcomeStatus.COMPLETED, rid: str = "r-1") -> Outcome:
    return Outcome(status=status, request_id=rid, provider="gcs", bucket="b", key="k")


def test_a_phase_is_published_once_and_then_recalled():
    ledger = Ledger(MemoryStore())
    published: list[Outcome] = []
    assert ledger.publish_once(outcome(), published.append) is True
    assert ledger.publish_once(outcome(), published.append) is False
    assert len(published) == 1
    assert ledger.recall("r-1", DONE) == outcome()
    assert ledger.recall("r-2", DONE) is None


def test_accepted_and_done_are_separate_phases():
    ledger = Ledger(MemoryStore())
    published: list[Outcome] = []
    ledger.publish_once(outcome(OutcomeStatus.INITIATED), published.append)
    ledger.publish_once(outcome(OutcomeStatus.IN_PROGRESS), published.append)
    ledger.publish_once(outcome(OutcomeStatus.COMPLETED), published.append)
    assert [o.status for o in published] == [OutcomeStatus.INITIATED, OutcomeStatus.COMPLETED]


def test_a_failed_publish_releases_the_claim_so_a_retry_publishes():
    store = MemoryStore()
    ledger = Ledger(store)

    def broken(_: Outcome) -> None:
        raise RuntimeError("sink down")

    with pytest.raises(RuntimeError):
        ledger.publish_once(outcome(), broken)
    assert store.keys() == []
    published: list[Outcome] = []
    assert ledger.publish_once(outcome(), published.append) is True


def test_a_fresh_claim_held_by_another_copy_defers_and_a_stale_one_is_taken_over():
    now = [1000.0]
    store = MemoryStore()
    ledger = Ledger(store, claim_ttl_seconds=60, clock=lambda: now[0])
    store.create("requests/r-1/done.claim", b'{"claimed_at": 1000.0}')
    with pytest.raises(DuplicateInFlight):
        ledger.publish_once(outcome(), lambda _: None)
    now[0] += 61  # the holder crashed: its claim ages out
    published: list[Outcome] = []
    assert ledger.publish_once(outcome(), published.append) is True
    assert store.keys() == ["requests/r-1/done"]


def test_request_ids_with_slashes_cannot_collide_with_phase_keys():
    store = MemoryStore()
    ledger = Ledger(store)
    ledger.publish_once(outcome(rid="a/done"), lambda _: None)
    assert ledger.recall("a", DONE) is None
    assert ledger.recall("a/done", DONE) is not None


def test_concurrent_copies_publish_exactly_once():
    ledger = Ledger(MemoryStore())
    published: list[Outcome] = []
    gate = threading.Barrier(8)
    results: list[str] = []

    def publish(o: Outcome) -> None:
        published.append(o)

    def copy() -> None:
        gate.wait()
        try:
            results.append("published" if ledger.publish_once(outcome(), publish) else "dup")
        except DuplicateInFlight:
            results.append("deferred")

    threads = [threading.Thread(target=copy) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(published) == 1
    assert results.count("published") == 1
    assert len(results) == 8
