"""Fixtures for hostile-input tests: emulators and entry points shared across hypothesis
examples, the events they publish read back from a file sink, and a count of every fuzz case.

Hypothesis runs many examples inside one test call, so whatever the examples share must outlive
a single call: the emulators, the entry points and their environment live per module here (a
function-scoped fixture would be shared across examples without being reset, which hypothesis
rightly refuses).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import functions_framework
import pytest
from hypothesis import HealthCheck, settings

from emulators._http import RunningEmulator, serve
from emulators.cloudtasks import CloudTasksEmulator
from emulators.cos import CosEmulator
from emulators.gcs import GcsEmulator
from tests.cloudtasks.conftest import QUEUE
from tests.conftest import GCS_BUCKET
from tests.gcp.conftest import _SETTINGS_VARS, RECHECK_INVOKER, SOURCE, function_env
from tests.tencent.conftest import FUNCTION_DIR, scf_env_vars

FUZZ_CASES: Counter[str] = Counter()


def fuzz_settings(max_examples: int) -> settings:
    """Reproducible (derandomized, no example database) and bounded; no deadline, because the
    examples make real HTTP calls to the emulators on a shared machine."""
    return settings(
        max_examples=max_examples, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
    )


def count_case(name: str) -> None:
    """One more fuzz case run (reported at the end of the session)."""
    FUZZ_CASES[name] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """``hostile fuzz cases: N (per test...)``: every one of them held to the full contract."""
    if FUZZ_CASES:
        per_test = ", ".join(f"{name} {count}" for name, count in sorted(FUZZ_CASES.items()))
        terminalreporter.write_line(f"hostile fuzz cases: {FUZZ_CASES.total()} ({per_test})")


# -- emulators shared by every example -------------------------------------------------------
@pytest.fixture(scope="module")
def cos_live() -> Iterator[RunningEmulator]:
    with serve(CosEmulator()) as running:
        yield running


@pytest.fixture(scope="module")
def gcs_live() -> Iterator[RunningEmulator]:
    with serve(GcsEmulator()) as running:
        running.emulator.create_bucket(GCS_BUCKET)
        yield running


@pytest.fixture(scope="module")
def tasks_live() -> Iterator[RunningEmulator]:
    with CloudTasksEmulator([QUEUE], clock_factor=0.0) as emulator, serve(emulator) as running:
        yield running


@dataclass
class EventFile:
    """The file sink's output, read incrementally: what one example published."""

    path: Path
    _offset: int = field(default=0)

    def new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        return [json.loads(line) for line in data.decode().split("\n") if line.strip()]


@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> EventFile:
    return EventFile(tmp_path_factory.mktemp("hostile-events") / "events.jsonl")


_CLEARED_PREFIXES = ("RESTORE_", "COS_", "TENCENTCLOUD_", "TDMQ_", "GCS_", "GOOGLE_", "GCLOUD_",
                     "STORAGE_EMULATOR", "PUBSUB_EMULATOR", "CLOUD_TASKS_")


@contextmanager
def _module_env(values: dict[str, str]) -> Iterator[None]:
    """``values`` and nothing else of ours: the developer's shell must not leak in."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [*_SETTINGS_VARS, *os.environ]:
            if name in _SETTINGS_VARS or name.startswith(_CLEARED_PREFIXES):
                patch.delenv(name, raising=False)
        for name, value in values.items():
            patch.setenv(name, value)
        yield


# -- Google: the three functions under functions-framework -----------------------------------
@dataclass
class GcpApps:
    http: Any
    pubsub: Any
    recheck: Any
    modules: list[ModuleType]


@pytest.fixture(scope="module")
def gcp_env(cos_live, gcs_live, tasks_live, event_file) -> Iterator[dict[str, str]]:
    env = {
        **function_env(cos_live.url, gcs_live.url),
        "RESTORE_EVENT_SINK": "file",
        "RESTORE_EVENT_FILE": str(event_file.path),
        "RESTORE_RECHECK_SCHEDULER": "cloudtasks",
        "RESTORE_RECHECK_CLOUDTASKS_QUEUE": QUEUE,
        "RESTORE_RECHECK_URL": "http://127.0.0.1:9/recheck",
        "RESTORE_RECHECK_SERVICE_ACCOUNT": RECHECK_INVOKER,
        "CLOUD_TASKS_EMULATOR_HOST": tasks_live.url,
    }
    with _module_env(env):
        yield env


@pytest.fixture(scope="module")
def gcp(gcp_env) -> Iterator[GcpApps]:
    """One functions-framework app per entry point, each with its own service."""
    clients = {}
    modules = []
    for target in ("restore_http", "restore_pubsub", "restore_recheck"):
        app = functions_framework.create_app(target, source=SOURCE)
        module = sys.modules["main"]
        module.reset_service()
        modules.append(module)
        clients[target] = app.test_client()
    yield GcpApps(clients["restore_http"], clients["restore_pubsub"],
                  clients["restore_recheck"], modules)
    for module in modules:
        module.reset_service()


# -- Tencent: main_handler -------------------------------------------------------------------
@pytest.fixture(scope="module")
def scf(cos_live, gcs_live, event_file) -> Iterator[ModuleType]:
    env = {**scf_env_vars(cos_live.url, gcs_live.url), "RESTORE_EVENT_SINK": "file",
           "RESTORE_EVENT_FILE": str(event_file.path)}
    if str(FUNCTION_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTION_DIR))
    with _module_env(env):
        import index

        index.reset_service()
        try:
            yield index
        finally:
            index.reset_service()


# -- a live functions-framework server (gunicorn), as deployed ---------------------------------
@dataclass
class LiveFunction:
    url: str
    port: int
    cos: RunningEmulator
    gcs: RunningEmulator
    output: list[str]


@pytest.fixture(scope="session")
def live_webhook() -> Iterator[LiveFunction]:
    """``restore_http`` under the real ``functions-framework`` command (gunicorn) on a loopback
    port, backed by its own emulators, so valid requests really restore."""
    from scripts.local import _start_function, _stop

    output: list[str] = []
    with serve(CosEmulator()) as cos, serve(GcsEmulator()) as gcs:
        gcs.emulator.create_bucket(GCS_BUCKET)
        function = _start_function("restore_http", function_env(cos.url, gcs.url),
                                   lambda _target, line: output.append(line))
        try:
            port = int(function.url.rstrip("/").rsplit(":", 1)[1])
            yield LiveFunction(function.url, port, cos, gcs, output)
        finally:
            _stop(function)
