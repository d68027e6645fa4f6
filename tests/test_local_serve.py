"""``make serve``: the Google functions under functions-framework against the emulators (the
re-check function and the Cloud Tasks emulator included), as a developer runs them, driven over
HTTP with ``scripts.local send``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError("serve did not come up")
        try:  # waits a little, and notices a server that died on start
            code = proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"serve exited early with {code}")


def _seed_soft_deleted(gcs_url: str, bucket: str, name: str) -> None:
    """Through the GCS JSON API the emulator speaks, as any client would."""
    def call(method: str, url: str, body: bytes, content_type: str) -> None:
        request = urllib.request.Request(url, data=body, method=method,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    call("POST", f"{gcs_url}/storage/v1/b?project=local",
         json.dumps({"name": bucket}).encode(), "application/json")
    call("POST", f"{gcs_url}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}",
         b"hello", "text/plain")
    call("DELETE", f"{gcs_url}/storage/v1/b/{bucket}/o/{name}", b"", "application/json")


def test_serve_runs_both_functions_and_send_signs_requests(tmp_path):
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.local", "serve", "--state-dir", str(state)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _wait_for_file(state / "urls.json", proc)
        urls = json.loads((state / "urls.json").read_text())
        assert set(urls) >= {"webhook", "queue_function", "recheck_function", "cos_emulator",
                             "gcs_emulator", "cloud_tasks_emulator"}
        assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
        assert (state / "webhook-secret").stat().st_mode & 0o077 == 0
        # The re-check function is up and refuses a task nobody signed; its queue exists.
        forged = urllib.request.Request(
            urls["recheck_function"], data=b'{"kind": "restorefn.recheck.v1"}',
            headers={"Content-Type": "application/json", "X-CloudTasks-TaskName": "forged"},
        )
        try:
            urllib.request.urlopen(forged, timeout=30)
            forged_status = 200
        except urllib.error.HTTPError as exc:
            forged_status = exc.code
        queue = "projects/local/locations/us-central1/queues/restore-rechecks"
        with urllib.request.urlopen(f"{urls['cloud_tasks_emulator']}/v2/{queue}",
                                    timeout=30) as response:
            queue_state = json.loads(response.read())["state"]

        _seed_soft_deleted(urls["gcs_emulator"], "demo-served", "hello.txt")
        request_file = tmp_path / "request.json"
        request_file.write_text(json.dumps(
            {"provider": "gcs", "bucket": "demo-served", "object": "hello.txt",
             "request_id": "serve-1"}))
        sent = subprocess.run(
            [sys.executable, "-m", "scripts.local", "send", str(request_file),
             "--state-dir", str(state)],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )
        unsigned = urllib.request.Request(
            urls["webhook"], data=request_file.read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(unsigned, timeout=30)
            unsigned_status = 200
        except urllib.error.HTTPError as exc:
            unsigned_status = exc.code
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()

    assert sent.returncode == 0, sent.stdout + sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["status"] == 200
    assert answer["body"]["outcome"]["status"] == "completed"
    assert unsigned_status == 401
    assert forged_status == 401
    assert queue_state == "RUNNING"
    assert proc.returncode == 0
    # The completed event reached the collector, and the secret never reached the terminal.
    events = [json.loads(line.split(" ", 1)[1]) for line in output.splitlines()
              if line.startswith("[events] ")]
    assert [e["data"]["request_id"] for e in events] == ["serve-1"]
    assert (state / "webhook-secret").read_text() not in output
