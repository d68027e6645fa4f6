"""Completion without a storage trigger: an initiated COS restore is re-checked on the tier's
schedule until the copy is readable (``completed`` once) or the window has passed (``failed``).

The platform's delay queue is stood in for by an in-process one; the COS emulator's clock is
advanced by each delay before the message is delivered, and the service follows that clock.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from shared.outcome import OutcomeStatus
from shared.queue import process_message
from shared.recheck import MAX_CHECKS, recheck_offsets
from shared.retry import RetryPolicy
from shared.service import RestoreService
from tests.conftest import COS_BUCKET, CollectingSink, cos_request, make_settings


@dataclass
class DelayQueue:
    """An in-process stand-in for Cloud Tasks / TDMQ delayed messages, deduplicating by key."""

    pending: list[tuple[bytes, float, str | None]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def schedule(self, body: bytes, delay_seconds: float, *, dedup_key: str | None) -> None:
        if dedup_key is not None and dedup_key in self.keys:
            return
        if dedup_key is not None:
            self.keys.add(dedup_key)
        self.pending.append((body, delay_seconds, dedup_key))

    def pop(self) -> tuple[bytes, float]:
        body, delay, _ = self.pending.pop(0)
        return body, delay


def _service(cos_emulator, sink, queue, **overrides) -> RestoreService:
    settings = make_settings(cos_emulator, **overrides)
    service = RestoreService(settings, sink=sink, retry=RetryPolicy.from_settings(settings),
                             scheduler=queue)
    clock = cos_emulator.emulator.clock
    service.now = lambda: datetime.fromtimestamp(clock.now(), timezone.utc)
    return service


def _drain(service, queue, clock, limit=50) -> list[float]:
    """Deliver every scheduled re-check in order, advancing the emulator by each delay."""
    delays = []
    while queue.pending and len(delays) < limit:
        body, delay = queue.pop()
        clock.advance(delay)
        delays.append(delay)
        result = process_message(service, body)
        assert not result.retry
    return delays


@pytest.mark.parametrize(("tier", "storage_class"), [
    ("Expedited", "ARCHIVE"), ("Standard", "ARCHIVE"), ("Bulk", "ARCHIVE"),
    ("Bulk", "DEEP_ARCHIVE"),
])
def test_each_tier_completes_through_rechecks_once(cos_emulator, tier, storage_class):
    # The emulated restore takes 30% into the tier's window: a few checks, not one.
    offsets = recheck_offsets(storage_class, tier, 0.5)
    low = offsets[0]
    high = offsets[-1] / 1.5
    cos_emulator.emulator.restore_durations[(storage_class, tier)] = low + 0.3 * (high - low)
    key = f"recheck/{tier}.bin"
    cos_emulator.emulator.put_object(COS_BUCKET, key, b"x", storage_class)
    sink, queue = CollectingSink(), DelayQueue()
    service = _service(cos_emulator, sink, queue)
    outcome = service.restore(cos_request(key, tier=tier, request_id=f"rc-{tier}"))
    assert outcome.status is OutcomeStatus.INITIATED
    delays = _drain(service, queue, cos_emulator.emulator.clock)
    assert sink.types() == ["initiated", "completed"]
    assert 2 <= len(delays) <= MAX_CHECKS
    assert delays[0] == pytest.approx(low, abs=1.0)  # the first look near the lower bound
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(delays[1:]))  # growing intervals
    completed = sink.events[-1].data
    assert completed.expiry_time is not None and completed.request_id == f"rc-{tier}"
    heads = [e for e in cos_emulator.log.entries() if e.method == "HEAD"]
    assert len(heads) <= MAX_CHECKS + 1


def test_a_restore_that_overruns_its_window_fails_with_a_timeout(cos_emulator):
    cos_emulator.emulator.restore_durations[("ARCHIVE", "Expedited")] = 3600.0
    cos_emulator.emulator.put_object(COS_BUCKET, "slow.bin", b"x", "ARCHIVE")
    sink, queue = CollectingSink(), DelayQueue()
    service = _service(cos_emulator, sink, queue)
    service.restore(cos_request("slow.bin", request_id="rc-slow"))
    delays = _drain(service, queue, cos_emulator.emulator.clock)
    assert len(delays) == MAX_CHECKS
    assert sink.types() == ["initiated", "failed"]
    error = sink.events[-1].data.error
    assert error is not None and error.code.value == "timeout" and not error.retryable


def test_duplicate_rechecks_publish_one_completed(cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "dup.bin", b"x", "ARCHIVE")
    sink, queue = CollectingSink(), DelayQueue()
    service = _service(cos_emulator, sink, queue)
    service.restore(cos_request("dup.bin", request_id="rc-dup"))
    body, delay = queue.pop()
    cos_emulator.emulator.clock.advance(delay + 1)
    first = process_message(service, body)
    second = process_message(service, body)
    assert [o.status for o in first.outcomes] == [OutcomeStatus.COMPLETED]
    assert second.outcomes == []
    assert sink.types() == ["initiated", "completed"]


def test_a_long_delay_is_chained_through_the_transport_maximum(cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "deep.bin", b"x", "DEEP_ARCHIVE")
    sink, queue = CollectingSink(), DelayQueue()
    service = _service(cos_emulator, sink, queue, recheck_max_delay_seconds=3600.0)
    service.restore(cos_request("deep.bin", tier="Bulk", request_id="rc-deep"))
    delays = _drain(service, queue, cos_emulator.emulator.clock, limit=500)
    assert max(delays) <= 3600.0
    assert sink.types() == ["initiated", "completed"]
    # The first look is a day out (DEEP_ARCHIVE Bulk's lower bound): 24 one-hour hops.
    assert sum(delays) >= 24 * 3600 - 1
    assert sum(1 for d in delays if d == 3600.0) >= 23


def test_a_retryable_failure_during_a_recheck_asks_for_redelivery(cos_emulator):
    from emulators._http import FaultPlan

    cos_emulator.emulator.put_object(COS_BUCKET, "flaky.bin", b"x", "ARCHIVE")
    sink, queue = CollectingSink(), DelayQueue()
    service = _service(cos_emulator, sink, queue)
    service.restore(cos_request("flaky.bin", request_id="rc-flaky"))
    body, delay = queue.pop()
    cos_emulator.emulator.clock.advance(delay + 1)
    cos_emulator.faults.set(FaultPlan(script=[503, 503, 503], match_method="HEAD"))
    failed = process_message(service, body)
    assert failed.retry and sink.types() == ["initiated"]
    redelivered = process_message(service, body)
    assert not redelivered.retry
    assert sink.types() == ["initiated", "completed"]


def test_the_recheck_message_carries_the_request_and_its_context(cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "ctx.bin", b"x", "ARCHIVE")
    sink, queue = CollectingSink(), DelayQueue()
    service = _service(cos_emulator, sink, queue)
    service.restore(cos_request("ctx.bin", request_id="rc-ctx", context={"run": 7}))
    body, _ = queue.pop()
    message = json.loads(body)
    assert message["kind"] == "restorefn.recheck.v1"
    assert message["request"]["request_id"] == "rc-ctx"
    assert message["check"] == 0
    _drain(service, DelayQueue(pending=[(body, 60.0, None)]), cos_emulator.emulator.clock)
    assert sink.events[-1].data.context == {"run": 7}


def test_the_cos_trigger_and_a_recheck_publish_one_completed_between_them(cos_emulator):
    from shared.envelopes.cos_events import handle_restore_notice, parse_cos_record

    notices: list[dict] = []
    cos_emulator.emulator.restore_notify = notices.append
    cos_emulator.emulator.put_object(COS_BUCKET, "race.bin", b"x", "ARCHIVE")
    sink, queue = CollectingSink(), DelayQueue()
    service = _service(cos_emulator, sink, queue)
    service.restore(cos_request("race.bin", request_id="rc-race", context={"k": "v"}))
    body, delay = queue.pop()
    cos_emulator.emulator.clock.advance(delay + 1)
    cos_emulator.emulator.deliver_due_notifications()
    records = [r for event in notices for r in event["Records"]
               if r["event"]["eventName"] == "cos:ObjectRestore:Completed"]
    assert len(records) == 1
    triggered = handle_restore_notice(service, parse_cos_record(records[0], 0))
    rechecked = process_message(service, body)
    assert not triggered.retry and not rechecked.retry
    assert sink.types() == ["initiated", "completed"]
    completed = sink.events[-1].data
    assert completed.request_id == "rc-race" and completed.context == {"k": "v"}
