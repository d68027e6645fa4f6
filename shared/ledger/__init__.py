"""The restore ledger: which events a request has already had, so duplicates publish nothing
and restore nothing.

Queues deliver at least once and callers retry webhooks. Each request (by ``request_id``) has
two phases, ``accepted`` (initiated / in_progress) and ``done`` (completed, already_restored, a
final failure or refusal), and each phase's event is published at most once, whichever copy of
the request gets there first:

1. a copy that finds the phase recorded publishes nothing and answers with the recorded outcome;
2. otherwise it creates a short-lived claim (create-if-absent), checks again, publishes, records
   the phase, and drops the claim;
3. a copy that finds a fresh claim is told to come back later (``DuplicateInFlight``): the queue
   redelivers it, by which time the phase is recorded. A claim older than its TTL (its holder
   crashed between claiming and recording) may be taken over; the event is then published again
   with the same id, which is the at-least-once floor every consumer must handle anyway.

The same claims (``Ledger.claim``) keep the *provider call* to one copy: the service claims
``restoring`` before it restores, so two copies delivered at once to two instances send one
restore, not two (``shared.service``); bulk chunks and re-checks claim their own work the same
way. A stale claim is taken over by compare-and-swap, so only one of several copies finding it
stale wins, and a holder releases only a claim that is still its own.

Retryable failures are never recorded: the next attempt must really happen.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from shared.config import ConfigurationError, Settings
from shared.ledger.stores import GcsStore, LedgerStore, MemoryStore, StoreError
from shared.outcome import Outcome, OutcomeStatus
from shared.records import frozen

__all__ = [
    "ACCEPTED", "DONE", "Claim", "DuplicateInFlight", "Ledger", "LedgerStore", "MemoryStore",
    "StoreError", "ledger_from_settings", "phase_of",
]

logger = logging.getLogger("restorefn.ledger")

ACCEPTED, DONE = "accepted", "done"


def phase_of(status: OutcomeStatus) -> str:
    return ACCEPTED if status in (OutcomeStatus.INITIATED, OutcomeStatus.IN_PROGRESS) else DONE


class DuplicateInFlight(RuntimeError):
    """Another copy of this request (chunk, check) holds the claim on it right now."""


@frozen
class Claim:
    """A claim this copy holds; ``release`` drops it only while it is still this copy's."""

    store: LedgerStore
    key: str
    stamp: bytes

    def release(self) -> None:
        try:
            self.store.delete_if(self.key, self.stamp)
        except StoreError:  # whatever it guarded is recorded (or not); a stale claim ages out
            logger.warning("ledger claim %s not removed", self.key)


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
        claim = self.claim(f"{key}.claim")
        try:
            # Checked again under the claim: a copy that recorded the phase and dropped its claim
            # between our first look and our claim must not be published twice.
            if self.store.get(key) is not None:
                return False
            publish(outcome)
            self.store.create(key, outcome.model_dump_json().encode())
            return True
        finally:
            claim.release()

    def claim_request(self, request_id: str) -> Claim:
        """Claim the provider call of a request (``restoring``); raises DuplicateInFlight."""
        return self.claim(self._key(request_id, "restoring"))

    def claim(self, key: str, *, ttl_seconds: float | None = None) -> Claim:
        """Create the claim ``key`` (create-if-absent), or take it over once it is stale.

        Raises DuplicateInFlight while another copy holds it (and StoreError). The stamp names
        its holder and its expiry, so a checker honours the holder's TTL (a chunk's is longer
        than a request's), and a takeover is a compare-and-swap of the exact stale bytes.
        """
        now = self._clock()
        ttl = self._claim_ttl if ttl_seconds is None else ttl_seconds
        stamp = json.dumps({"claimed_at": now, "expires_at": now + ttl,
                            "holder": uuid.uuid4().hex}).encode()
        if self.store.create(key, stamp):
            return Claim(self.store, key, stamp)
        held = self.store.get(key)
        if held is None:  # released between our create and our read
            if self.store.create(key, stamp):
                return Claim(self.store, key, stamp)
        elif self._clock() >= self._expiry(held) and self.store.replace(key, held, stamp):
            logger.warning("ledger claim %s was stale; taken over", key)
            return Claim(self.store, key, stamp)
        raise DuplicateInFlight("another delivery of this request is being processed")

    def _expiry(self, held: bytes) -> float:
        try:
            stamp = json.loads(held)
            if "expires_at" in stamp:
                return float(stamp["expires_at"])
            return float(stamp["claimed_at"]) + self._claim_ttl
        except (ValueError, KeyError, TypeError):
            return 0.0  # unreadable: treat as stale


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
