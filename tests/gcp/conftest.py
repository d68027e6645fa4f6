"""Fixtures for the Google Cloud Functions entry module: environment wired to the emulators,
functions-framework test clients, and the events the default log sink prints on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from emulators._http import serve
from emulators.cloudtasks import CloudTasksEmulator
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from tests.cloudtasks.conftest import QUEUE, Tasks
from tests.conftest import GCS_BUCKET

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions" / "gcp" / "main.py")
EVENTS_DIR = ROOT / "tests" / "events"
WEBHOOK_SECRET = "webhook-test-secret"

# Everything Settings.from_env reads, cleared first so the developer's shell cannot leak in.
_SETTINGS_VARS = (
    "RESTORE_COS_ALLOWED_BUCKETS", "RESTORE_GCS_ALLOWED_BUCKETS", "COS_SECRET_ID",
    "COS_SECRET_KEY", "COS_SESSION_TOKEN", "TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY",
    "TENCENTCLOUD_SESSIONTOKEN", "COS_ENDPOINT", "COS_SCHEME", "COS_POOL_SIZE",
    "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GCS_ENDPOINT", "STORAGE_EMULATOR_HOST",
    "RESTORE_PROVIDER_TIMEOUT_SECONDS", "RESTORE_DEADLINE_SECONDS", "RESTORE_MAX_ATTEMPTS",
    "RESTORE_RETRY_BASE_SECONDS", "RESTORE_RETRY_MAX_SECONDS", "RESTORE_EVENT_SINK",
    "RESTORE_EVENT_HTTP_URL", "RESTORE_EVENT_HTTP_SECRET", "RESTORE_EVENT_HTTP_ATTEMPTS",
    "RESTORE_WEBHOOK_AUTH", "RESTORE_WEBHOOK_SECRETS", "RESTORE_WEBHOOK_TOLERANCE_SECONDS",
    "ENTRY_POINT", "RESTORE_LEDGER", "RESTORE_EVENT_FILE", "RESTORE_RECHECK_SCHEDULER",
    "RESTORE_RECHECK_CLOUDTASKS_QUEUE", "RESTORE_RECHECK_URL", "RESTORE_RECHECK_SERVICE_ACCOUNT",
    "RESTORE_RECHECK_AUDIENCE", "RESTORE_RECHECK_CLOUDTASKS_ATTEMPTS", "CLOUD_TASKS_EMULATOR_HOST",
    "RESTORE_RECHECK_MARGIN", "RESTORE_RECHECK_MAX_DELAY_SECONDS", "RESTORE_EMULATED_CLOCK_EPOCH",
    "RESTORE_EMULATED_CLOCK_FACTOR",
)


def function_env(cos_url: str, gcs_url: str) -> dict[str, str]:
    return {
        "RESTORE_GCS_ALLOWED_BUCKETS": "restore-*",
        "RESTORE_COS_ALLOWED_BUCKETS": "archive-*",
        "GOOGLE_CLOUD_PROJECT": "test-project",
        "GCS_ENDPOINT": gcs_url,
        "COS_ENDPOINT": cos_url,
        "COS_SECRET_ID": DEFAULT_SECRET_ID,
        "COS_SECRET_KEY": DEFAULT_SECRET_KEY,
        "COS_SCHEME": "http",
        "RESTORE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "RESTORE_PROVIDER_TIMEOUT_SECONDS": "5",
        "RESTORE_RETRY_BASE_SECONDS": "0.01",
        "RESTORE_RETRY_MAX_SECONDS": "0.05",
    }


@pytest.fixture
def gcp_env(monkeypatch, cos_emulator, gcs_emulator) -> dict[str, str]:
    for name in _SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)
    env = function_env(cos_emulator.url, gcs_emulator.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _reset() -> None:
    module = sys.modules.get("main")
    if module is not None and hasattr(module, "reset_service"):
        module.reset_service()


def _client(target: str) -> Iterator[Any]:
    _reset()
    app = functions_framework.create_app(target, source=SOURCE)
    try:
        yield app.test_client()
    finally:
        _reset()


@pytest.fixture
def http_client(gcp_env) -> Iterator[Any]:
    yield from _client("restore_http")


@pytest.fixture
def pubsub_client(gcp_env) -> Iterator[Any]:
    yield from _client("restore_pubsub")


def golden(name: str) -> Any:
    return json.loads((EVENTS_DIR / name).read_text())


def printed_events(text: str) -> list[dict[str, Any]]:
    """The CloudEvents the log sink printed (one JSON object per stdout line)."""
    events = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("specversion") == "1.0":
                events.append(entry)
    return events


def statuses(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"].rsplit(".", 1)[-1] for event in events]


def soft_delete(gcs_emulator, name: str, data: bytes = b"bytes") -> int:
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, name, data)
    gcs_emulator.emulator.delete_object(GCS_BUCKET, name)
    return int(generation)


# -- delayed re-checks (restore_recheck, Cloud Tasks) -------------------------------------------
RECHECK_INVOKER = "recheck-invoker@test-project.iam.gserviceaccount.com"


@pytest.fixture
def cloud_tasks() -> Iterator[Tasks]:
    """The Cloud Tasks emulator with its clock standing still (tests advance it)."""
    with CloudTasksEmulator([QUEUE], clock_factor=0.0) as emulator, serve(emulator) as running:
        yield Tasks(running)


def recheck_env_for(tasks_url: str, target_url: str) -> dict[str, str]:
    """Re-checks scheduled on the Cloud Tasks emulator, calling ``target_url``."""
    return {
        "RESTORE_RECHECK_SCHEDULER": "cloudtasks",
        "RESTORE_RECHECK_CLOUDTASKS_QUEUE": QUEUE,
        "RESTORE_RECHECK_URL": target_url,
        "RESTORE_RECHECK_SERVICE_ACCOUNT": RECHECK_INVOKER,
        "CLOUD_TASKS_EMULATOR_HOST": tasks_url,
    }


@pytest.fixture
def recheck_env(gcp_env, monkeypatch, cloud_tasks) -> dict[str, str]:
    env = {**gcp_env, **recheck_env_for(cloud_tasks.url, "http://127.0.0.1:9/recheck")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def recheck_client(recheck_env) -> Iterator[Any]:
    yield from _client("restore_recheck")
