"""COS bulk jobs through the fan-out: listing, filters, chunks, report, job-completed event."""

from __future__ import annotations

import csv
import io
import json

from emulators._http import RunningEmulator
from tests.bulk.conftest import REPORT_BUCKET, cos_job
from tests.conftest import COS_BUCKET, CollectingSink


def _report(cos_emulator: RunningEmulator, job_id: str, name: str) -> bytes:
    return cos_emulator.emulator.object_body(REPORT_BUCKET, f"reports/{job_id}/{name}")


def test_prefix_job_restores_archived_objects_and_reports_each_once(
        cos_emulator: RunningEmulator, cos_bulk, sink: CollectingSink) -> None:
    emulator = cos_emulator.emulator
    for i in range(23):
        emulator.put_object(COS_BUCKET, f"logs/day-{i:03d}.gz", b"x", "ARCHIVE")
    emulator.put_object(COS_BUCKET, "logs/live.txt", b"x", "STANDARD")
    emulator.put_object(COS_BUCKET, "other/ignored.gz", b"x", "ARCHIVE")
    harness = cos_bulk()
    summary = harness.run(cos_job(job_id="job-prefix", selection={"prefix": "logs/"},
                                  limits={"chunk_size": 5}))

    assert summary.objects == 23 and summary.chunks == 5
    assert summary.skipped == {"not_archived": 1}
    restored = {r["key"] for r in emulator.restore_requests()}
    assert restored == {f"logs/day-{i:03d}.gz" for i in range(23)}
    rows = [json.loads(line) for line in _report(cos_emulator, "job-prefix",
                                                  "report.jsonl").splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(restored)
    assert {r["status"] for r in rows} == {"initiated"}
    table = list(csv.DictReader(io.StringIO(_report(cos_emulator, "job-prefix",
                                                    "report.csv").decode())))
    assert len(table) == 23 and table[0]["provider"] == "cos"
    completed = [e for e in sink.events if e.type == "restorefn.bulk.job.v1.completed"]
    assert len(completed) == 1
    assert completed[0].data.model_dump()["counts"] == {"initiated": 23}
