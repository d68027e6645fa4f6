"""Shared fixtures: emulators on ports picked at run time, and services wired to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulators._http import RunningEmulator, serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, CosEmulator
from emulators.gcs import GcsEmulator
from shared.config import CosSettings, GcsSettings, Settings
from shared.events import CloudEvent
from shared.retry import RetryPolicy
from shared.service import RestoreService

COS_BUCKET = "archive-1250000000"
COS_REGION = "ap-guangzhou"
GCS_BUCKET = "restore-demo"


class CollectingSink:
    """Keeps published events in order, so tests can assert exactly what went out."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    def publish(self, event: CloudEvent) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [event.type.rsplit(".", 1)[-1] for event in self.events]


@pytest.fixture
def cos_emulator() -> Iterator[RunningEmulator]:
    with serve(CosEmulator()) as running:
        yield running


@pytest.fixture
def gcs_emulator() -> Iterator[RunningEmulator]:
    with serve(GcsEmulator()) as running:
        running.emulator.create_bucket(GCS_BUCKET)
        yield running


def make_settings(
    cos: RunningEmulator | None = None, gcs: RunningEmulator | None = None, **overrides: Any
) -> Settings:
    fields: dict[str, Any] = {
        "cos_allowed_buckets": ("archive-*",),
        "gcs_allowed_buckets": ("restore-*",),
        "provider_timeout_seconds": 5.0,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
    }
    if cos is not None:
        fields["cos"] = CosSettings(
            secret_id=DEFAULT_SECRET_ID, secret_key=DEFAULT_SECRET_KEY, endpoint=cos.url,
            scheme="http",
        )
    if gcs is not None:
        fields["gcs"] = GcsSettings(project="test-project", endpoint=gcs.url)
    fields.update(overrides)
    return Settings(**fields)


@pytest.fixture
def sink() -> CollectingSink:
    return CollectingSink()


@pytest.fixture
def service(
    cos_emulator: RunningEmulator, gcs_emulator: RunningEmulator, sink: CollectingSink
) -> RestoreService:
    settings = make_settings(cos_emulator, gcs_emulator)
    return RestoreService(settings, sink=sink, retry=RetryPolicy.from_settings(settings))


def cos_request(key: str = "data/archived.bin", **overrides: Any) -> dict[str, Any]:
    payload = {
        "provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "key": key,
        "days": 3, "tier": "Expedited",
    }
    payload.update(overrides)
    return payload


def gcs_request(name: str = "reports/2026.csv", **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"provider": "gcs", "bucket": GCS_BUCKET, "object": name}
    payload.update(overrides)
    return payload
