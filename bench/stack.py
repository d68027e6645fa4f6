"""The emulators a bench talks to, each in its own process (``python -m emulators.cos`` /
``emulators.gcs``), so that their work never shares an interpreter (or its GIL) with what is
being measured; seeding through their ``/_emulator/`` control API; the environments our
functions and the baselines run with; and the small process helpers every section uses.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COS_BUCKET = "bench-archive-1250000000"
COS_REGION = "ap-guangzhou"
GCS_BUCKET = "bench-restore"
WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 - a fixed secret for loopback only
PYTHON = sys.executable
FUNCTIONS_FRAMEWORK = str(Path(sys.executable).with_name("functions-framework"))

# The developer's own configuration must not leak into what is measured.
_LEAKY_PREFIXES = ("RESTORE_", "COS_", "GCS_", "TENCENTCLOUD_", "STORAGE_EMULATOR", "TDMQ_",
                   "PUBSUB_EMULATOR", "CLOUD_TASKS_EMULATOR", "GOOGLE_", "GCLOUD_")


def _emulator_secrets() -> tuple[str, str]:
    from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY

    return DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY


def clean_environ() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    base["PYTHONUNBUFFERED"] = "1"
    base.pop("PYTHONPATH", None)
    # Our code runs byte-compiled, as site-packages (the baselines' only code) always does and
    # as a deployment package is: see byte_compile.
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    return base


def byte_compile() -> None:
    """Compile our code and the baselines to ``__pycache__`` (git-ignored) before anything is
    timed: with ``PYTHONDONTWRITEBYTECODE`` set (as in some shells and CI) every fresh process
    would otherwise recompile ``shared/`` from source (~40 ms a start here), a cost neither a
    deployment (the SCF package is byte-compiled, see deploy.sh) nor the baselines (their SDKs
    were compiled by pip) pay."""
    import compileall

    for part in ("shared", "functions", "bench", "emulators"):
        if not compileall.compile_dir(str(ROOT / part), quiet=1, workers=1):
            raise RuntimeError(f"byte-compiling {part}/ failed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate one process we started (by its own handle), then reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- HTTP helpers ----------------------------------------------------------------------------
def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 30.0) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    merged = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=merged, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


# -- emulators -------------------------------------------------------------------------------
@dataclass
class EmulatorProcess:
    name: str
    url: str
    process: subprocess.Popen[str]


def _start_emulator(module: str, *args: str) -> EmulatorProcess:
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
        [PYTHON, "-m", module, "--port", "0", *args], cwd=ROOT,
        env={**clean_environ(), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "<name> emulator listening on http://127.0.0.1:N"
    if "listening on " not in line:
        stop(process)
        raise RuntimeError(f"{module} did not start: {line!r}")
    url = line.rsplit("listening on ", 1)[1].strip()
    return EmulatorProcess(module, url, process)


@dataclass
class Stack:
    cos: EmulatorProcess
    gcs: EmulatorProcess

    # -- seeding ----------------------------------------------------------------------------
    def seed_cos(self, keys: list[str], storage_class: str = "ARCHIVE") -> None:
        for key in keys:
            status, body = http("POST", f"{self.cos.url}/_emulator/objects",
                                {"bucket": COS_BUCKET, "key": key, "body": "x",
                                 "storage_class": storage_class})
            if status != 201:
                raise RuntimeError(f"seeding COS {key}: {status} {body[:200]!r}")

    def seed_gcs_soft_deleted(self, names: list[str]) -> dict[str, int]:
        """Write then delete each object: one soft-deleted generation each; name -> generation."""
        generations: dict[str, int] = {}
        for name in names:
            status, body = http("POST", f"{self.gcs.url}/_emulator/objects",
                                {"bucket": GCS_BUCKET, "name": name, "data": "x"})
            if status != 200:
                raise RuntimeError(f"seeding GCS {name}: {status} {body[:200]!r}")
            generations[name] = int(json.loads(body)["generation"])
            query = urllib.parse.urlencode({"bucket": GCS_BUCKET, "name": name})
            status, body = http("DELETE", f"{self.gcs.url}/_emulator/objects?{query}")
            if status != 200:
                raise RuntimeError(f"soft-deleting GCS {name}: {status} {body[:200]!r}")
        return generations

    # -- checks (outside any timed region) -----------------------------------------------------
    def cos_accepted(self) -> dict[str, int]:
        """Restore POSTs the COS emulator answered 202, per key of the bench bucket."""
        status, body = http("GET", f"{self.cos.url}/_emulator/restore-requests")
        if status != 200:
            raise RuntimeError(f"reading COS restore requests: {status}")
        return {entry["key"]: int(entry["accepted"]) for entry in json.loads(body)
                if entry["bucket"] == COS_BUCKET}

    def gcs_live(self, name: str) -> bool:
        query = urllib.parse.urlencode({"bucket": GCS_BUCKET, "name": name})
        status, body = http("GET", f"{self.gcs.url}/_emulator/objects?{query}")
        return status == 200 and any(g["state"] == "live" for g in json.loads(body))

    # -- environments -------------------------------------------------------------------------
    def ours_env(self) -> dict[str, str]:
        """What a deployment of our functions sets, pointed at the emulators (log sink)."""
        secret_id, secret_key = _emulator_secrets()
        return {
            "RESTORE_COS_ALLOWED_BUCKETS": "bench-*",
            "RESTORE_GCS_ALLOWED_BUCKETS": "bench-*",
            "GOOGLE_CLOUD_PROJECT": "bench",
            "GCS_ENDPOINT": self.gcs.url,
            "COS_ENDPOINT": self.cos.url,
            "COS_SCHEME": "http",
            "COS_SECRET_ID": secret_id,
            "COS_SECRET_KEY": secret_key,
            "RESTORE_WEBHOOK_AUTH": "hmac",
            "RESTORE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
            "RESTORE_EVENT_SINK": "log",
        }

    def baseline_env(self) -> dict[str, str]:
        """What the hand-written baselines read: endpoints and credentials, nothing else."""
        secret_id, secret_key = _emulator_secrets()
        return {
            "GOOGLE_CLOUD_PROJECT": "bench",
            "GCS_ENDPOINT": self.gcs.url,
            "COS_ENDPOINT": self.cos.url,
            "COS_SECRET_ID": secret_id,
            "COS_SECRET_KEY": secret_key,
        }


@contextmanager
def emulator_stack() -> Iterator[Stack]:
    """Both emulators as child processes (no restore rate limit), torn down on exit."""
    cos = _start_emulator("emulators.cos", "--rate-limit", "0")
    try:
        gcs = _start_emulator("emulators.gcs")
        try:
            status, body = http("POST", f"{gcs.url}/_emulator/buckets", {"name": GCS_BUCKET})
            if status != 200:
                raise RuntimeError(f"creating the GCS bucket: {status} {body[:200]!r}")
            yield Stack(cos, gcs)
        finally:
            stop(gcs.process)
    finally:
        stop(cos.process)


# -- /proc -----------------------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def status_kib(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/PID/status (VmHWM: peak RSS; VmRSS: current), None if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def wait_until(predicate: Any, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False

