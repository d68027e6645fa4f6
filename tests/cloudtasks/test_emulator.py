"""The Cloud Tasks emulator through plain HTTP: the v2 REST surface, dispatch, retries, control."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators._http import FaultPlan
from emulators.cloudtasks import (
    RetryConfig,
    decode_unverified_jwt,
    format_timestamp,
    parse_timestamp,
)
from tests.cloudtasks.conftest import (
    LOCATION,
    PROJECT,
    QUEUE,
    QUEUE_ID,
    SERVICE_ACCOUNT,
    Receiver,
    Tasks,
)

ROOT = Path(__file__).resolve().parents[2]


def at(tasks: Tasks, seconds_from_now: float) -> str:
    return format_timestamp(round((tasks.emulator.clock.now() + seconds_from_now) * 1_000_000))


def http_task(url: str, body: bytes = b'{"check": 1}', **extra: Any) -> dict[str, Any]:
    return {
        "url": url,
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": base64.b64encode(body).decode(),
        **extra,
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_task_is_delivered_when_due_with_the_cloud_tasks_headers(
    tasks: Tasks, receiver: Receiver
) -> None:
    name = f"{QUEUE}/tasks/recheck-1"
    schedule = at(tasks, 60)
    request = http_task(
        f"{receiver.url}/recheck?x=1",
        body=b'{"request_id": "r-1"}',
        headers={
            "Content-Type": "application/json",
            "X-Custom": "kept",
            # Replaced by Cloud Tasks (lower case: a filter, not a dict overwrite, must drop them).
            "user-agent": "replaced",
            "x-cloudtasks-taskname": "spoofed",
            "x-google-internal": "dropped",
            "authorization": "Bearer replaced-by-oidc",
        },
        oidcToken={"serviceAccountEmail": SERVICE_ACCOUNT, "audience": "https://recheck.example"},
    )
    response = tasks.create({"name": name, "scheduleTime": schedule, "httpRequest": request})
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["name"] == name
    assert created["scheduleTime"] == schedule
    assert created["view"] == "BASIC"
    assert "body" not in created["httpRequest"]  # BASIC view
    assert created["httpRequest"]["oidcToken"]["serviceAccountEmail"] == SERVICE_ACCOUNT
    assert "dispatchCount" not in created  # zero, omitted as in proto3 JSON
    assert created["createTime"].endswith("Z") and "." not in created["createTime"]

    assert tasks.emulator.deliver_due() == []
    tasks.emulator.clock.advance(59.999)
    assert tasks.emulator.deliver_due() == []
    assert receiver.received == []

    tasks.emulator.clock.advance(0.001)
    [record] = tasks.emulator.deliver_due()
    assert (record["task"], record["attempt"], record["status"], record["outcome"]) == (
        name, 1, 200, "succeeded",
    )
    [got] = receiver.received
    assert (got.method, got.path, got.body) == ("POST", "/recheck?x=1", b'{"request_id": "r-1"}')
    assert got.header("Content-Type") == "application/json"
    assert got.header("X-Custom") == "kept"
    assert got.header("X-Google-Internal") is None
    assert got.header("User-Agent") == "Google-Cloud-Tasks"
    assert got.header("X-CloudTasks-QueueName") == QUEUE_ID
    assert got.header("X-CloudTasks-TaskName") == "recheck-1"
    assert got.header("X-CloudTasks-TaskRetryCount") == "0"
    assert got.header("X-CloudTasks-TaskExecutionCount") == "0"
    assert got.header("X-CloudTasks-TaskPreviousResponse") is None
    eta = got.header("X-CloudTasks-TaskETA")
    assert eta is not None
    assert round(float(eta) * 1_000_000) == parse_timestamp(schedule)

    authorization = got.header("Authorization")
    assert authorization is not None and authorization.startswith("Bearer ")
    token = authorization.removeprefix("Bearer ")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "none"
    claims = decode_unverified_jwt(token)
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["aud"] == "https://recheck.example"
    assert claims["email"] == SERVICE_ACCOUNT and claims["email_verified"] is True
    assert claims["exp"] > claims["iat"]

    # Completed: gone from the API, kept as "succeeded" for inspection.
    missing = tasks.call("GET", f"/v2/{name}")
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"
    [described] = tasks.emulator.tasks()
    assert (described["name"], described["state"]) == (name, "succeeded")
    assert tasks.emulator.attempts()[0]["headers"]["Authorization"] == "<redacted>"


def test_oidc_audience_defaults_to_the_task_url(tasks: Tasks, receiver: Receiver) -> None:
    url = f"{receiver.url}/recheck"
    request = http_task(url, oidcToken={"serviceAccountEmail": SERVICE_ACCOUNT})
    assert tasks.create({"httpRequest": request}).status_code == 200
    [record] = tasks.emulator.deliver_due()  # no scheduleTime: due now
    assert record["outcome"] == "succeeded"
    token = (receiver.received[0].header("Authorization") or "").removeprefix("Bearer ")
    assert decode_unverified_jwt(token)["aud"] == url


def test_generated_names_are_numeric_ids_in_the_queue(tasks: Tasks, receiver: Receiver) -> None:
    first = tasks.create({"httpRequest": http_task(receiver.url)}).json()["name"]
    second = tasks.create({"httpRequest": http_task(receiver.url)}).json()["name"]
    assert first != second
    for name in (first, second):
        parent, _, task_id = name.rpartition("/tasks/")
        assert parent == QUEUE and task_id.isdigit()


def test_full_view_returns_the_body_and_basic_does_not(tasks: Tasks, receiver: Receiver) -> None:
    name = f"{QUEUE}/tasks/viewed"
    body = b'{"secret-ish": "payload"}'
    full = tasks.create(
        {"name": name, "scheduleTime": at(tasks, 10), "httpRequest": http_task(receiver.url, body)},
        responseView="FULL",
    ).json()
    assert full["view"] == "FULL"
    assert base64.b64decode(full["httpRequest"]["body"]) == body
    basic = tasks.call("GET", f"/v2/{name}").json()
    assert basic["view"] == "BASIC" and "body" not in basic["httpRequest"]
    again = tasks.call("GET", f"/v2/{name}", responseView="FULL").json()
    assert base64.b64decode(again["httpRequest"]["body"]) == body
    listed = tasks.call("GET", f"/v2/{QUEUE}/tasks").json()["tasks"]
    assert [t["name"] for t in listed] == [name] and "body" not in listed[0]["httpRequest"]


def test_an_explicit_name_makes_creation_idempotent(tasks: Tasks, receiver: Receiver) -> None:
    task = {"name": f"{QUEUE}/tasks/once", "httpRequest": http_task(receiver.url)}
    assert tasks.create(task).status_code == 200
    duplicate = tasks.create(task)
    assert duplicate.status_code == 409
    assert duplicate.json() == {
        "error": {"code": 409, "message": "Requested entity already exists",
                  "status": "ALREADY_EXISTS"}
    }
    assert len(tasks.call("GET", f"/v2/{QUEUE}/tasks").json()["tasks"]) == 1

    # Executed: the name stays taken for the dedup window (an emulated hour), then frees up.
    assert [r["outcome"] for r in tasks.emulator.deliver_due()] == ["succeeded"]
    assert tasks.create(task).status_code == 409
    tasks.emulator.clock.advance(3599)
    assert tasks.create(task).status_code == 409
    tasks.emulator.clock.advance(1)
    assert tasks.create(task).status_code == 200


def test_unknown_queue_is_not_found(tasks: Tasks, receiver: Receiver) -> None:
    missing = f"projects/{PROJECT}/locations/{LOCATION}/queues/nope"
    response = tasks.create({"httpRequest": http_task(receiver.url)}, queue=missing)
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert "Queue does not exist" in error["message"]
    assert tasks.call("GET", f"/v2/{missing}/tasks").status_code == 404


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ({"name": f"{QUEUE}/tasks/bad.id", "httpRequest": {"url": "http://x"}}, "TASK_ID"),
        ({"name": f"{QUEUE}/tasks/" + "a" * 501, "httpRequest": {"url": "http://x"}}, "TASK_ID"),
        ({"name": "projects/p/locations/l/queues/other/tasks/a",
          "httpRequest": {"url": "http://x"}}, "Task.name"),
        ({"httpRequest": {"url": "http://x"}, "colour": "blue"}, 'Unknown name "colour"'),
        ({"httpRequest": {"url": "http://x", "bogus": 1}}, 'Unknown name "bogus"'),
        ({"httpRequest": {"url": "ftp://x"}}, "http://"),
        ({"httpRequest": {"url": "http://x", "httpMethod": "GET", "body": "e30="}}, "body"),
        ({"httpRequest": {"url": "http://x", "httpMethod": "FETCH"}}, "http_method"),
        ({"httpRequest": {"url": "http://x", "body": "not base64!"}}, "Base64"),
        ({"httpRequest": {"url": "http://x", "oidcToken": {"serviceAccountEmail": "a@b"},
                          "oauthToken": {"serviceAccountEmail": "a@b"}}}, "Only one"),
        ({"httpRequest": {"url": "http://x", "oidcToken": {}}}, "serviceAccountEmail"),
        ({"httpRequest": {"url": "http://x"}, "scheduleTime": "tomorrow"}, "schedule_time"),
        ({"httpRequest": {"url": "http://x"}, "dispatchDeadline": "5s"}, "15s"),
        ({"appEngineHttpRequest": {"relativeUri": "/x"}}, "App Engine"),
        ({}, "httpRequest"),
        ({"httpRequest": {"url": "http://x", "body": base64.b64encode(b"x" * 103_000).decode()}},
         "too large"),
    ],
)
def test_invalid_tasks_are_refused(tasks: Tasks, task: dict[str, Any], fragment: str) -> None:
    response = tasks.create(task)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert fragment in error["message"]
    assert tasks.emulator.tasks() == []


def test_schedule_time_limits(tasks: Tasks, receiver: Receiver) -> None:
    too_far = tasks.create(
        {"httpRequest": http_task(receiver.url), "scheduleTime": at(tasks, 720 * 3600 + 1)}
    )
    assert too_far.status_code == 400
    assert "no more than 720h in the future" in too_far.json()["error"]["message"]
    # In the past means now; an offset and nanoseconds are accepted.
    long_ago = "2001-02-03T04:05:06.123456789+01:00"
    past = tasks.create({"httpRequest": http_task(receiver.url), "scheduleTime": long_ago}).json()
    assert past["scheduleTime"] == at(tasks, 0)
    assert parse_timestamp("2001-02-03T04:05:06.123456789+01:00") == parse_timestamp(
        "2001-02-03T03:05:06.123456Z"
    )
    assert [r["outcome"] for r in tasks.emulator.deliver_due()] == ["succeeded"]


def test_failed_attempts_are_retried_with_doubling_backoff(
    tasks: Tasks, receiver: Receiver
) -> None:
    receiver.statuses[:] = [500, 404]  # then 200
    name = f"{QUEUE}/tasks/flaky"
    assert tasks.create({"name": name, "httpRequest": http_task(receiver.url)}).status_code == 200

    [first] = tasks.emulator.deliver_due()
    assert (first["status"], first["outcome"]) == (500, "retrying")
    assert first["nextScheduleTime"] == at(tasks, 0.1)  # minBackoff 0.1 s
    state = tasks.call("GET", f"/v2/{name}").json()
    assert (state["dispatchCount"], state["responseCount"]) == (1, 1)
    assert state["lastAttempt"]["responseStatus"]["code"] == 13  # INTERNAL
    assert "dispatchTime" in state["firstAttempt"]

    assert tasks.emulator.deliver_due() == []  # backoff not over yet
    tasks.emulator.clock.advance(0.1)
    [second] = tasks.emulator.deliver_due()
    assert (second["status"], second["outcome"]) == (404, "retrying")
    assert second["nextScheduleTime"] == at(tasks, 0.2)  # doubled

    tasks.emulator.clock.advance(0.1)
    assert tasks.emulator.deliver_due() == []
    tasks.emulator.clock.advance(0.1)
    [third] = tasks.emulator.deliver_due()
    assert (third["status"], third["outcome"], third["attempt"]) == (200, "succeeded", 3)

    sent = receiver.received
    assert [r.header("X-CloudTasks-TaskRetryCount") for r in sent] == ["0", "1", "2"]
    # The execution count leaves out attempts that failed with a 5xx.
    assert [r.header("X-CloudTasks-TaskExecutionCount") for r in sent] == ["0", "0", "1"]
    assert [r.header("X-CloudTasks-TaskPreviousResponse") for r in sent] == [None, "500", "404"]
    assert [a["status"] for a in tasks.emulator.attempts()] == [500, 404, 200]
    assert tasks.call("GET", f"/v2/{name}").status_code == 404


def test_backoff_follows_the_documented_curve() -> None:
    # The RetryConfig proto's own example: 10 s, 300 s, 3 doublings.
    config = RetryConfig(min_backoff=10, max_backoff=300, max_doublings=3)
    assert [config.backoff(n) for n in range(8)] == [10, 20, 40, 80, 160, 240, 300, 300]
    default = RetryConfig()
    assert [default.backoff(n) for n in range(3)] == [0.1, 0.2, 0.4]
    assert default.backoff(40) == 3600


def test_a_task_is_dropped_after_max_attempts(tasks: Tasks, receiver: Receiver) -> None:
    queue = tasks.call(
        "POST", "/_emulator/queues",
        {"project": PROJECT, "location": LOCATION, "queue": "twice", "max_attempts": 2,
         "min_backoff": 5},
    ).json()
    assert queue["retryConfig"]["maxAttempts"] == 2
    receiver.statuses[:] = [503, 503, 503]
    created = tasks.create({"httpRequest": http_task(receiver.url)}, queue=queue["name"]).json()
    assert [r["outcome"] for r in tasks.emulator.deliver_due()] == ["retrying"]
    tasks.emulator.clock.advance(5)
    [last] = tasks.emulator.deliver_due()
    assert (last["outcome"], last["nextScheduleTime"]) == ("failed", None)
    tasks.emulator.clock.advance(3600)
    assert tasks.emulator.deliver_due() == []
    assert len(receiver.received) == 2
    [described] = tasks.emulator.tasks(queue["name"])
    assert (described["name"], described["state"]) == (created["name"], "failed")


def test_an_unreachable_worker_is_a_failed_attempt(tasks: Tasks) -> None:
    url = f"http://127.0.0.1:{closed_port()}/recheck"
    assert tasks.create({"httpRequest": http_task(url)}).status_code == 200
    [record] = tasks.emulator.deliver_due()
    assert record["status"] is None and record["outcome"] == "retrying"
    assert record["error"].startswith("UNAVAILABLE")


def test_delete_get_and_list_tasks(tasks: Tasks, receiver: Receiver) -> None:
    for index in range(3):
        task = {"name": f"{QUEUE}/tasks/t{index}", "scheduleTime": at(tasks, 10 + index),
                "httpRequest": http_task(receiver.url)}
        assert tasks.create(task).status_code == 200
    page = tasks.call("GET", f"/v2/{QUEUE}/tasks", pageSize="2").json()
    assert [t["name"].rsplit("/", 1)[1] for t in page["tasks"]] == ["t0", "t1"]
    rest = tasks.call("GET", f"/v2/{QUEUE}/tasks", pageToken=page["nextPageToken"]).json()
    assert [t["name"].rsplit("/", 1)[1] for t in rest["tasks"]] == ["t2"]
    assert "nextPageToken" not in rest

    deleted = tasks.call("DELETE", f"/v2/{QUEUE}/tasks/t1")
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert tasks.call("DELETE", f"/v2/{QUEUE}/tasks/t1").status_code == 404
    assert tasks.call("GET", f"/v2/{QUEUE}/tasks/t1").status_code == 404
    # A deleted name is taken for the dedup window too.
    again = {"name": f"{QUEUE}/tasks/t1", "httpRequest": http_task(receiver.url)}
    assert tasks.create(again).status_code == 409

    tasks.emulator.clock.advance(60)
    assert sorted(r["task"].rsplit("/", 1)[1] for r in tasks.emulator.deliver_due()) == ["t0", "t2"]
    assert tasks.call("GET", f"/v2/{QUEUE}/tasks").json() == {}


def test_paused_queue_holds_tasks_and_run_forces_one(tasks: Tasks, receiver: Receiver) -> None:
    paused = tasks.call("POST", f"/v2/{QUEUE}:pause", {})
    assert paused.json()["state"] == "PAUSED"
    for task_id in ("held", "forced"):
        task = {"name": f"{QUEUE}/tasks/{task_id}", "httpRequest": http_task(receiver.url)}
        assert tasks.create(task).status_code == 200
    assert tasks.emulator.deliver_due() == []
    assert tasks.call("POST", f"/v2/{QUEUE}/tasks/forced:run", {}).status_code == 200
    assert [r["task"] for r in tasks.emulator.deliver_due()] == [f"{QUEUE}/tasks/forced"]
    assert tasks.call("POST", f"/v2/{QUEUE}:resume", {}).json()["state"] == "RUNNING"
    assert [r["task"] for r in tasks.emulator.deliver_due()] == [f"{QUEUE}/tasks/held"]


def test_queues_through_the_rest_api(tasks: Tasks) -> None:
    parent = f"projects/{PROJECT}/locations/{LOCATION}"
    body = {"name": f"{parent}/queues/made-by-rest",
            "retryConfig": {"maxAttempts": 3, "minBackoff": "1s", "maxDoublings": 2}}
    created = tasks.call("POST", f"/v2/{parent}/queues", body)
    assert created.status_code == 200, created.text
    assert created.json()["retryConfig"] == {
        "maxAttempts": 3, "minBackoff": "1s", "maxBackoff": "3600s", "maxDoublings": 2,
    }
    assert tasks.call("POST", f"/v2/{parent}/queues", body).json()["error"]["status"] == (
        "ALREADY_EXISTS"
    )
    assert tasks.call("GET", f"/v2/{parent}/queues/made-by-rest").json()["state"] == "RUNNING"
    names = [q["name"] for q in tasks.call("GET", f"/v2/{parent}/queues").json()["queues"]]
    assert names == [QUEUE, f"{parent}/queues/made-by-rest"]
    default = tasks.call("GET", f"/v2/{QUEUE}").json()["retryConfig"]
    assert default == {"maxAttempts": 100, "minBackoff": "0.100s", "maxBackoff": "3600s",
                       "maxDoublings": 16}


def test_control_api_drives_a_standalone_emulator(tasks: Tasks, receiver: Receiver) -> None:
    name = f"{QUEUE}/tasks/ctl"
    task = {"name": name, "scheduleTime": at(tasks, 30), "httpRequest": http_task(receiver.url)}
    assert tasks.create(task).status_code == 200
    [listed] = tasks.call("GET", "/_emulator/tasks").json()
    assert (listed["name"], listed["state"], listed["queue"]) == (name, "scheduled", QUEUE)
    assert base64.b64decode(listed["httpRequest"]["body"]) == b'{"check": 1}'
    assert tasks.call("POST", "/_emulator/deliver").json() == []
    tasks.call("POST", "/_emulator/clock", {"advance": 30}).raise_for_status()
    [delivered] = tasks.call("POST", "/_emulator/deliver").json()
    assert (delivered["task"], delivered["outcome"]) == (name, "succeeded")
    assert tasks.call("GET", "/_emulator/tasks").json()[0]["state"] == "succeeded"
    [attempt] = tasks.call("GET", "/_emulator/attempts").json()
    assert attempt["status"] == 200


def test_injected_faults_answer_in_googles_error_shape(tasks: Tasks, receiver: Receiver) -> None:
    tasks.running.faults.set(FaultPlan(script=[503, 429]))
    first = tasks.create({"httpRequest": http_task(receiver.url)})
    assert first.status_code == 503
    assert first.json()["error"]["status"] == "UNAVAILABLE"
    assert tasks.create({"httpRequest": http_task(receiver.url)}).json()["error"]["status"] == (
        "RESOURCE_EXHAUSTED"
    )
    assert tasks.create({"httpRequest": http_task(receiver.url)}).status_code == 200
    assert [e.fault for e in tasks.creates()] == ["injected", "injected", None]


def test_background_dispatcher_delivers_on_its_own(tasks: Tasks, receiver: Receiver) -> None:
    assert tasks.create({"httpRequest": http_task(receiver.url)}).status_code == 200
    tasks.emulator.start_dispatcher(0.01)
    assert receiver.arrived.wait(timeout=10), "the dispatcher never delivered"
    tasks.emulator.close()
    assert tasks.emulator._dispatcher is None
    assert [t["state"] for t in tasks.emulator.tasks()] == ["succeeded"]


def test_standalone_module_serves_the_api() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.cloudtasks", "--port", "0", "--clock-factor", "0",
         "--queue", QUEUE, "--faults", json.dumps({"script": [503]})],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Cloud Tasks emulator listening on http://127.0.0.1:")
        url = line.split()[-1]
        task: dict[str, Any] = {
            "task": {"name": f"{QUEUE}/tasks/cli", "httpRequest": {"url": "http://x.invalid"}}
        }
        assert requests.post(f"{url}/v2/{QUEUE}/tasks", json=task, timeout=10).status_code == 503
        assert requests.post(f"{url}/v2/{QUEUE}/tasks", json=task, timeout=10).status_code == 200
        listed = requests.get(f"{url}/_emulator/tasks", timeout=10).json()
        assert [t["name"] for t in listed] == [f"{QUEUE}/tasks/cli"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
