"""Bulk fixtures: a service wired to the emulators, and an in-process queue running its chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulators._http import RunningEmulator, serve
from emulators.gcs import GcsEmulator
from shared.bulk.queues import InProcessQueue
from shared.bulk.service import BulkService
from shared.queue import process_message
from shared.retry import RetryPolicy
from shared.service import RestoreService
from tests.conftest import COS_BUCKET, COS_REGION, GCS_BUCKET, CollectingSink, make_settings

REPORT_BUCKET = "archive-reports-1250000000"
GCS_REPORT_BUCKET = "restore-reports"


def cos_job(**overrides: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "kind": "restorefn.bulk.v1", "provider": "cos", "bucket": COS_BUCKET,
        "region": COS_REGION, "days": 2, "tier": "Standard",
        "report": {"bucket": REPORT_BUCKET, "prefix": "reports"},
    }
    job.update(overrides)
    return job


def gcs_job(**overrides: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "kind": "restorefn.bulk.v1", "provider": "gcs", "bucket": GCS_BUCKET,
        "report": {"bucket": GCS_REPORT_BUCKET, "prefix": "reports"},
    }
    job.update(overrides)
    return job


class BulkHarness:
    """A RestoreService + BulkService whose chunk queue is an in-process one (N instances)."""

    def __init__(self, settings_factory: Callable[..., Any], sink: CollectingSink,
                 instances: int = 2, **settings: Any) -> None:
        self.settings = settings_factory(bulk_max_instances=instances, **settings)
        self.sink = sink
        self.service = RestoreService(self.settings, sink=sink,
                                      retry=RetryPolicy.from_settings(self.settings))
        self.queue = InProcessQueue(self._deliver, instances=instances)
        self.bulk = BulkService(self.service, self.queue)
        self.service.bulk_service = self.bulk
        self.results: list[Any] = []

    def _deliver(self, data: bytes) -> None:
        result = process_message(self.service, data)
        self.results.append(result)
        if result.retry:
            raise RuntimeError("redeliver")

    def run(self, job: dict[str, Any]) -> Any:
        summary = self.bulk.submit(job)
        self.queue.join()
        return summary

    def close(self) -> None:
        self.queue.close()


@pytest.fixture
def cos_bulk(cos_emulator: RunningEmulator, sink: CollectingSink) -> Iterator[
        Callable[..., BulkHarness]]:
    harnesses: list[BulkHarness] = []
    cos_emulator.emulator.create_bucket(REPORT_BUCKET)

    def make(instances: int = 2, **settings: Any) -> BulkHarness:
        harness = BulkHarness(lambda **kw: make_settings(cos_emulator, **kw), sink,
                              instances, **settings)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        harness.close()


@pytest.fixture
def bulk_gcs_emulator() -> Iterator[RunningEmulator]:
    """A GCS emulator whose bulkRestore operations take a minute of emulated time, so only
    ``clock.advance`` finishes one (a slow machine cannot between two calls of a test)."""
    with serve(GcsEmulator(bulk_restore_seconds=60.0)) as running:
        running.emulator.create_bucket(GCS_BUCKET)
        running.emulator.create_bucket(GCS_REPORT_BUCKET)
        yield running


@pytest.fixture
def gcs_bulk(bulk_gcs_emulator: RunningEmulator, sink: CollectingSink) -> Iterator[
        Callable[..., BulkHarness]]:
    harnesses: list[BulkHarness] = []

    def make(instances: int = 2, **settings: Any) -> BulkHarness:
        harness = BulkHarness(lambda **kw: make_settings(gcs=bulk_gcs_emulator, **kw), sink,
                              instances, **settings)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        harness.close()
