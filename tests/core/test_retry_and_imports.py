"""The retry policy, lazy SDK imports and the exported schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.retry import RetryPolicy
from shared.schema_export import schemas

ROOT = Path(__file__).resolve().parents[2]


def outcome(retryable: bool | None) -> Outcome:
    error = None if retryable is None else ErrorInfo(
        code=ErrorCode.PROVIDER_ERROR, message="x", retryable=retryable
    )
    status = OutcomeStatus.COMPLETED if retryable is None else OutcomeStatus.FAILED
    return Outcome(status=status, request_id="r", error=error)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, monotonic=lambda: clock.now, jitter=lambda: 1.0, **kw)


def test_retryable_failure_is_retried_until_success():
    answers = [outcome(True), outcome(True), outcome(None)]
    clock = FakeClock()
    result = policy(clock, max_attempts=5, base_seconds=1).run(lambda: answers.pop(0))
    assert result.status is OutcomeStatus.COMPLETED
    assert result.attempts == 3
    assert clock.pauses == [1.0, 2.0]


def test_permanent_failure_is_never_retried():
    calls = []
    result = policy(FakeClock()).run(lambda: calls.append(1) or outcome(False))
    assert result.attempts == 1 and len(calls) == 1


def test_attempts_are_bounded():
    calls = []
    result = policy(FakeClock(), max_attempts=3, base_seconds=0).run(
        lambda: calls.append(1) or outcome(True)
    )
    assert len(calls) == 3 and result.retryable


def test_no_attempt_starts_that_could_overrun_the_deadline():
    calls = []
    clock = FakeClock()
    result = policy(
        clock, max_attempts=10, base_seconds=4, deadline_seconds=20, attempt_timeout_seconds=10
    ).run(lambda: calls.append(1) or outcome(True))
    # after attempt 1: 0 + 4 + 10 <= 20, go; after attempt 2: 4 + 8 + 10 > 20, stop.
    assert len(calls) == 2 and result.attempts == 2


def test_importing_the_core_imports_no_provider_sdk():
    code = (
        "import sys, shared.service, shared.schemas, shared.events, shared.sinks, "
        "shared.providers, shared.providers.cos, shared.providers.gcs;"
        "heavy = [m for m in ('qcloud_cos', 'google.cloud.storage', 'google.api_core', "
        "'requests', 'functions_framework') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_schemas_in_the_repository_match_the_code():
    for name, document in schemas().items():
        stored = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
        assert stored == document, f"schemas/{name}.schema.json is stale: run make schema"
