"""Signed re-check tasks (shared.task_auth) and the accelerated clock local stacks share
(shared.emulated_clock, VirtualClock's epoch): the scheduler side of both."""

from __future__ import annotations

import base64
import time

import pytest
from pydantic import SecretStr

from emulators._http import VirtualClock
from emulators.cloudtasks import CloudTasksEmulator, parse_timestamp
from shared import auth
from shared.config import ConfigurationError, Settings
from shared.emulated_clock import accelerated, utc_clock, wall_clock
from shared.schedulers import scheduler_from_settings
from shared.service import RestoreService
from shared.task_auth import SIGNATURE_HEADER, sign_task, verify_task
from tests.cloudtasks.conftest import QUEUE, Receiver, Tasks

BODY = b'{"kind": "restorefn.recheck.v1", "check": 3}'
OLD, NEW = SecretStr("old-secret"), SecretStr("new-secret")


def test_task_signatures_verify_rotate_and_refuse_tampering() -> None:
    headers = sign_task(OLD, BODY)
    assert list(headers) == [SIGNATURE_HEADER]
    verify_task((NEW, OLD), headers, BODY)  # rotation: the old secret still verifies
    verify_task((OLD,), {SIGNATURE_HEADER.lower(): headers[SIGNATURE_HEADER]}, BODY)
    refusals = [
        ((NEW,), headers, BODY, "does not match"),
        ((OLD,), headers, BODY + b" ", "does not match"),
        ((OLD,), {}, BODY, "missing"),
        ((OLD,), {SIGNATURE_HEADER: "sha1=abc"}, BODY, "of the form"),
        ((OLD,), {SIGNATURE_HEADER: "v1=\u00e9"}, BODY, "does not match"),  # no TypeError
        ((), headers, BODY, "not configured"),
    ]
    for secrets, sent, body, reason in refusals:
        with pytest.raises(auth.AuthenticationError, match=reason) as caught:
            verify_task(secrets, sent, body)
        assert "secret" not in str(caught.value).replace("not configured", "")


def test_task_and_webhook_signatures_are_not_interchangeable() -> None:
    stamp = int(time.time())
    webhook = auth.sign(OLD, BODY, timestamp=stamp)
    with pytest.raises(auth.AuthenticationError):
        verify_task((OLD,), {SIGNATURE_HEADER: webhook[auth.SIGNATURE_HEADER]}, BODY)
    task = sign_task(OLD, BODY)
    forged = {auth.TIMESTAMP_HEADER: str(stamp), auth.SIGNATURE_HEADER: task[SIGNATURE_HEADER]}
    with pytest.raises(auth.AuthenticationError):
        auth.verify((OLD,), forged, BODY)


def _env(tasks: Tasks, receiver: Receiver, **extra: str) -> dict[str, str]:
    return {
        "RESTORE_RECHECK_SCHEDULER": "cloudtasks",
        "RESTORE_RECHECK_CLOUDTASKS_QUEUE": QUEUE,
        "RESTORE_RECHECK_URL": f"{receiver.url}/recheck",
        "CLOUD_TASKS_EMULATOR_HOST": tasks.url,
        **extra,
    }


def test_scheduler_from_settings_signs_with_the_first_webhook_secret(
    tasks: Tasks, receiver: Receiver
) -> None:
    settings = Settings.from_env(
        _env(tasks, receiver, RESTORE_WEBHOOK_SECRETS="new-secret,old-secret")
    )
    scheduler = scheduler_from_settings(settings)
    assert scheduler is not None
    scheduler.schedule(BODY, 0, dedup_key="signed")
    [task] = tasks.emulator.tasks()
    headers = task["httpRequest"]["headers"]
    assert set(headers) == {"Content-Type", SIGNATURE_HEADER}
    assert base64.b64decode(task["httpRequest"]["body"]) == BODY
    verify_task((NEW,), headers, BODY)
    with pytest.raises(auth.AuthenticationError):
        verify_task((OLD,), headers, BODY)
    # The signature travels with the delivery, as a header the worker can check.
    tasks.emulator.clock.advance(
        max(0.0, parse_timestamp(task["scheduleTime"]) / 1e6 - tasks.emulator.clock.now())
    )
    assert [r["status"] for r in tasks.emulator.deliver_due()] == [200]
    assert receiver.received[0].header(SIGNATURE_HEADER) == headers[SIGNATURE_HEADER]


def test_the_emulated_clock_is_one_time_across_clocks_built_from_its_epoch() -> None:
    epoch, factor = time.time() - 100.0, 30.0
    shared_now = accelerated(epoch, factor)
    virtual = VirtualClock(factor, epoch=epoch)
    tasks = CloudTasksEmulator(clock_factor=factor, clock_epoch=epoch)
    try:
        expected = epoch + 100.0 * factor
        for reading in (shared_now(), virtual.now(), tasks.clock.now()):
            assert reading == pytest.approx(expected, abs=factor * 0.5)
        assert virtual.now() == pytest.approx(shared_now(), abs=0.05 * factor)
        assert tasks.clock.now() == pytest.approx(shared_now(), abs=0.05 * factor)
    finally:
        tasks.close()
    assert VirtualClock(5.0).now() == pytest.approx(time.time(), abs=1.0)  # no epoch: as before


def test_settings_select_the_emulated_clock_for_the_service_and_the_scheduler(
    tasks: Tasks, receiver: Receiver
) -> None:
    assert wall_clock(Settings()) is time.time
    epoch = time.time() - 10.0
    env = _env(tasks, receiver, RESTORE_EMULATED_CLOCK_EPOCH=str(epoch),
               RESTORE_EMULATED_CLOCK_FACTOR="60")
    settings = Settings.from_env(env)
    expected = epoch + 10.0 * 60
    assert wall_clock(settings)() == pytest.approx(expected, abs=3.0)
    assert utc_clock(settings)().timestamp() == pytest.approx(expected, abs=3.0)
    service = RestoreService(settings)
    assert service.now().timestamp() == pytest.approx(expected, abs=3.0)

    assert service.scheduler is not None
    service.scheduler.schedule(BODY, 60, dedup_key="emulated")
    [task] = tasks.emulator.tasks()
    # scheduleTime is on the emulated clock: about 600 s ahead of real time, plus the delay.
    scheduled = parse_timestamp(task["scheduleTime"]) / 1e6
    assert scheduled == pytest.approx(expected + 60, abs=3.0)
    assert scheduled - time.time() > 600


@pytest.mark.parametrize("half", ["RESTORE_EMULATED_CLOCK_EPOCH", "RESTORE_EMULATED_CLOCK_FACTOR"])
def test_the_emulated_clock_needs_both_settings(half: str) -> None:
    with pytest.raises(ConfigurationError, match="go together"):
        Settings.from_env({half: "30"})
    with pytest.raises(ConfigurationError):
        Settings.from_env(
            {"RESTORE_EMULATED_CLOCK_EPOCH": "1", "RESTORE_EMULATED_CLOCK_FACTOR": "0"}
        )
