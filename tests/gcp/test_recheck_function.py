"""restore_recheck: the Cloud Tasks HTTP target that carries an initiated COS restore to its end.

Tasks are made by the real scheduler (an in-process service standing in for the function that
initiated the restore, writing to the Cloud Tasks emulator), then posted to the function through
functions-framework's test client with the headers Cloud Tasks would send; the last test runs
the function as a real functions-framework process and lets the emulator deliver the tasks.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from emulators._http import FaultPlan, RunningEmulator
from emulators.cloudtasks import parse_timestamp
from scripts.local import free_port, wait_for_port
from shared import auth
from shared.outcome import OutcomeStatus
from shared.recheck import RecheckMessage, recheck_offsets
from shared.schedulers.cloudtasks import task_id_for
from shared.service import RestoreService
from shared.task_auth import SIGNATURE_HEADER, sign_task, verify_task
from tests.cloudtasks.conftest import QUEUE, Tasks
from tests.conftest import COS_BUCKET, CollectingSink, cos_request, make_settings
from tests.gcp.conftest import (
    RECHECK_INVOKER,
    ROOT,
    WEBHOOK_SECRET,
    function_env,
    printed_events,
    recheck_env_for,
    statuses,
)

SECRET = SecretStr(WEBHOOK_SECRET)
CONTEXT = {"ticket": "OPS-77"}


def initiate(cos: RunningEmulator, tasks: Tasks, key: str, request_id: str,
             target_url: str = "http://127.0.0.1:9/recheck") -> dict[str, Any]:
    """Start a COS restore as a function with re-checks would; the first re-check task made."""
    cos.emulator.put_object(COS_BUCKET, key, b"archived", "ARCHIVE")
    settings = make_settings(
        cos, webhook_secrets=(SECRET,), recheck_scheduler="cloudtasks",
        recheck_cloudtasks_queue=QUEUE, recheck_target_url=target_url,
        recheck_service_account=RECHECK_INVOKER, cloudtasks_endpoint=tasks.url,
    )
    service = RestoreService(settings, sink=CollectingSink())
    outcome = service.restore(cos_request(key, request_id=request_id, context=CONTEXT))
    assert outcome.status is OutcomeStatus.INITIATED
    return task_for(tasks, request_id, 0)


def body_of(task: dict[str, Any]) -> bytes:
    return base64.b64decode(task["httpRequest"]["body"])


def task_for(tasks: Tasks, request_id: str, check: int) -> dict[str, Any]:
    found = [t for t in tasks.emulator.tasks()
             if (m := json.loads(body_of(t)))["request"]["request_id"] == request_id
             and m["check"] == check]
    assert len(found) == 1, [t["name"] for t in tasks.emulator.tasks()]
    return found[0]


def deliver(client: Any, task: dict[str, Any], *, from_cloud_tasks: bool = True,
            body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """POST the task as Cloud Tasks does: its own headers, plus the X-CloudTasks-* ones."""
    sent = dict(task["httpRequest"]["headers"]) if headers is None else dict(headers)
    if from_cloud_tasks:
        sent.update({"X-CloudTasks-QueueName": "restore-rechecks",
                     "X-CloudTasks-TaskName": task["name"].rsplit("/", 1)[1],
                     "X-CloudTasks-TaskRetryCount": "0"})
    return client.post("/", data=body_of(task) if body is None else body, headers=sent)


def logged(text: str) -> list[dict[str, Any]]:
    """The function's JSON log lines (stderr)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"severity"')]


def test_a_due_recheck_of_a_finished_restore_publishes_completed_once(
    recheck_client, cos_emulator, cloud_tasks, capsys
):
    task = initiate(cos_emulator, cloud_tasks, "done.bin", "rc-done")
    assert task["httpRequest"]["headers"][SIGNATURE_HEADER].startswith("v1=")
    cos_emulator.emulator.clock.advance(61)  # the Expedited restore takes 60 s

    first = deliver(recheck_client, task)
    assert first.status_code == 200
    answer = first.get_json()
    assert (answer["result"], answer["request_id"], answer["check"]) == ("done", "rc-done", 0)
    assert answer["outcome"]["status"] == "completed"
    captured = capsys.readouterr()
    events = printed_events(captured.out)
    assert statuses(events) == ["completed"]
    assert events[0]["id"] == answer["event_id"]
    assert events[0]["data"]["request_id"] == "rc-done"
    assert events[0]["data"]["context"] == CONTEXT
    assert events[0]["data"]["expiry_time"]
    [line] = [e for e in logged(captured.err) if e["message"] == "re-check handled"]
    assert (line["severity"], line["status"], line["result"]) == ("INFO", 200, "done")
    assert line["task"] == task["name"].rsplit("/", 1)[1]

    # Cloud Tasks delivers at least once: a second copy is acknowledged and publishes nothing.
    again = deliver(recheck_client, task)
    assert (again.status_code, again.get_json()["result"]) == (200, "duplicate")
    captured_again = capsys.readouterr()
    assert printed_events(captured_again.out) == []
    assert WEBHOOK_SECRET not in captured.out + captured.err + captured_again.err


