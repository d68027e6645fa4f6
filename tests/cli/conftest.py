"""CLI fixtures: a clean environment (only what a test sets), run helpers, a fast COS clock."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from emulators._http import RunningEmulator, serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, CosEmulator
from shared.cli import main

_PREFIXES = ("RESTORE_", "COS_", "TENCENTCLOUD_", "TDMQ_")
_NAMES = (
    "GCS_ENDPOINT", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT",
    "PUBSUB_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Nothing from the developer's shell leaks in; retries are fast; Google credentials are a
    file that does not exist, so ADC fails at once instead of asking a metadata server."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in _NAMES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("RESTORE_RETRY_BASE_SECONDS", "0.01")
    monkeypatch.setenv("RESTORE_RETRY_MAX_SECONDS", "0.02")
    monkeypatch.setenv("RESTORE_PROVIDER_TIMEOUT_SECONDS", "5")
    missing = tmp_path_factory.mktemp("adc") / "missing-credentials.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))


@pytest.fixture
def cos_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COS_SECRET_ID", DEFAULT_SECRET_ID)
    monkeypatch.setenv("COS_SECRET_KEY", DEFAULT_SECRET_KEY)


@pytest.fixture
def fast_cos() -> Iterator[RunningEmulator]:
    """A COS emulator whose clock runs 3600x: an Expedited restore (60 s) takes ~17 ms."""
    with serve(CosEmulator(clock_factor=3600.0)) as running:
        yield running


@dataclass
class Run:
    code: int
    out: str
    err: str

    def docs(self) -> list[dict[str, Any]]:
        """stdout as JSON documents, one per line (every line must be one)."""
        return [json.loads(line) for line in self.out.splitlines()]

    def doc(self) -> dict[str, Any]:
        [doc] = self.docs()
        return doc


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
