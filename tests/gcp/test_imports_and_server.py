"""Cold-start imports of the entry module, and a real functions-framework server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from pydantic import SecretStr

from scripts.local import free_port, wait_for_port
from shared import auth
from tests.conftest import gcs_request
from tests.gcp.conftest import (
    ROOT,
    WEBHOOK_SECRET,
    function_env,
    printed_events,
    soft_delete,
    statuses,
)


def test_importing_the_entry_module_imports_no_provider_sdk_nor_grpc():
    code = (
        "import sys; import functions.gcp.main as m;"
        "assert all(callable(f) for f in (m.restore_http, m.restore_pubsub, m.restore_recheck));"
        "heavy = [n for n in ('qcloud_cos', 'grpc', 'google.cloud.storage') if n in sys.modules];"
        "print('heavy=' + ','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "heavy="


def test_real_functions_framework_server_restores_a_signed_request(cos_emulator, gcs_emulator):
    soft_delete(gcs_emulator, "served.txt")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RESTORE_",
                                                                                  "COS_", "GCS_"))}
    env.update(function_env(cos_emulator.url, gcs_emulator.url))
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "functions-framework"), "--target", "restore_http",
         "--source", "functions/gcp/main.py", "--port", str(port), "--host", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port(proc, port)
        body = json.dumps(gcs_request("served.txt", request_id="served-1")).encode()
        headers = {"Content-Type": "application/json",
                   **auth.sign(SecretStr(WEBHOOK_SECRET), body)}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
            answer = json.loads(response.read())
        unsigned = urllib.request.Request(
            f"http://127.0.0.1:{port}/", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            urllib.request.urlopen(unsigned, timeout=30)
            raise AssertionError("an unsigned request was accepted")
        except urllib.error.HTTPError as exc:
            refused = (exc.code, exc.headers["Content-Type"], json.loads(exc.read()))
    finally:
        proc.terminate()
        try:
            out, _err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _err = proc.communicate()
    assert status == 200
    assert answer["outcome"]["status"] == "completed"
    assert refused[0] == 401
    assert refused[1] == "application/json"
    assert refused[2]["error"]["code"] == "unauthenticated"
    events = printed_events(out)
    assert statuses(events) == ["completed"]
    assert events[0]["data"]["request_id"] == "served-1"
    assert WEBHOOK_SECRET not in out + _err
