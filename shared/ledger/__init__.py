"""The restore ledger: which events a request has already had, so duplicates publish nothing.

Queues deliver at least once and callers retry webhooks. Each request (by ``request_id``) has
two phases, ``accepted`` (initiated / in_progress) and ``done`` (completed, already_restored, a
final failure or refusal), and each phase's event is published at most once, whichever copy of
the request gets there first:

1. a copy that finds the phase recorded publishes nothing and answers with the recorded outcome;
2. otherwise it creates a short-lived claim (create-if-absent), checks again, publishes, records
   the phase, and drops the claim;
3. a copy that finds a fresh claim is told to come back later (``DuplicateInFlight``): the queue
   redelivers it, by which time the phase is recorded. A claim older than the TTL (its holder
   crashed between claiming and recording) may be taken over; the event is then published again
   with the same id, which is the at-least-once floor every consumer must handle anyway.

Retryable failures are never recorded: the next attempt must really happen.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from shared.config import ConfigurationError, Settings
from shared.ledger.stores import GcsStore, LedgerStore, MemoryStore, StoreError
from shared.outcome import Outcome, OutcomeStatus

__all__ = [
    "ACCEPTED", "DONE", "DuplicateInFlight", "Ledger", "LedgerStore", "MemoryStore", "StoreError",
    "ledger_from_settings", "phase_of",
]

logger = logging.getLogger("restorefn.ledger")

ACCEPTED, DONE = "accepted", "done"


def phase_of(status: OutcomeStatus) -> str:
    return ACCEPTED if status in (OutcomeStatus.INITIATED, OutcomeStatus.IN_PROGRESS) else DONE


class DuplicateInFlight(RuntimeError):
    """Another copy of this request is publishing the same phase right now."""


class Ledger:
    def __init__(
        self, store: LedgerStore, *, claim_ttl_seconds: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._claim_ttl = claim_ttl_seconds
        self._clock = clock

    @staticmethod
    def _key(request_id: str, phase: str) -> str:
        return f"requests/{quote(request_id, safe='')}/{phase}"

    def recall(self, request_id: str, phase: str) -> Outcome | None:
        """The outcome recorded for that phase, if its event was published."""
        raw = self.store.get(self._key(request_id, phase))
        return None if raw is None else Outcome.model_validate_json(raw)

    def publish_once(self, outcome: Outcome, publish: Callable[[Outcome], Any]) -> bool:
        """Publish ``outcome`` unless its phase was already published; True when it was now.

        Raises DuplicateInFlight, StoreError, or whatever ``publish`` raises (the claim is
        dropped first, so a later attempt can publish).
        """
        key = self._key(outcome.request_id, phase_of(outcome.status))
        if self.store.get(key) is not None:
            return False
        claim = f"{key}.claim"
        self._claim(claim)
        try:
            # Checked again under the claim: a copy that recorded the phase and dropped its claim
            # between our first look and our claim must not be published twice.
            if self.store.get(key) is not None:
                return False
            publish(outcome)
            self.store.create(key, outcome.model_dump_json().encode())
            return True
        finally:
            try:
                self.store.delete(claim)
            except StoreError:  # the record (if any) is written; a stale claim just ages out
                logger.warning("ledger claim %s not removed", claim)

    def _claim(self, claim: str) -> None:
        stamp = json.dumps({"claimed_at": self._clock()}).encode()
        if self.store.create(claim, stamp):
            return
        held = self.store.get(claim)
        try:
            claimed_at = float(json.loads(held or b"{}")["claimed_at"])
        except (ValueError, KeyError, TypeError):
            claimed_at = 0.0  # unreadable: treat as stale
        if held is not None and self._clock() - claimed_at < self._claim_ttl:
            raise DuplicateInFlight("another delivery of this request is being processed")
        self.store.delete(claim)
        if not self.store.create(claim, stamp):
            raise DuplicateInFlight("another delivery of this request is being processed")


def ledger_from_settings(settings: Settings, gcs_client_factory: Callable[[], object]) -> Ledger:
    """``RESTORE_LEDGER``: ``memory`` (default), or ``gs://BUCKET/PREFIX`` for a shared one."""
    spec = settings.ledger
    if spec == "memory":
        store: LedgerStore = MemoryStore()
    elif spec.startswith("gs://"):
        bucket, _, prefix = spec[len("gs://"):].partition("/")
        if not bucket:
            raise ConfigurationError("RESTORE_LEDGER must look like gs://BUCKET/PREFIX")
        store = GcsStore(bucket, prefix, gcs_client_factory, settings.provider_timeout_seconds)
    else:
        raise ConfigurationError("RESTORE_LEDGER must be memory or gs://BUCKET/PREFIX")
    return Ledger(store, claim_ttl_seconds=settings.ledger_claim_ttl_seconds)
