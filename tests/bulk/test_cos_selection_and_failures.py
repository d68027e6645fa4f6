"""COS bulk: manifests (CSV, JSONL, inline), dry run, redelivery, partial failure and leftovers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulators._http import FaultPlan, RunningEmulator
from shared.bulk.schemas import BulkChunk
from shared.bulk.service import BulkRefused
from shared.validation import RequestValidationError
from tests.bulk.conftest import REPORT_BUCKET, cos_job
from tests.conftest import COS_BUCKET, CollectingSink


def _rows(cos_emulator: RunningEmulator, job_id: str) -> list[dict[str, Any]]:
    body = cos_emulator.emulator.object_body(REPORT_BUCKET, f"reports/{job_id}/report.jsonl")
    return [json.loads(line) for line in body.splitlines()]


def _received(cos_emulator: RunningEmulator) -> dict[str, int]:
    return {r["key"]: r["received"] for r in cos_emulator.emulator.restore_requests()}


def _seed(cos_emulator: RunningEmulator, keys: list[str], storage_class: str = "ARCHIVE") -> None:
    for key in keys:
        cos_emulator.emulator.put_object(COS_BUCKET, key, b"x", storage_class)


@pytest.mark.parametrize("manifest", [
    ("m/list.csv", "key,version_id\nm/a.gz,\nm/b.gz,\nm/missing.gz,\n"),
    ("m/list-s3.csv", f"{COS_BUCKET},m/a.gz\n{COS_BUCKET},m/b.gz\nother-1250000000,m/c.gz\n"
                      f"{COS_BUCKET},m/missing.gz\n"),
    ("m/list.jsonl", '{"key": "m/a.gz"}\n{"Key": "m/b.gz"}\nnot json\n{"key": "m/missing.gz"}\n'),
])
def test_manifest_in_the_bucket_names_the_objects(
        cos_emulator: RunningEmulator, cos_bulk, manifest: tuple[str, str]) -> None:
    _seed(cos_emulator, ["m/a.gz", "m/b.gz", "m/c.gz"])
    name, text = manifest
    cos_emulator.emulator.put_object(COS_BUCKET, name, text.encode(), "STANDARD")
    harness = cos_bulk()
    summary = harness.run(cos_job(job_id="job-manifest", selection={"manifest": {"key": name}}))

    assert summary.objects == 3
    rows = {r["key"]: r for r in _rows(cos_emulator, "job-manifest")}
    assert rows["m/a.gz"]["status"] == rows["m/b.gz"]["status"] == "initiated"
    assert rows["m/missing.gz"]["status"] == "failed"
    assert rows["m/missing.gz"]["error_code"] == "not_found"
    assert "m/c.gz" not in rows and "m/c.gz" not in _received(cos_emulator)
    if name.endswith("s3.csv"):
        assert summary.skipped == {"other_bucket": 1}
    if name.endswith(".jsonl"):
        assert summary.skipped == {"manifest_line_invalid": 1}


def test_inline_objects_and_the_job_completed_event_carry_context(
        cos_emulator: RunningEmulator, cos_bulk, sink: CollectingSink) -> None:
    _seed(cos_emulator, ["i/1", "i/2"])
    _seed(cos_emulator, ["i/3"], "STANDARD")
    harness = cos_bulk()
    harness.run(cos_job(job_id="job-inline", context={"ticket": "OPS-9"},
                        selection={"objects": [{"key": "i/1"}, {"key": "i/2"},
                                               {"key": "i/3"}]}))
    statuses = {r["key"]: (r["status"], r["error_code"]) for r in _rows(cos_emulator,
                                                                        "job-inline")}
    assert statuses == {"i/1": ("initiated", None), "i/2": ("initiated", None),
                        "i/3": ("rejected", "not_archived")}
    (event,) = [e for e in sink.events if e.type.endswith("job.v1.completed")]
    data = event.data.model_dump()
    assert data["context"] == {"ticket": "OPS-9"}
    assert data["counts"] == {"initiated": 2, "rejected": 1}
    assert data["report_csv"] == f"cos://{REPORT_BUCKET}/reports/job-inline/report.csv"


def test_dry_run_counts_classes_and_window_and_restores_nothing(
        cos_emulator: RunningEmulator, cos_bulk, sink: CollectingSink) -> None:
    _seed(cos_emulator, [f"d/a{i}" for i in range(3)])
    _seed(cos_emulator, [f"d/deep{i}" for i in range(2)], "DEEP_ARCHIVE")
    _seed(cos_emulator, ["d/std"], "STANDARD")
    harness = cos_bulk()
    summary = harness.run(cos_job(dry_run=True, tier="Bulk", selection={"prefix": "d/"}))

    assert summary.dry_run and summary.objects == 5
    assert summary.by_storage_class == {"ARCHIVE": 3, "DEEP_ARCHIVE": 2}
    assert summary.skipped == {"not_archived": 1}
    hours = (summary.expected_completion_before - summary.expected_completion_after)
    assert hours.total_seconds() == pytest.approx((48 - 5) * 3600, abs=5)
    assert cos_emulator.emulator.restore_requests() == []
    assert harness.queue.delivered == 0 and sink.events == []


def test_storage_class_filter_and_globs(cos_emulator: RunningEmulator, cos_bulk) -> None:
    _seed(cos_emulator, ["g/2026/a.log", "g/2026/b.csv", "g/2026/x/c.log"])
    _seed(cos_emulator, ["g/2026/deep.log"], "DEEP_ARCHIVE")
    harness = cos_bulk()
    summary = harness.run(cos_job(job_id="job-glob", selection={
        "globs": ["g/2026/*.log"], "storage_classes": ["ARCHIVE"]}))
    assert summary.objects == 1
    assert summary.skipped == {"storage_class_not_selected": 1}
    assert set(_received(cos_emulator)) == {"g/2026/a.log"}


def test_partial_failure_retries_only_the_leftovers(
        cos_emulator: RunningEmulator, cos_bulk) -> None:
    keys = [f"p/ok-{i}" for i in range(6)] + [f"p/flaky-{i}" for i in range(2)]
    _seed(cos_emulator, keys)
    # Every restore of a flaky object fails with 503 for the chunk's three passes, then works.
    cos_emulator.faults.set(FaultPlan(match_path="flaky", script=[503] * 6))
    harness = cos_bulk()
    harness.run(cos_job(job_id="job-partial", selection={"prefix": "p/"},
                        limits={"chunk_size": 8}))

    received = _received(cos_emulator)
    assert all(received[k] == 1 for k in keys if "ok" in k)
    assert all(received[k] == 4 for k in keys if "flaky" in k)
    chunks = [r.bulk for r in harness.results if r.bulk]
    assert [c["chunk_id"] for c in chunks] == ["c000001", "c000001.r2"]
    assert chunks[0]["leftovers"] == 2 and chunks[1]["rows"] == 2
    rows = _rows(cos_emulator, "job-partial")
    assert sorted(r["key"] for r in rows) == sorted(keys)
    assert {r["status"] for r in rows} == {"initiated"}


def test_a_redelivered_chunk_restores_nothing_it_finished(
        cos_emulator: RunningEmulator, cos_bulk) -> None:
    _seed(cos_emulator, ["r/1", "r/2", "r/3"])
    harness = cos_bulk()
    harness.run(cos_job(job_id="job-redeliver", selection={"prefix": "r/"}))
    before = _received(cos_emulator)
    params = cos_job(job_id="job-redeliver")
    params.pop("kind")
    chunk = BulkChunk(job=params, chunk_id="c000001", rate=10,
                      items=[{"key": "r/1"}, {"key": "r/2"}, {"key": "r/3"}])
    result = harness.bulk.work(chunk)
    assert _received(cos_emulator) == before
    assert len(result.rows) == 3 and result.chunk_done


def test_invalid_jobs_and_foreign_buckets_are_refused(cos_bulk) -> None:
    harness = cos_bulk()
    with pytest.raises(RequestValidationError) as invalid:
        harness.bulk.submit(cos_job(days=0, selection={"prefix": "a", "objects": [{"key": "b"}]}))
    fields = {p.field for p in invalid.value.problems}
    assert "days" in fields and "selection" in fields
    with pytest.raises(BulkRefused, match="allowlist"):
        harness.bulk.submit(cos_job(report={"bucket": "elsewhere-1250000000"}))