def test_a_recheck_of_a_running_restore_schedules_the_next_signed_check(
    recheck_client, cos_emulator, cloud_tasks, capsys
):
    task = initiate(cos_emulator, cloud_tasks, "running.bin", "rc-running")
    initiated_at = RecheckMessage.model_validate_json(body_of(task)).initiated_at
    cos_emulator.emulator.clock.advance(30)

    response = deliver(recheck_client, task)
    assert response.status_code == 200
    answer = response.get_json()
    assert (answer["result"], answer["next_check"]) == ("rescheduled", 1)
    assert answer["outcome"]["status"] == "in_progress"
    assert printed_events(capsys.readouterr().out) == []

    nxt = task_for(cloud_tasks, "rc-running", 1)
    message = RecheckMessage.model_validate_json(body_of(nxt))
    assert nxt["name"] == f"{QUEUE}/tasks/{task_id_for(message.dedup_key())}"
    verify_task((SECRET,), nxt["httpRequest"]["headers"], body_of(nxt))  # signed by the function
    assert nxt["httpRequest"]["oidcToken"] == {"serviceAccountEmail": RECHECK_INVOKER}
    due = initiated_at + timedelta(seconds=recheck_offsets("ARCHIVE", "Expedited", 0.5)[1])
    scheduled = parse_timestamp(nxt["scheduleTime"]) / 1_000_000
    assert scheduled == pytest.approx(due.timestamp(), abs=0.01)


def test_a_provider_failure_answers_503_and_the_redelivery_completes(
    recheck_client, recheck_env, cos_emulator, cloud_tasks, capsys
):
    task = initiate(cos_emulator, cloud_tasks, "flaky.bin", "rc-flaky")
    cos_emulator.emulator.clock.advance(61)
    cos_emulator.faults.set(FaultPlan(match_method="HEAD", error_rate=1.0, error_status=503))
    failed = deliver(recheck_client, task)
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "30"
    assert failed.get_json()["error"]["code"] == "retry_later"
    assert printed_events(capsys.readouterr().out) == []

    cos_emulator.faults.clear()
    retried = deliver(recheck_client, task)  # Cloud Tasks' retry: the check really runs again
    assert (retried.status_code, retried.get_json()["result"]) == (200, "done")
    assert statuses(printed_events(capsys.readouterr().out)) == ["completed"]


@pytest.mark.parametrize(
    "case", ["unsigned", "webhook signature", "other secret", "other body", "malformed header"]
)
def test_tasks_not_signed_with_the_secret_are_refused_even_from_cloud_tasks(
    recheck_client, cos_emulator, cloud_tasks, capsys, case
):
    task = initiate(cos_emulator, cloud_tasks, "forged.bin", "rc-forged")
    cos_emulator.emulator.clock.advance(61)
    body = body_of(task)
    headers = {"Content-Type": "application/json"}
    if case == "other secret":
        headers.update(sign_task(SecretStr("not-the-secret"), body))
    elif case == "other body":
        headers.update(sign_task(SECRET, body.replace(b"rc-forged", b"rc-forgex")))
    elif case == "malformed header":
        headers[SIGNATURE_HEADER] = "v1=\u00e9\u00e9"
    elif case == "webhook signature":
        headers.update(auth.sign(SECRET, body))  # the webhook's signature is not a task's
    response = deliver(recheck_client, task, headers=headers)
    assert response.status_code == 401  # retried by Cloud Tasks, never acknowledged
    assert response.get_json()["error"]["code"] == "unauthenticated"
    assert printed_events(capsys.readouterr().out) == []


def _signed(body: bytes, content_type: str = "application/json") -> dict[str, str]:
    return {"Content-Type": content_type, **sign_task(SECRET, body)}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b'{"kind": "restorefn.recheck.v1"}', "text/plain", 415, "unsupported_media_type"),
        (json.dumps(cos_request("x.bin")).encode(), "application/json", 422, "validation_failed"),
        (b"[1, 2]", "application/json", 422, "validation_failed"),
    ],
)
def test_malformed_tasks_are_4xx_directly_and_acknowledged_from_cloud_tasks(
    recheck_client, capsys, body, content_type, status, code
):
    headers = _signed(body, content_type)
    direct = recheck_client.post("/", data=body, headers=headers)
    assert direct.status_code == status
    assert direct.headers["Content-Type"] == "application/json"
    error = direct.get_json()["error"]
    assert error["code"] == code
    if code == "validation_failed":
        assert error["fields"] and all("input" not in f for f in error["fields"])
        assert "x.bin" not in direct.get_data(as_text=True)  # no value is echoed

    queued = recheck_client.post("/", data=body, headers={
        **headers, "X-CloudTasks-TaskName": "t-1", "X-CloudTasks-TaskRetryCount": "0"})
    assert queued.status_code == 200  # a 4xx would be retried for days: acknowledge it
    answer = queued.get_json()
    assert (answer["result"], answer["acknowledged"]) == ("rejected", True)
    assert answer["error"]["code"] == code
    captured = capsys.readouterr()
    assert printed_events(captured.out) == []
    [line] = [e for e in logged(captured.err) if e.get("task") == "t-1"]
    assert line["severity"] == "ERROR"
    assert line["message"] == "malformed re-check task acknowledged (not retried)"
    assert line["error_code"] == code


