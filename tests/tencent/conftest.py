"""Fixtures for the Tencent SCF entry module: environment wired to the emulators, the module
loaded as SCF loads it (``index`` from ``functions/tencent``), golden events, and the events the
default log sink prints on stdout."""

from __future__ import annotations

import base64
import copy
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import SecretStr

from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from shared import auth
from tests.conftest import GCS_BUCKET

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_DIR = ROOT / "functions" / "tencent"
EVENTS_DIR = ROOT / "tests" / "events"
WEBHOOK_SECRET = "scf-webhook-test-secret"
SECRET = SecretStr(WEBHOOK_SECRET)
# Settings the developer's shell or another test might have set: cleared before every test.
_CLEARED_PREFIXES = (
    "RESTORE_", "COS_", "TENCENTCLOUD_", "TDMQ_", "GCS_", "GOOGLE_", "GCLOUD_",
)
_CLEARED = ("STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")

if str(FUNCTION_DIR) not in sys.path:
    sys.path.insert(0, str(FUNCTION_DIR))


def scf_env_vars(cos_url: str, gcs_url: str) -> dict[str, str]:
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
def scf_env(monkeypatch, cos_emulator, gcs_emulator) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name)
    env = scf_env_vars(cos_emulator.url, gcs_emulator.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def scf(scf_env) -> Iterator[ModuleType]:
    """The entry module with a fresh service (built from the environment on first use)."""
    import index

    index.reset_service()
    try:
        yield index
    finally:
        index.reset_service()


def golden(name: str) -> Any:
    return copy.deepcopy(json.loads((EVENTS_DIR / name).read_text()))


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


def logged(text: str) -> list[dict[str, Any]]:
    """The JSON log lines on stderr."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def statuses(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"].rsplit(".", 1)[-1] for event in events]


def signed(event: dict[str, Any], body: bytes) -> dict[str, Any]:
    """Add the webhook signature headers, lower-case as API Gateway delivers them."""
    event["headers"].update({k.lower(): v for k, v in auth.sign(SECRET, body).items()})
    return event


def apigw_post(payload: Any = None, *, raw: bytes | None = None, b64: bool = False,
               sign: bool = True, content_type: str = "application/json") -> dict[str, Any]:
    """The golden API Gateway POST carrying ``payload`` (or ``raw`` bytes)."""
    event = golden("scf_apigw_post.json")
    body = raw if raw is not None else json.dumps(payload).encode()
    event["headers"]["content-type"] = content_type
    if b64:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = body.decode()
    return signed(event, body) if sign else event


def cmq_event(*bodies: str) -> dict[str, Any]:
    """A CMQ topic event with one record per body, shaped like the golden one."""
    template = golden("scf_cmq_topic.json")["Records"][0]
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["CMQ"]["msgBody"] = body
        record["CMQ"]["msgId"] = str(1000 + index)
        records.append(record)
    return {"Records": records}


def soft_delete(gcs_emulator, name: str, data: bytes = b"bytes") -> int:
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, name, data)
    gcs_emulator.emulator.delete_object(GCS_BUCKET, name)
    return int(generation)


def restore_posts(cos_emulator, key: str) -> dict[str, Any] | None:
    return next(
        (e for e in cos_emulator.emulator.restore_requests() if e["key"] == key), None
    )
