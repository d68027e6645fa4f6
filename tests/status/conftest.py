"""Fixtures for the status operation: the service wired to both emulators, with the COS
adapter's clock following the COS emulator's virtual clock (the function and COS agree on the
time, as in production), and helpers that seed objects through the emulators' own APIs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from emulators._http import RunningEmulator
from shared.service import RestoreService
from tests.conftest import COS_BUCKET, COS_REGION, GCS_BUCKET
from tests.gcp.conftest import gcp_env, http_client  # noqa: F401 (fixtures for the GCP route)

EXPEDITED_SECONDS = 60  # the COS emulator's ARCHIVE / Expedited duration
DAY = 86400


def emulated_now(emulator: RunningEmulator, skew: float = 0.0) -> datetime:
    return datetime.fromtimestamp(emulator.emulator.clock.now() + skew, timezone.utc)


@pytest.fixture
def cos_clock(service: RestoreService, cos_emulator: RunningEmulator) -> Callable[[float], None]:
    """Point the COS adapter's clock at the emulator's; call it with a skew in seconds to put
    the function's clock ahead of COS's (a copy COS has not yet dropped)."""

    def follow(skew: float = 0.0) -> None:
        adapter: Any = service.providers.get("cos")
        adapter.clock = lambda: emulated_now(cos_emulator, skew)

    follow()
    return follow


def cos_query(key: str = "data/archived.bin", **overrides: Any) -> dict[str, Any]:
    query: dict[str, Any] = {
        "provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "key": key,
    }
    query.update(overrides)
    return query


def gcs_query(name: str = "reports/2026.csv", **overrides: Any) -> dict[str, Any]:
    query: dict[str, Any] = {"provider": "gcs", "bucket": GCS_BUCKET, "object": name}
    query.update(overrides)
    return query


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def close(a: datetime | None, b: datetime, tolerance: float = 2.0) -> bool:
    return a is not None and abs(a - b) <= timedelta(seconds=tolerance)