def test_only_post_is_accepted(recheck_client):
    response = recheck_client.get("/")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_iam_mode_leaves_authentication_to_the_platform(
    recheck_client, monkeypatch, cos_emulator, cloud_tasks, capsys
):
    task = initiate(cos_emulator, cloud_tasks, "iam.bin", "rc-iam")
    cos_emulator.emulator.clock.advance(61)
    monkeypatch.setenv("RESTORE_WEBHOOK_AUTH", "iam")
    response = deliver(recheck_client, task, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.get_json()["result"]) == (200, "done")
    assert statuses(printed_events(capsys.readouterr().out)) == ["completed"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RESTORE_WEBHOOK_SECRETS": None}, "re-check authentication is not configured"),
        ({"RESTORE_RECHECK_CLOUDTASKS_QUEUE": None}, "the function is not configured"),
    ],
)
def test_a_misconfigured_function_answers_503_so_tasks_wait(recheck_client, monkeypatch, env,
                                                             message):
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
    body = b'{"kind": "restorefn.recheck.v1"}'
    response = recheck_client.post("/", data=body, headers={
        **_signed(body), "X-CloudTasks-TaskName": "t-2"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    error = response.get_json()["error"]
    assert error["code"] == "not_configured"
    assert error["message"].startswith(message)


# -- a real functions-framework process, fed by the Cloud Tasks emulator's dispatcher ---------
def _start(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("RESTORE_", "COS_", "GCS_",
                                                                    "CLOUD_TASKS"))}
    full.update(env, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "functions-framework"), "--target", "restore_recheck",
         "--source", "functions/gcp/main.py", "--port", str(port), "--host", "127.0.0.1"],
        cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for_port(proc, port)
    return proc


def _due(tasks: Tasks, task: dict[str, Any]) -> list[dict[str, Any]]:
    """Move the emulator's clock to the task's scheduleTime and dispatch what is due."""
    clock = tasks.emulator.clock
    clock.advance(parse_timestamp(task["scheduleTime"]) / 1_000_000 - clock.now())
    return tasks.emulator.deliver_due()


def test_the_emulator_delivers_the_schedulers_tasks_to_the_real_function(
    cos_emulator, gcs_emulator, cloud_tasks, tmp_path: Path
):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    events_file = tmp_path / "events.jsonl"
    env = {**function_env(cos_emulator.url, gcs_emulator.url),
           **recheck_env_for(cloud_tasks.url, url),
           "RESTORE_EVENT_SINK": "file", "RESTORE_EVENT_FILE": str(events_file),
           "RESTORE_MAX_ATTEMPTS": "1"}
    proc = _start(env, port)
    try:
        first = initiate(cos_emulator, cloud_tasks, "served.bin", "rc-served", target_url=url)
        cos_emulator.emulator.clock.advance(30)  # still restoring at the first look
        [one] = _due(cloud_tasks, first)
        # The function scheduled check 1 itself, through the emulator's REST API, signed.
        second = task_for(cloud_tasks, "rc-served", 1)
        verify_task((SECRET,), second["httpRequest"]["headers"], body_of(second))

        cos_emulator.faults.set(FaultPlan(match_method="HEAD", script=[503]))
        [two] = _due(cloud_tasks, second)  # COS fails: 503, Cloud Tasks will retry
        cos_emulator.emulator.clock.advance(40)  # now the copy is readable
        retry_at = parse_timestamp(two["nextScheduleTime"]) / 1_000_000
        cloud_tasks.emulator.clock.advance(retry_at - cloud_tasks.emulator.clock.now())
        [three] = cloud_tasks.emulator.deliver_due()
    finally:
        proc.terminate()
        try:
            _out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()

    attempts = cloud_tasks.emulator.attempts()
    assert [(a["url"], a["status"], a["outcome"]) for a in attempts] == [
        (url, 200, "succeeded"), (url, 503, "retrying"), (url, 200, "succeeded")]
    assert [a["task"] for a in (one, two, three)] == [first["name"], second["name"],
                                                       second["name"]]
    assert attempts[0]["headers"]["User-Agent"] == "Google-Cloud-Tasks"
    assert attempts[0]["headers"]["Authorization"] == "<redacted>"  # the OIDC token was sent
    assert attempts[2]["headers"]["X-CloudTasks-TaskRetryCount"] == "1"

    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [e["type"].rsplit(".", 1)[-1] for e in events] == ["completed"]
    assert events[0]["data"]["request_id"] == "rc-served"
    assert events[0]["data"]["context"] == CONTEXT
    assert datetime.fromisoformat(events[0]["data"]["expiry_time"].replace("Z", "+00:00")) > (
        datetime.now(timezone.utc))
    handled = [e for e in logged(err) if e["message"] == "re-check handled"]
    assert [(e["status"], e.get("result"), e["check"]) for e in handled] == [
        (200, "rescheduled", 0), (503, None, 1), (200, "done", 1)]
    assert WEBHOOK_SECRET not in err
