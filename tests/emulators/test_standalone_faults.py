"""Fault injection chosen per run on the standalone emulators (``--faults``)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

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
