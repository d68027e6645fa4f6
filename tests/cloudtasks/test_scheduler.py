"""CloudTasksScheduler against the emulator: task shape, dedup, retries, errors, settings."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulators._http import FaultPlan
from emulators.cloudtasks import decode_unverified_jwt, format_timestamp, parse_timestamp
from shared.config import ConfigurationError, Settings
from shared.schedulers import ScheduleError, scheduler_from_settings
from shared.schedulers import cloudtasks as cloudtasks_module
from shared.schedulers.cloudtasks import MAX_DELAY_SECONDS, CloudTasksScheduler, task_id_for
from tests.cloudtasks.conftest import (
    LOCATION,
    PROJECT,
    QUEUE,
    SERVICE_ACCOUNT,
    Receiver,
    Tasks,
)

ROOT = Path(__file__).resolve().parents[2]
BODY = b'{"request_id": "req-1", "check": 1, "token": "top-secret-body"}'


def make(
    tasks: Tasks, receiver: Receiver, **options: Any
) -> tuple[CloudTasksScheduler, list[float]]:
    sleeps: list[float] = []
    settings: dict[str, Any] = {
        "service_account_email": SERVICE_ACCOUNT,
        "endpoint": tasks.url,
        "clock": tasks.emulator.clock.now,
        "sleep": sleeps.append,
    }
    settings.update(options)
    queue = settings.pop("queue", QUEUE)
    target = settings.pop("target_url", f"{receiver.url}/recheck")
    return CloudTasksScheduler(queue, target, **settings), sleeps


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_scheduled_recheck_arrives_after_its_delay(tasks: Tasks, receiver: Receiver) -> None:
    scheduler, sleeps = make(tasks, receiver)
    due = format_timestamp(round((tasks.emulator.clock.now() + 300) * 1_000_000))
    scheduler.schedule(BODY, 300, dedup_key="req-1#1")

    [task] = tasks.emulator.tasks()
    assert task["name"] == f"{QUEUE}/tasks/{hashlib.sha256(b'req-1#1').hexdigest()}"
    assert task["scheduleTime"] == due
    http = task["httpRequest"]
    assert (http["url"], http["httpMethod"]) == (f"{receiver.url}/recheck", "POST")
    assert http["headers"] == {"Content-Type": "application/json"}
    assert http["oidcToken"] == {"serviceAccountEmail": SERVICE_ACCOUNT}
    assert base64.b64decode(http["body"]) == BODY

    tasks.emulator.clock.advance(299)
    assert tasks.emulator.deliver_due() == []
    assert receiver.received == []
    tasks.emulator.clock.advance(1)
    assert [r["outcome"] for r in tasks.emulator.deliver_due()] == ["succeeded"]
    [got] = receiver.received
    assert (got.method, got.path, got.body) == ("POST", "/recheck", BODY)
    assert got.header("Content-Type") == "application/json"
    token = (got.header("Authorization") or "").removeprefix("Bearer ")
    claims = decode_unverified_jwt(token)
    assert (claims["email"], claims["aud"]) == (SERVICE_ACCOUNT, f"{receiver.url}/recheck")
    assert got.header("X-CloudTasks-TaskName") == task["name"].rsplit("/", 1)[1]
    assert sleeps == []


def test_audience_and_no_service_account(tasks: Tasks, receiver: Receiver) -> None:
    with_audience, _ = make(tasks, receiver, audience="https://recheck.example")
    assert with_audience.create_request(b"{}", 1)["task"]["httpRequest"]["oidcToken"] == {
        "serviceAccountEmail": SERVICE_ACCOUNT, "audience": "https://recheck.example",
    }
    anonymous, _ = make(tasks, receiver, service_account_email=None)
    anonymous.schedule(b"{}", 0)
    assert [r["outcome"] for r in tasks.emulator.deliver_due()] == ["succeeded"]
    assert receiver.received[0].header("Authorization") is None
    with pytest.raises(ValueError, match="audience needs a service account"):
        make(tasks, receiver, service_account_email=None, audience="https://x")


def test_the_same_dedup_key_twice_is_one_task(tasks: Tasks, receiver: Receiver) -> None:
    scheduler, sleeps = make(tasks, receiver)
    scheduler.schedule(BODY, 60, dedup_key="req-1#1")
    scheduler.schedule(BODY, 90, dedup_key="req-1#1")  # no error: a no-op
    assert len(tasks.emulator.tasks()) == 1
    assert [e.status for e in tasks.creates()] == [200, 409]
    assert sleeps == []  # the 409 ALREADY_EXISTS was not retried
    scheduler.schedule(BODY, 60, dedup_key="req-1#2")
    assert len(tasks.emulator.tasks()) == 2


def test_without_a_dedup_key_every_schedule_is_a_new_task(tasks: Tasks, receiver: Receiver) -> None:
    scheduler, _ = make(tasks, receiver)
    scheduler.schedule(BODY, 60)
    scheduler.schedule(BODY, 60)
    names = {t["name"] for t in tasks.emulator.tasks()}
    assert len(names) == 2
    assert all(re.fullmatch(rf"{QUEUE}/tasks/[0-9a-f]{{32}}", n) for n in names)


def test_an_unknown_queue_fails_at_once_without_retry(tasks: Tasks, receiver: Receiver) -> None:
    missing = f"projects/{PROJECT}/locations/{LOCATION}/queues/missing"
    scheduler, sleeps = make(tasks, receiver, queue=missing)
    with pytest.raises(ScheduleError) as caught:
        scheduler.schedule(BODY, 60, dedup_key="k")
    error = caught.value
    assert (error.retryable, error.status) == (False, 404)
    assert "HTTP 404 NOT_FOUND after 1 attempt" in str(error)
    assert missing in str(error)
    assert len(tasks.creates()) == 1
    assert sleeps == []


def test_an_injected_503_is_retried_then_succeeds(tasks: Tasks, receiver: Receiver) -> None:
    tasks.running.faults.set(FaultPlan(script=[503]))
    scheduler, sleeps = make(tasks, receiver)
    scheduler.schedule(BODY, 60, dedup_key="req-1#1")
    assert [(e.status, e.fault) for e in tasks.creates()] == [(503, "injected"), (200, None)]
    assert len(sleeps) == 1 and 0.125 <= sleeps[0] <= 0.375  # 0.25 s, jittered 0.5-1.5x
    assert len(tasks.emulator.tasks()) == 1


def test_a_retried_create_that_already_landed_counts_as_success(
    tasks: Tasks, receiver: Receiver
) -> None:
    # An ABORTED 409 is transient; the retry then finds the task made: ALREADY_EXISTS is fine.
    scheduler, sleeps = make(tasks, receiver)
    scheduler.schedule(BODY, 60, dedup_key="landed")
    tasks.running.faults.set(FaultPlan(script=[409]))
    scheduler.schedule(BODY, 60, dedup_key="landed")
    assert [e.status for e in tasks.creates()] == [200, 409, 409]
    assert [e.fault for e in tasks.creates()] == [None, "injected", None]
    assert len(sleeps) == 1


def test_retries_are_bounded(tasks: Tasks, receiver: Receiver) -> None:
    tasks.running.faults.set(FaultPlan(error_rate=1.0, error_status=500))
    scheduler, sleeps = make(tasks, receiver, attempts=3)
    with pytest.raises(ScheduleError) as caught:
        scheduler.schedule(BODY, 60, dedup_key="k")
    assert (caught.value.retryable, caught.value.status) == (True, 500)
    assert "HTTP 500 INTERNAL after 3 attempts" in str(caught.value)
    assert len(tasks.creates()) == 3
    assert len(sleeps) == 2 and sleeps[1] >= 0.25  # the second wait doubles (0.5 s jittered)
    assert tasks.emulator.tasks() == []


def test_other_client_errors_are_final(tasks: Tasks, receiver: Receiver) -> None:
    tasks.running.faults.set(FaultPlan(script=[403]))
    scheduler, sleeps = make(tasks, receiver)
    with pytest.raises(ScheduleError) as caught:
        scheduler.schedule(BODY, 60)
    assert (caught.value.retryable, caught.value.status) == (False, 403)
    assert "PERMISSION_DENIED" in str(caught.value)
    assert len(tasks.creates()) == 1 and sleeps == []


def test_connection_errors_are_retried_and_errors_leak_nothing(receiver: Receiver) -> None:
    sleeps: list[float] = []
    secret_url = "https://recheck.example/fn?key=hunter2"
    scheduler = CloudTasksScheduler(
        QUEUE, secret_url, SERVICE_ACCOUNT, endpoint=f"127.0.0.1:{closed_port()}",
        attempts=2, timeout=5, sleep=sleeps.append,
    )
    with pytest.raises(ScheduleError) as caught:
        scheduler.schedule(BODY, 60, dedup_key="k")
    message = str(caught.value)
    assert (caught.value.retryable, caught.value.status) == (True, None)
    assert "ConnectionError after 2 attempts" in message
    assert len(sleeps) == 1
    for secret in ("top-secret-body", "hunter2", secret_url, base64.b64encode(BODY).decode()):
        assert secret not in message


def test_delays_are_clamped_to_what_cloud_tasks_accepts(tasks: Tasks, receiver: Receiver) -> None:
    now = 1_700_000_000.0
    scheduler, _ = make(tasks, receiver, clock=lambda: now)

    def due(delay: float) -> float:
        task = scheduler.create_request(b"{}", delay)["task"]
        return parse_timestamp(task["scheduleTime"]) / 1_000_000

    assert due(90.5) == now + 90.5
    assert due(-5) == now
    assert due(10**9) == now + MAX_DELAY_SECONDS < now + 720 * 3600
    with pytest.raises(ValueError, match="finite"):
        scheduler.create_request(b"{}", float("nan"))
    # The longest delay is accepted by the emulator, which refuses more than 720 h.
    real, _ = make(tasks, receiver)
    real.schedule(b"{}", 10**9, dedup_key="far")
    assert len(tasks.emulator.tasks()) == 1


def test_task_ids_are_hashes_cloud_tasks_accepts() -> None:
    for key in ("req-1#1", "ünïcode/key with spaces", "k" * 10_000, ""):
        task_id = task_id_for(key)
        assert re.fullmatch(r"[0-9a-f]{64}", task_id)
        assert task_id == task_id_for(key)
    assert task_id_for("a") != task_id_for("b")


def test_invalid_construction_is_refused(receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="queue"):
        CloudTasksScheduler("projects/p/queues/q", receiver.url)
    with pytest.raises(ValueError, match="http"):
        CloudTasksScheduler(QUEUE, "ftp://x")
    with pytest.raises(ValueError, match="attempts"):
        CloudTasksScheduler(QUEUE, receiver.url, attempts=0)


def test_scheduler_from_settings(tasks: Tasks, receiver: Receiver) -> None:
    assert scheduler_from_settings(Settings.from_env({})) is None
    with pytest.raises(ConfigurationError):  # tdmq's own settings are tested with TDMQ
        scheduler_from_settings(Settings.from_env({"RESTORE_RECHECK_SCHEDULER": "tdmq"}))
    base = {"RESTORE_RECHECK_SCHEDULER": "cloudtasks"}
    with pytest.raises(ConfigurationError, match="RESTORE_RECHECK_CLOUDTASKS_QUEUE"):
        scheduler_from_settings(Settings.from_env(base))
    with pytest.raises(ConfigurationError, match="RESTORE_RECHECK_URL"):
        scheduler_from_settings(
            Settings.from_env({**base, "RESTORE_RECHECK_CLOUDTASKS_QUEUE": QUEUE})
        )
    with pytest.raises(ConfigurationError, match="queue must look like"):
        scheduler_from_settings(Settings.from_env({
            **base, "RESTORE_RECHECK_CLOUDTASKS_QUEUE": "my-queue",
            "RESTORE_RECHECK_URL": receiver.url,
        }))
    with pytest.raises(ConfigurationError, match="recheck_scheduler"):
        Settings.from_env({"RESTORE_RECHECK_SCHEDULER": "cron"})

    env = {
        **base,
        "RESTORE_RECHECK_CLOUDTASKS_QUEUE": QUEUE,
        "RESTORE_RECHECK_URL": f"{receiver.url}/recheck",
        "RESTORE_RECHECK_SERVICE_ACCOUNT": SERVICE_ACCOUNT,
        "RESTORE_RECHECK_AUDIENCE": "https://recheck.example",
        "RESTORE_RECHECK_CLOUDTASKS_ATTEMPTS": "2",
        "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{tasks.running.port}",
    }
    scheduler = scheduler_from_settings(Settings.from_env(env))
    assert isinstance(scheduler, CloudTasksScheduler)
    assert scheduler.url == f"http://127.0.0.1:{tasks.running.port}/v2/{QUEUE}/tasks"
    scheduler.schedule(BODY, 0, dedup_key="from-settings")
    # This scheduler reads the real clock, ahead of the emulator's frozen one: catch up.
    [task] = tasks.emulator.tasks()
    lag = parse_timestamp(task["scheduleTime"]) / 1_000_000 - tasks.emulator.clock.now()
    tasks.emulator.clock.advance(max(lag, 0.0))
    assert [r["outcome"] for r in tasks.emulator.deliver_due()] == ["succeeded"]
    token = (receiver.received[0].header("Authorization") or "").removeprefix("Bearer ")
    assert decode_unverified_jwt(token)["aud"] == "https://recheck.example"


def test_google_auth_path_uses_an_authorized_session(
    tasks: Tasks, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession

    requested: list[Any] = []

    def fake_default(scopes: Any = None, **_: Any) -> tuple[Any, None]:
        requested.append(scopes)
        return AnonymousCredentials(), None  # type: ignore[no-untyped-call]

    monkeypatch.setattr(google.auth, "default", fake_default)
    # Stand the emulator in for https://cloudtasks.googleapis.com (no endpoint: the real path).
    monkeypatch.setattr(cloudtasks_module, "DEFAULT_ENDPOINT", tasks.url)
    scheduler, _ = make(tasks, receiver, endpoint=None)
    scheduler.schedule(BODY, 60, dedup_key="adc")
    assert requested == [["https://www.googleapis.com/auth/cloud-platform"]]
    assert isinstance(scheduler._session, AuthorizedSession)
    assert len(tasks.emulator.tasks()) == 1


def test_missing_credentials_fail_without_naming_files(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-key.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    scheduler = CloudTasksScheduler(QUEUE, receiver.url, SERVICE_ACCOUNT)
    with pytest.raises(ScheduleError) as caught:
        scheduler.schedule(BODY, 60)
    assert caught.value.retryable is False
    assert "no usable Google credentials (DefaultCredentialsError)" in str(caught.value)
    assert str(missing) not in str(caught.value)


def test_importing_the_schedulers_loads_neither_requests_nor_google_auth() -> None:
    code = (
        "import sys\n"
        "import shared.schedulers, shared.schedulers.cloudtasks\n"
        "from shared.config import Settings\n"
        "s = shared.schedulers.scheduler_from_settings(Settings.from_env({\n"
        "    'RESTORE_RECHECK_SCHEDULER': 'cloudtasks',\n"
        f"    'RESTORE_RECHECK_CLOUDTASKS_QUEUE': '{QUEUE}',\n"
        "    'RESTORE_RECHECK_URL': 'https://recheck.example/fn'}))\n"
        "assert s is not None\n"
        "heavy = [m for m in ('requests', 'google.auth', 'google.auth.transport.requests',"
        " 'urllib3') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""
