"""The issue's acceptance test: 5,000 archived objects through the fan-out at a 200/s limit.

The function side runs in a child process (its peak RSS is its own); the COS emulator runs here
and counts every admitted restore and every 503 its limit refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators._http import RunningEmulator, serve
from emulators.cos import CosEmulator
from tests.bulk.conftest import REPORT_BUCKET, cos_job
from tests.conftest import COS_BUCKET

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 200
INSTANCES = 2


@pytest.fixture
def limited_cos() -> Iterator[RunningEmulator]:
    with serve(CosEmulator(restore_rate_limit=LIMIT)) as running:
        running.emulator.create_bucket(REPORT_BUCKET)
        yield running


def _run(cos: RunningEmulator, count: int, job_id: str) -> dict[str, object]:
    emulator = cos.emulator
    prefix = f"{job_id}/"
    for i in range(count):
        emulator.put_object(COS_BUCKET, f"{prefix}obj-{i:06d}", b"", "ARCHIVE")
    emulator.reset_restore_rate_stats()
    job = cos_job(job_id=job_id, selection={"prefix": prefix}, limits={"chunk_size": 250})
    done = subprocess.run(
        [sys.executable, "-m", "tests.bulk.fanout_child", cos.url, str(INSTANCES),
         json.dumps(job), str(LIMIT)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["rate"] = emulator.restore_rate_stats()
    rows = [json.loads(line) for line in emulator.object_body(
        REPORT_BUCKET, f"reports/{job_id}/report.jsonl").splitlines()]
    result["rows"] = rows
    return result


def test_five_thousand_objects_at_the_limit_each_reported_once_memory_flat(
        limited_cos: RunningEmulator) -> None:
    small = _run(limited_cos, 1000, "job-1k")
    large = _run(limited_cos, 5000, "job-5k")

    keys = [row["key"] for row in large["rows"]]  # type: ignore[index, union-attr]
    assert len(keys) == 5000 and len(set(keys)) == 5000
    assert {row["status"] for row in large["rows"]} == {"initiated"}  # type: ignore[union-attr]
    rate = large["rate"]
    # Zero is the target and what a quiet machine gives (the bench's at-limit row measures it).
    # The emulator counts a request when its own thread gets to it: on a starved machine that
    # lags our send by more than the pacing's jitter allowance, and a handful land in the next
    # second. Unpaced or mispaced fan-outs are refused hundreds of times (coscmd: 245 of 5,000
    # at 100/s), so 0.1% still tells a working pacer from a broken one.
    assert rate["refused"] <= 5, rate  # type: ignore[index]
    assert rate["admitted"] == 5000  # type: ignore[index]
    # The pacing aims at 1 / (1 + JITTER) = 95.7% of the limit (the bench measures 95.4% at
    # 100/s); a loaded 2-core machine running both sides and the emulator loses a few points.
    assert rate["rate"] >= 0.85 * LIMIT, rate  # type: ignore[index]
    assert large["events"] == ["restorefn.bulk.job.v1.completed"]
    assert large["progress"]["state"] == "completed"  # type: ignore[index]
    # Memory does not grow with the object count: five times the objects, (nearly) the same
    # peak. The allowance covers transient peaks (a listing page parsed while chunks run; the
    # longer run has more chances to stack them), not a per-object cost: a 2 KiB-per-object
    # leak would be 8 MiB here. Sampled steady RSS is the same at both sizes (README).
    growth = large["peak_rss_mib"] - small["peak_rss_mib"]  # type: ignore[operator]
    assert growth < 8, (small["peak_rss_mib"], large["peak_rss_mib"])
