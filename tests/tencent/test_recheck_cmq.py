"""Re-checks on Tencent SCF end to end: a COS restore requested through ``main_handler`` (CMQ topic
event) with ``RESTORE_RECHECK_SCHEDULER=tdmq`` schedules a delayed ``SendCmqMsg`` in the TDMQ
emulator; each message, once its delay has passed on the emulated clocks, is pushed back to
``main_handler`` as an SCF CMQ queue-trigger event, until the COS emulator's restore is done and
``completed`` is published to the TDMQ event topic, once.

Everything goes through the real SDKs (cos-python-sdk-v5, tencentcloud-sdk-python-tdmq) and the
function's own configuration path: the execution role's temporary ``TENCENTCLOUD_*`` keys (with
their session token, checked by the TDMQ emulator) serve COS, the re-check queue and the event
topic alike. Time moves only by advancing the emulators' virtual clocks together; the service's
re-check clock (``service.now``) follows the COS emulator's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

import pytest

from emulators._http import FaultPlan, RunningEmulator, serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from emulators.tdmq import TdmqEmulator
from shared.recheck import MAX_CHECKS, recheck_offsets
from shared.schedulers.tdmq import TdmqScheduler
from tests.conftest import COS_BUCKET, COS_REGION, cos_request
from tests.tdmq.conftest import Tdmq
from tests.tencent.conftest import cmq_event, statuses

RECHECKS = "restore-rechecks"
EVENTS = "restore-events"
ROLE_TOKEN = "scf-role-session-token"
SCF_RETRY_DELAY = 60.0  # SCF retries a failed asynchronous invocation about a minute later


@pytest.fixture
def tdmq() -> Iterator[Tdmq]:
    # The execution role's keys are the ones the COS emulator knows; TDMQ checks the token too.
    emulator = TdmqEmulator(
        credentials={DEFAULT_SECRET_ID: DEFAULT_SECRET_KEY},
        tokens={DEFAULT_SECRET_ID: ROLE_TOKEN},
        topics=[EVENTS], queues=[RECHECKS], push_interval=None,
    )
    try:
        with serve(emulator) as running:
            yield Tdmq(running)
    finally:
        emulator.close()


@dataclass
class Stack:
    scf: ModuleType
    cos: RunningEmulator
    tdmq: Tdmq
    invocations: list[dict[str, Any]]

    def advance(self, seconds: float) -> None:
        """Move both emulated clocks (and so the service's re-check clock) together."""
        self.tdmq.emulator.clock.advance(seconds)
        self.cos.emulator.clock.advance(seconds)

    def request(self, key: str, **fields: Any) -> dict[str, Any]:
        """A restore request published to the request topic, as SCF's CMQ trigger delivers it."""
        body = json.dumps(cos_request(key, **fields))
        summary: dict[str, Any] = self.scf.main_handler(cmq_event(body), {"request_id": "inv-0"})
        return summary

    def push_to(self, target: Callable[[dict[str, Any]], object]) -> None:
        self.tdmq.emulator.set_queue_push(RECHECKS, target)

    def deliver_rechecks(self, limit: int = 200) -> list[int]:
        """Deliver every pending re-check when it is due (the queue's SCF trigger), in order;
        a failed invocation is pushed again a minute later. Returns the DelaySeconds sent."""
        emulator = self.tdmq.emulator
        delays: list[int] = []
        while (pending := emulator.queue_messages(RECHECKS)) and len(delays) < limit:
            message = pending[0]
            if message["delivery_attempts"] == 0:
                delays.append(message["delay_seconds"])
            self.advance(max(0.0, message["visible_at"] - emulator.clock.now()))
            if emulator.deliver_due() == 0:
                self.advance(SCF_RETRY_DELAY)
        assert emulator.queue_messages(RECHECKS) == [], "re-checks still pending"
        return delays

    def events(self) -> list[dict[str, Any]]:
        """The CloudEvents published to the TDMQ event topic, in order."""
        return [json.loads(m["body"]) for m in self.tdmq.emulator.topic_messages(EVENTS)]

    def hops(self) -> list[dict[str, Any]]:
        """Every re-check message the queue delivered (chained hops included), in order."""
        return [json.loads(m["body"]) for m in self.tdmq.emulator.consumed_messages(RECHECKS)]

    def heads(self) -> int:
        return sum(1 for e in self.cos.log.entries() if e.method == "HEAD")


@pytest.fixture
def stack(scf: ModuleType, monkeypatch: pytest.MonkeyPatch, cos_emulator: RunningEmulator,
          tdmq: Tdmq) -> Stack:
    # SCF hands the execution role's temporary keys to the function under TENCENTCLOUD_*.
    monkeypatch.delenv("COS_SECRET_ID")
    monkeypatch.delenv("COS_SECRET_KEY")
    for name, value in {
        "TENCENTCLOUD_SECRETID": DEFAULT_SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": DEFAULT_SECRET_KEY,
        "TENCENTCLOUD_SESSIONTOKEN": ROLE_TOKEN,
        "TENCENTCLOUD_REGION": COS_REGION,
        "TDMQ_ENDPOINT": tdmq.endpoint,
        "RESTORE_EVENT_SINK": "tdmq",
        "RESTORE_EVENT_TDMQ_TOPIC": EVENTS,
        "RESTORE_RECHECK_SCHEDULER": "tdmq",
        "RESTORE_RECHECK_TDMQ_QUEUE": RECHECKS,
    }.items():
        monkeypatch.setenv(name, value)
    service = scf.get_service()
    assert isinstance(service.scheduler, TdmqScheduler)
    clock = cos_emulator.emulator.clock
    service.now = lambda: datetime.fromtimestamp(clock.now(), timezone.utc)
    invocations: list[dict[str, Any]] = []
    built = Stack(scf, cos_emulator, tdmq, invocations)

    def trigger(event: dict[str, Any]) -> None:
        invocations.append(event)
        scf.main_handler(event, {"request_id": f"inv-{len(invocations)}"})

    built.push_to(trigger)
    return built


def finish_within_window(cos: RunningEmulator, storage_class: str, tier: str) -> float:
    """Make the emulated restore take 30% into the tier's window (a few looks, not one), as the
    in-process re-check tests do; returns the duration."""
    offsets = recheck_offsets(storage_class, tier, 0.5)
    low, high = offsets[0], offsets[-1] / 1.5
    duration = low + 0.3 * (high - low)
    cos.emulator.restore_durations[(storage_class, tier)] = duration
    return duration


@pytest.mark.parametrize("tier", ["Expedited", "Standard", "Bulk"])
def test_each_tier_completes_once_through_delayed_cmq_messages(stack: Stack, tier: str) -> None:
    duration = finish_within_window(stack.cos, "ARCHIVE", tier)
    key = f"scf-recheck/{tier}.bin"
    stack.cos.emulator.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
    started = stack.cos.emulator.clock.now()

    summary = stack.request(key, tier=tier, request_id=f"scf-{tier}", context={"ticket": tier})
    assert summary["counts"] == {"initiated": 1} and summary["retry"] is False
    [first] = stack.tdmq.emulator.queue_messages(RECHECKS)
    assert 0 < first["delay_seconds"] <= 3600
    delays = stack.deliver_rechecks()

    events = stack.events()
    assert statuses(events) == ["initiated", "completed"]
    completed = events[-1]["data"]
    assert completed["request_id"] == f"scf-{tier}" and completed["context"] == {"ticket": tier}
    assert completed["expiry_time"] is not None
    assert [m["tags"] for m in stack.tdmq.emulator.topic_messages(EVENTS)][-1] == [
        "completed", "cos"
    ]
    assert stack.cos.emulator.clock.now() - started >= duration  # not before the copy was ready
    assert max(delays) <= 3600
    hops = stack.hops()
    checks = [h for h in hops if h["not_before"] is None]
    assert 2 <= len(checks) <= MAX_CHECKS  # a few looks at the object, one HEAD each
    assert stack.heads() <= len(checks) + 1  # the restore's own HEAD, then one per look
    chained = [h for h in hops if h["not_before"] is not None]
    if recheck_offsets("ARCHIVE", tier, 0.5)[0] > 3600:  # Standard (3 h) and Bulk (5 h)
        assert len(chained) >= recheck_offsets("ARCHIVE", tier, 0.5)[0] // 3600 - 1
    else:
        assert chained == []
    assert len(stack.invocations) == len(hops)  # one SCF invocation per delivered message
    assert all(e["Records"][0]["CMQ"]["type"] == "queue" for e in stack.invocations)


def test_duplicate_recheck_deliveries_publish_one_completed(stack: Stack) -> None:
    """CMQ delivers at least once and SCF retries: every message twice, the request twice."""
    finish_within_window(stack.cos, "ARCHIVE", "Expedited")
    stack.cos.emulator.put_object(COS_BUCKET, "scf-recheck/dup.bin", b"x", "ARCHIVE")
    twice: list[dict[str, Any]] = []

    def deliver_twice(event: dict[str, Any]) -> None:
        twice.append(event)
        for attempt in range(2):
            stack.scf.main_handler(event, {"request_id": f"dup-{len(twice)}-{attempt}"})

    stack.push_to(deliver_twice)
    stack.request("scf-recheck/dup.bin", request_id="scf-dup")
    stack.request("scf-recheck/dup.bin", request_id="scf-dup")  # the request redelivered
    stack.deliver_rechecks()
    assert statuses(stack.events()) == ["initiated", "completed"]
    assert len(twice) >= 2
    # The redelivered request scheduled its own first look; the ledger let one of them look.
    firsts = [h for h in stack.hops() if h["check"] == 0 and h["not_before"] is None]
    assert len(firsts) == 2
    assert stack.cos.emulator.restore_requests()[0]["received"] == 1  # one restore POST


def test_a_restore_overrunning_its_window_fails_with_a_timeout(stack: Stack) -> None:
    stack.cos.emulator.restore_durations[("ARCHIVE", "Expedited")] = 3600.0
    stack.cos.emulator.put_object(COS_BUCKET, "scf-recheck/slow.bin", b"x", "ARCHIVE")
    stack.request("scf-recheck/slow.bin", request_id="scf-slow")
    delays = stack.deliver_rechecks()
    assert len(delays) == MAX_CHECKS  # Expedited's window needs no chaining
    events = stack.events()
    assert statuses(events) == ["initiated", "failed"]
    error = events[-1]["data"]["error"]
    assert error["code"] == "timeout" and error["retryable"] is False
    offsets = recheck_offsets("ARCHIVE", "Expedited", 0.5)
    assert sum(delays) >= offsets[-1]  # the last look at the deadline, not before
    assert stack.tdmq.emulator.queue_messages(RECHECKS) == []


def test_a_failed_recheck_invocation_is_retried_by_scf_and_completes_once(stack: Stack) -> None:
    finish_within_window(stack.cos, "ARCHIVE", "Expedited")
    stack.cos.emulator.put_object(COS_BUCKET, "scf-recheck/flaky.bin", b"x", "ARCHIVE")
    stack.request("scf-recheck/flaky.bin", request_id="scf-flaky")
    # Every HEAD of the first look's invocation answers 503: it raises, SCF retries later.
    stack.cos.faults.set(FaultPlan(script=[503, 503, 503], match_method="HEAD"))
    stack.deliver_rechecks()
    assert statuses(stack.events()) == ["initiated", "completed"]
    first = stack.tdmq.emulator.consumed_messages(RECHECKS)[0]
    assert first["delivery_attempts"] == 2
    assert [i["Records"][0]["CMQ"]["msgId"] for i in stack.invocations[:2]] == [
        first["msg_id"], first["msg_id"]
    ]

