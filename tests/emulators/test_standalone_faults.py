"""Fault injection: chosen per run on the standalone emulators (``--faults``), and the plan
settings a soak needs (mixed statuses, lost answers, exempt paths, logged latency)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from emulators._http import LOST, FaultPlan, serve
from emulators.gcs import GcsEmulator

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["emulators.cos", "emulators.gcs"])
def test_faults_flag_sets_the_plan_before_the_first_request(module):
    plan = {"script": [503], "match_path": "/storage-or-object", "seed": 3}
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", "--faults", json.dumps(plan)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        # The control API reports the plan the flag installed.
        request = urllib.request.Request(f"{url}/_emulator/faults", data=b"{}", method="POST")
        with opener.open(f"{url}/_emulator/requests", timeout=10) as response:
            assert json.loads(response.read()) == []
        with pytest.raises(urllib.error.HTTPError) as caught:
            opener.open(f"{url}/storage-or-object", timeout=10)
        assert caught.value.code == 503
        with opener.open(request, timeout=10) as response:  # clears the plan
            assert json.loads(response.read())["script"] == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_malformed_faults_flag_is_refused():
    result = subprocess.run(
        [sys.executable, "-m", "emulators.cos", "--faults", '{"error_rat": 1}'],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 2
    assert "--faults" in result.stderr


# -- plans a soak needs: mixed statuses, lost answers, exempt paths, logged latency ------------
def _call(url: str, method: str = "GET", body: bytes | None = None) -> int:
    """The status answered, or 0 when the connection was reset instead."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (ConnectionError, http.client.RemoteDisconnected, urllib.error.URLError):
        return 0


@pytest.fixture
def gcs():
    with serve(GcsEmulator()) as running:
        running.emulator.create_bucket("faulty")
        running.emulator.create_bucket("exempt")
        yield running


def test_error_statuses_mix_the_injected_answers(gcs):
    gcs.faults.set(FaultPlan(error_rate=1.0, error_statuses=[500, 503, 429], seed=5))
    answered = [_call(f"{gcs.url}/storage/v1/b/faulty/o") for _ in range(40)]
    assert set(answered) == {500, 503, 429}
    assert {(e.status, e.fault) for e in gcs.log.entries()} == {
        (500, "injected"), (503, "injected"), (429, "injected")}
    # The same seed replays the same sequence.
    gcs.faults.set(FaultPlan(error_rate=1.0, error_statuses=[500, 503, 429], seed=5))
    assert [_call(f"{gcs.url}/storage/v1/b/faulty/o") for _ in range(40)] == answered


def test_a_lost_response_happened_but_never_arrived(gcs):
    generation = gcs.emulator.put_object("faulty", "k.txt", b"data")
    gcs.emulator.delete_object("faulty", "k.txt")
    gcs.faults.set(FaultPlan(script=[LOST]))
    restore = f"{gcs.url}/storage/v1/b/faulty/o/k.txt/restore?generation={generation}"
    assert _call(restore, "POST", b"") == 0
    [entry] = gcs.log.entries()
    assert (entry.status, entry.fault) == (200, "lost_response")
    live = [g for g in gcs.emulator.generations("faulty", "k.txt") if g["state"] == "live"]
    assert len(live) == 1  # the restore was made although the client saw only a reset


def test_lost_response_rate_is_drawn_per_request(gcs):
    gcs.faults.set(FaultPlan(lost_response_rate=0.5, seed=2))
    answered = [_call(f"{gcs.url}/storage/v1/b/faulty/o") for _ in range(30)]
    assert 0 in answered and 200 in answered
    logged = [(e.status, e.fault) for e in gcs.log.entries()]
    assert logged.count((200, "lost_response")) == answered.count(0)


def test_skip_path_exempts_matching_requests(gcs):
    gcs.faults.set(FaultPlan(error_rate=1.0, reset_rate=0.5, latency_ms=1, skip_path="/b/exempt"))
    assert [_call(f"{gcs.url}/storage/v1/b/exempt/o") for _ in range(10)] == [200] * 10
    assert all(_call(f"{gcs.url}/storage/v1/b/faulty/o") in (0, 503) for _ in range(10))
    exempt = [e for e in gcs.log.entries() if "/b/exempt" in e.path]
    assert {(e.fault, e.delay_ms) for e in exempt} == {(None, 0.0)}


def test_latency_is_logged_and_drain_empties_the_log(gcs):
    gcs.faults.set(FaultPlan(latency_ms=30, latency_rate=1.0))
    started = time.monotonic()
    assert _call(f"{gcs.url}/storage/v1/b/faulty/o") == 200
    assert time.monotonic() - started >= 0.03
    gcs.faults.clear()
    assert _call(f"{gcs.url}/storage/v1/b/faulty/o") == 200
    drained = gcs.log.drain()
    assert [(e.fault, e.delay_ms) for e in drained] == [(None, 30.0), (None, 0.0)]
    assert gcs.log.entries() == [] and gcs.log.drain() == []


def test_the_control_api_takes_the_new_settings(gcs):
    plan = {"error_rate": 0.1, "error_statuses": [500, 503], "lost_response_rate": 0.01,
            "skip_path": "/b/exempt", "seed": 9}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{gcs.url}/_emulator/faults", data=json.dumps(plan).encode(),
                                     method="POST")
    with opener.open(request, timeout=10) as response:
        installed = json.loads(response.read())
    assert {key: installed[key] for key in plan} == plan
    assert gcs.faults.plan == FaultPlan(**plan)
