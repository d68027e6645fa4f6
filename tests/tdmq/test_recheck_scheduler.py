"""TdmqScheduler through the real tencentcloud SDK against the TDMQ emulator: delayed delivery,
rounding and limits, chaining of delays over CMQ's 3600 s, retries, errors, settings."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from emulators._http import FaultPlan, RunningEmulator
from emulators.tdmq import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from shared.config import TDMQ_MAX_DELAY_SECONDS, ConfigurationError, Settings
from shared.outcome import OutcomeStatus
from shared.queue import process_message
from shared.recheck import recheck_offsets
from shared.retry import RetryPolicy
from shared.schedulers import ScheduleError, scheduler_from_settings
from shared.schedulers.tdmq import TdmqScheduler, delay_seconds_for
from shared.service import RestoreService
from tests.conftest import COS_BUCKET, CollectingSink, cos_request, make_settings
from tests.tdmq.conftest import QUEUE, REGION, Tdmq

ROOT = Path(__file__).resolve().parents[2]
BODY = b'{"kind": "restorefn.recheck.v1", "check": 1, "token": "top-secret-body"}'


def make(tdmq: Tdmq, sleeps: list[float] | None = None, **overrides: Any) -> TdmqScheduler:
    options: dict[str, Any] = dict(
        queue=QUEUE, region=REGION, secret_id=DEFAULT_SECRET_ID, secret_key=DEFAULT_SECRET_KEY,
        endpoint=tdmq.endpoint, attempts=4, timeout=5.0,
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
    )
    options.update(overrides)
    return TdmqScheduler(**options)


def sends(tdmq: Tdmq) -> list[Any]:
    return tdmq.actions("SendCmqMsg")


# ---------------------------------------------------------------------------- delivery


def test_a_scheduled_recheck_arrives_as_a_queue_trigger_event_after_its_delay(tdmq: Tdmq) -> None:
    received: list[dict[str, Any]] = []
    emulator = tdmq.emulator
    emulator.set_queue_push(QUEUE, received.append)
    make(tdmq).schedule(BODY, 300, dedup_key="req-1/recheck/1")

    [message] = emulator.queue_messages(QUEUE)
    assert (message["delay_seconds"], message["visible"]) == (300, False)
    assert message["body"] == BODY.decode()
    assert message["region"] == REGION
    emulator.clock.advance(299)
    assert emulator.deliver_due() == 0 and received == []
    emulator.clock.advance(1)
    assert emulator.deliver_due() == 1
    [record] = received[0]["Records"]
    assert record["CMQ"]["type"] == "queue"
    assert record["CMQ"]["queueName"] == QUEUE
    assert record["CMQ"]["msgBody"] == BODY.decode()
    [sent] = sends(tdmq)  # one SendCmqMsg of the 2020-02-17 API, signed for the region
    assert (sent.headers.get("x-tc-version"), sent.headers.get("x-tc-region")) == (
        "2020-02-17", REGION
    )


@pytest.mark.parametrize(
    ("delay", "sent"),
    [(0, 0), (-5.0, 0), (60.0, 60), (60.2, 61), (449.999, 450), (3600.0, 3600), (3600.7, 3600)],
)
def test_delays_are_whole_seconds_rounded_up_within_the_maximum(
    tdmq: Tdmq, delay: float, sent: int
) -> None:
    make(tdmq).schedule(BODY, delay)
    [message] = tdmq.emulator.queue_messages(QUEUE)
    assert message["delay_seconds"] == sent
    assert len(sends(tdmq)) == 1


@pytest.mark.parametrize("delay", [3602.0, 7200.0, float("inf"), float("nan")])
def test_a_delay_beyond_the_maximum_is_refused_before_any_request(
    tdmq: Tdmq, delay: float
) -> None:
    with pytest.raises(ScheduleError) as caught:
        make(tdmq).schedule(BODY, delay)
    assert caught.value.retryable is False
    assert QUEUE in str(caught.value)
    assert sends(tdmq) == []


def test_a_lower_maximum_for_a_queue_with_a_shorter_retention(tdmq: Tdmq) -> None:
    # DelaySeconds may not exceed the queue's MsgRetentionSeconds: configured lower, it holds.
    tdmq.emulator.create_queue("short-retention", msg_retention_seconds=600)
    short = make(tdmq, queue="short-retention", max_delay_seconds=600)
    assert short.max_delay_seconds == 600
    short.schedule(BODY, 600)
    with pytest.raises(ScheduleError, match="maximum of 600"):
        short.schedule(BODY, 900)
    # Not configured lower, the service's refusal is a permanent error, not retried.
    sleeps: list[float] = []
    refused = r"InvalidParameterValue \(RequestId [\w-]+\) after 1 attempt$"
    with pytest.raises(ScheduleError, match=refused) as caught:
        make(tdmq, sleeps, queue="short-retention").schedule(BODY, 900)
    assert caught.value.retryable is False and sleeps == []
    assert [m["delay_seconds"] for m in tdmq.emulator.queue_messages("short-retention")] == [600]


def test_bodies_are_checked_before_any_request(tdmq: Tdmq) -> None:
    scheduler = make(tdmq)
    for body, reason in [(b"", "empty"), (b"\xff\xfe", "UTF-8"),
                         (b"x" * (1024 * 1024 + 1), "at most")]:
        with pytest.raises(ScheduleError, match=reason) as caught:
            scheduler.schedule(body, 10)
        assert caught.value.retryable is False
    assert sends(tdmq) == []


def test_one_client_is_built_and_reused(tdmq: Tdmq) -> None:
    scheduler = make(tdmq)
    scheduler.schedule(BODY, 1)
    client = scheduler._client.get()
    scheduler.schedule(BODY, 2)
    assert scheduler._client.get() is client
    assert [m["delay_seconds"] for m in tdmq.emulator.queue_messages(QUEUE)] == [1, 2]


# ---------------------------------------------------------------------------- chaining


def test_a_deep_archive_restore_is_rechecked_through_one_hour_hops(
    tdmq: Tdmq, cos_emulator: RunningEmulator
) -> None:
    """The service plans with the scheduler's settings: every delay over 3600 s is chained and
    each hop travels through the emulated queue; the restore completes once, a day and more in."""
    cos = cos_emulator.emulator
    low = recheck_offsets("DEEP_ARCHIVE", "Bulk", 0.5)[0]
    cos.restore_durations[("DEEP_ARCHIVE", "Bulk")] = low + 2 * 3600.0  # after the 1st look
    cos.put_object(COS_BUCKET, "deep.bin", b"x", "DEEP_ARCHIVE")
    settings = make_settings(
        cos_emulator, recheck_scheduler="tdmq", recheck_tdmq_queue=QUEUE,
        recheck_tdmq_region=REGION, event_tdmq_endpoint=tdmq.endpoint,
        event_tdmq_secret_id=DEFAULT_SECRET_ID, event_tdmq_secret_key=DEFAULT_SECRET_KEY,
    )
    assert settings.recheck_max_delay_seconds == TDMQ_MAX_DELAY_SECONDS  # set for tdmq
    sink = CollectingSink()
    service = RestoreService(settings, sink=sink, retry=RetryPolicy.from_settings(settings))
    assert isinstance(service.scheduler, TdmqScheduler)
    service.now = lambda: datetime.fromtimestamp(cos.clock.now(), timezone.utc)
    service.restore(cos_request("deep.bin", tier="Bulk", request_id="deep-1"))

    delays: list[int] = []
    emulator = tdmq.emulator
    while emulator.queue_messages(QUEUE) and len(delays) < 100:
        [message] = emulator.queue_messages(QUEUE)  # one pending re-check at a time
        delays.append(message["delay_seconds"])
        wait = message["visible_at"] - emulator.clock.now()
        emulator.clock.advance(wait)
        cos.clock.advance(wait)
        [popped] = emulator.pop_visible(QUEUE)
        assert not process_message(service, popped["body"], message_id=popped["msg_id"]).retry
    assert sink.types() == ["initiated", "completed"]
    assert max(delays) == 3600
    assert sum(delays) >= low  # the first look no earlier than the tier's lower bound
    assert delays.count(3600) >= 24  # a day of one-hour hops before the first look
    hops = [json.loads(m["body"]) for m in emulator.consumed_messages(QUEUE)]
    assert {h["request"]["request_id"] for h in hops} == {"deep-1"}
    assert any(h["not_before"] for h in hops) and hops[-1]["not_before"] is None


# ---------------------------------------------------------------------------- retries, errors


def test_transient_failures_are_retried_with_backoff_then_succeed(tdmq: Tdmq) -> None:
    tdmq.running.faults.set(FaultPlan(script=[500, 429, 0]))  # 5xx, throttled, reset
    sleeps: list[float] = []
    make(tdmq, sleeps).schedule(BODY, 30)
    assert [(e.status, e.fault) for e in sends(tdmq)][:2] == [(500, "injected"), (200, "injected")]
    assert len(sends(tdmq)) == 4
    assert len(sleeps) == 3
    assert 0.125 <= sleeps[0] <= 0.375 and 0.25 <= sleeps[1] <= 0.75  # exponential, jittered
    assert [m["delay_seconds"] for m in tdmq.emulator.queue_messages(QUEUE)] == [30]


def test_exhausted_retries_are_a_retryable_schedule_error(tdmq: Tdmq) -> None:
    tdmq.running.faults.set(FaultPlan(script=[503] * 10))
    sleeps: list[float] = []
    with pytest.raises(ScheduleError) as caught:
        make(tdmq, sleeps, attempts=3).schedule(BODY, 30)
    assert caught.value.retryable is True
    assert "ServerNetworkError after 3 attempts" in str(caught.value)
    assert len(sends(tdmq)) == 3 and len(sleeps) == 2
    assert tdmq.emulator.queue_messages(QUEUE) == []


def test_an_unknown_queue_is_final_at_once(tdmq: Tdmq) -> None:
    sleeps: list[float] = []
    with pytest.raises(ScheduleError) as caught:
        make(tdmq, sleeps, queue="no-such-queue").schedule(BODY, 30)
    assert caught.value.retryable is False
    message = str(caught.value)
    assert "no-such-queue" in message and "ResourceNotFound" in message
    assert "after 1 attempt" in message and "RequestId" in message
    assert sleeps == [] and len(sends(tdmq)) == 1


def test_auth_failures_are_final_and_no_secret_or_body_is_told(
    tdmq: Tdmq, caplog: pytest.LogCaptureFixture
) -> None:
    tdmq.emulator.tokens = {DEFAULT_SECRET_ID: "tok-expected"}
    secret_key = "wrong-secret-key-" + uuid.uuid4().hex
    token = "tok-" + uuid.uuid4().hex
    caplog.set_level(logging.ERROR, logger="restorefn.schedulers.tdmq")
    failures = []
    for scheduler in (make(tdmq, secret_key=secret_key, token="tok-expected"),
                      make(tdmq, token=token)):
        with pytest.raises(ScheduleError) as caught:
            scheduler.schedule(BODY, 30)
        assert caught.value.retryable is False
        failures.append(str(caught.value))
        assert secret_key not in repr(scheduler) and token not in repr(scheduler)
    assert "AuthFailure.SignatureFailure" in failures[0]
    assert "AuthFailure.TokenFailure" in failures[1]
    told = "\n".join(failures) + caplog.text
    assert len(caplog.records) == 2
    for secret in (secret_key, token, "tok-expected", DEFAULT_SECRET_KEY, DEFAULT_SECRET_ID,
                   "top-secret-body"):
        assert secret not in told
    assert tdmq.emulator.queue_messages(QUEUE) == []


def test_unusable_credentials_fail_without_the_value(tdmq: Tdmq) -> None:
    with pytest.raises(ScheduleError, match="InvalidCredential") as caught:
        make(tdmq, secret_key=" spaced-secret ").schedule(BODY, 30)
    assert "spaced-secret" not in str(caught.value)
    assert caught.value.retryable is False
    assert sends(tdmq) == []


def test_a_failed_schedule_keeps_the_restore_unacknowledged(
    tdmq: Tdmq, cos_emulator: RunningEmulator
) -> None:
    """The initiated event went out; the missing re-check makes the message come back."""
    cos_emulator.emulator.put_object(COS_BUCKET, "a.bin", b"x", "ARCHIVE")
    sink = CollectingSink()
    settings = make_settings(cos_emulator, recheck_scheduler="tdmq")
    service = RestoreService(settings, sink=sink, scheduler=make(tdmq, queue="no-such-queue"))
    result = process_message(service, json.dumps(cos_request("a.bin", request_id="q-1")))
    assert [o.status for o in result.outcomes] == [OutcomeStatus.INITIATED]
    assert result.retry is True
    assert sink.types() == ["initiated"]


# ---------------------------------------------------------------------------- settings


def scheduler_env(tdmq: Tdmq, **extra: str) -> dict[str, str]:
    env = {
        "RESTORE_RECHECK_SCHEDULER": "tdmq",
        "RESTORE_RECHECK_TDMQ_QUEUE": QUEUE,
        "TENCENTCLOUD_REGION": REGION,
        "TENCENTCLOUD_SECRETID": DEFAULT_SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": DEFAULT_SECRET_KEY,
        "TENCENTCLOUD_SESSIONTOKEN": "role-session-token",
        "TDMQ_ENDPOINT": tdmq.endpoint,
        "RESTORE_RECHECK_TDMQ_ATTEMPTS": "2",
    }
    env.update(extra)
    return env


def test_scheduler_from_settings_uses_the_scf_role_keys_and_region(tdmq: Tdmq) -> None:
    tdmq.emulator.tokens = {DEFAULT_SECRET_ID: "role-session-token"}  # checked when sent
    settings = Settings.from_env(scheduler_env(tdmq))
    assert settings.recheck_max_delay_seconds == 3600.0
    scheduler = scheduler_from_settings(settings)
    assert isinstance(scheduler, TdmqScheduler)
    assert (scheduler.queue, scheduler.max_delay_seconds) == (QUEUE, 3600)
    assert scheduler.endpoint == ("http", tdmq.endpoint)
    scheduler.schedule(BODY, 5)
    [message] = tdmq.emulator.queue_messages(QUEUE)
    assert (message["region"], message["delay_seconds"]) == (REGION, 5)
    tdmq.running.faults.set(FaultPlan(script=[503] * 5))
    with pytest.raises(ScheduleError, match="after 2 attempts"):
        scheduler.schedule(BODY, 5)


def test_explicit_tdmq_keys_region_and_a_lower_maximum(tdmq: Tdmq) -> None:
    tdmq.emulator.credentials = {"AKIDtdmqOnly": "tdmq-only-key"}
    tdmq.emulator.create_queue("sh-rechecks", region="ap-shanghai")
    env = scheduler_env(
        tdmq, TENCENTCLOUD_SECRETKEY="cos-key-the-emulator-does-not-know",
        TDMQ_SECRET_ID="AKIDtdmqOnly", TDMQ_SECRET_KEY="tdmq-only-key",
        RESTORE_RECHECK_TDMQ_QUEUE="sh-rechecks", RESTORE_RECHECK_TDMQ_REGION="ap-shanghai",
        RESTORE_RECHECK_MAX_DELAY_SECONDS="900",
    )
    scheduler = scheduler_from_settings(Settings.from_env(env))
    assert isinstance(scheduler, TdmqScheduler) and scheduler.max_delay_seconds == 900
    scheduler.schedule(BODY, 900)
    assert [m["region"] for m in tdmq.emulator.queue_messages("sh-rechecks")] == ["ap-shanghai"]


@pytest.mark.parametrize(
    ("drop", "extra", "named"),
    [
        ("RESTORE_RECHECK_TDMQ_QUEUE", {}, "RESTORE_RECHECK_TDMQ_QUEUE"),
        ("TENCENTCLOUD_REGION", {}, "RESTORE_RECHECK_TDMQ_REGION"),
        ("TENCENTCLOUD_SECRETKEY", {}, "TENCENTCLOUD_SECRETKEY"),
        (None, {"TDMQ_SECRET_ID": "AKIDonly"}, "TDMQ_SECRET_KEY"),
        (None, {"RESTORE_RECHECK_MAX_DELAY_SECONDS": "7200"}, "at most 3600"),
        (None, {"RESTORE_RECHECK_TDMQ_QUEUE": "9-starts-with-a-digit"}, "start with a letter"),
    ],
)
def test_configuration_errors_name_the_variable_and_never_a_secret(
    tdmq: Tdmq, drop: str | None, extra: dict[str, str], named: str
) -> None:
    env = scheduler_env(tdmq, **extra)
    if drop is not None:
        del env[drop]
    with pytest.raises(ConfigurationError, match=named) as caught:
        scheduler_from_settings(Settings.from_env(env))
    for secret in (DEFAULT_SECRET_KEY, "role-session-token"):
        assert secret not in str(caught.value)


def test_other_schedulers_are_not_bounded_by_tdmq() -> None:
    assert Settings().recheck_max_delay_seconds is None
    assert Settings(recheck_scheduler="cloudtasks").recheck_max_delay_seconds is None
    assert Settings(recheck_scheduler="tdmq").recheck_max_delay_seconds == 3600.0
    assert Settings(recheck_scheduler="tdmq",
                    recheck_max_delay_seconds=60).recheck_max_delay_seconds == 60.0


def test_delay_rounding_helper() -> None:
    assert delay_seconds_for(0.0, 3600) == 0
    assert delay_seconds_for(1.0000001, 3600) == 1  # float noise is not a second late
    assert delay_seconds_for(1.01, 3600) == 2
    with pytest.raises(ValueError, match="exceeds"):
        delay_seconds_for(3601.5, 3600)


def test_importing_and_building_the_scheduler_does_not_import_the_sdk() -> None:
    code = (
        "import sys\n"
        "import shared.schedulers, shared.schedulers.tdmq, shared.tdmq_client\n"
        "from shared.config import Settings\n"
        "from shared.schedulers import scheduler_from_settings\n"
        "s = scheduler_from_settings(Settings.from_env({'RESTORE_RECHECK_SCHEDULER': 'tdmq',"
        " 'RESTORE_RECHECK_TDMQ_QUEUE': 'q', 'TENCENTCLOUD_REGION': 'ap-guangzhou',"
        " 'TENCENTCLOUD_SECRETID': 'id', 'TENCENTCLOUD_SECRETKEY': 'key'}))\n"
        "print(type(s).__name__)\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] == 'tencentcloud'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=60)
    built, loaded = result.stdout.splitlines()
    assert built == "TdmqScheduler"
    assert loaded == ""
