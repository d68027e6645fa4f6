"""The real Pub/Sub emulator (Java, shipped with the gcloud SDK) on a port picked at run time.

Skipped when the emulator or java is missing, unless RESTORE_REQUIRE_PUBSUB_EMULATOR=1 (CI on the
machine image that carries it), where a missing emulator is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

EMULATOR = Path(
    os.environ.get(
        "RESTORE_PUBSUB_EMULATOR",
        "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator",
    )
)
READY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class PubSubEmulator:
    host: str  # host:port, the PUBSUB_EMULATOR_HOST form

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing() -> str | None:
    if not EMULATOR.is_file():
        return f"no emulator at {EMULATOR}"
    if shutil.which("java") is None:
        return "java is not on PATH"
    return None


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    problem = _missing()
    if problem is not None:
        message = f"Pub/Sub emulator not installed: {problem}"
        if os.environ.get("RESTORE_REQUIRE_PUBSUB_EMULATOR") == "1":
            pytest.fail(message + " (RESTORE_REQUIRE_PUBSUB_EMULATOR=1)")
        pytest.skip(message)
    data_dir = tmp_path_factory.mktemp("pubsub-data")
    log_path = data_dir / "emulator.log"
    port = _free_port()
    host = f"127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(EMULATOR), "--host=127.0.0.1", f"--port={port}", f"--data-dir={data_dir}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the launcher script forks java: stop the whole group
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"Pub/Sub emulator exited early: {log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"http://{host}/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Pub/Sub emulator not ready after {READY_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.2)
        yield PubSubEmulator(host)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass
