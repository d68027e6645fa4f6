"""``make demo`` must keep working: run it as the Makefile does and check what it printed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def printed_events(stdout: str) -> list[dict[str, Any]]:
    """Each ``=== event`` header is followed by the event as indented JSON, ending with ``}``."""
    events, block = [], None
    for line in stdout.splitlines():
        if line.startswith("=== event "):
            block = []
        elif block is not None:
            block.append(line)
            if line == "}":
                events.append(json.loads("\n".join(block)))
                block = None
    return events


def test_demo_restores_both_providers_and_prints_each_event():
    result = subprocess.run(
        [sys.executable, "-m", "scripts.demo"], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    printed = [
        line.split()[2].rsplit(".", 1)[-1]
        for line in out.splitlines() if line.startswith("=== event ")
    ]
    # Google, then Tencent SCF, then the bulk job's completion
    assert printed == ["completed", "initiated", "completed"] * 2 + ["completed"]
    assert '"restored_generation"' in out
    assert '"expiry_time"' in out

    # The Google COS restore completes through the re-check path: the queue function scheduled
    # a Cloud Tasks task at the Expedited lower bound, the emulator delivered it to the
    # restore_recheck function (2xx), which published the completed event.
    lines = out.splitlines()
    assert "first re-check scheduled on Cloud Tasks 60 s (emulated) after initiation" in lines
    deliveries = [line for line in lines if line.startswith("Cloud Tasks emulator -> ")]
    assert len(deliveries) == 1
    assert re.fullmatch(r"Cloud Tasks emulator -> restore_recheck: task [0-9a-f]{12}\.\.\., "
                        r"attempt 1, HTTP 200 \(succeeded\)", deliveries[0])
    assert "restore_recheck log: status 200, result done, request demo-cos-1, check 0" in lines
    events = printed_events(out)
    completed = events[2]
    assert completed["type"] == "restorefn.object.restore.v1.completed"
    assert completed["source"] == "//cos.ap-guangzhou.myqcloud.com/buckets/demo-archive-1250000000"
    assert completed["data"]["request_id"] == "demo-cos-1"
    assert completed["data"]["context"] == {"demo": True, "ticket": "OPS-1234"}
    assert completed["data"]["expiry_time"]

    # The bulk job: 30 ARCHIVE objects under the prefix planned in chunks of 10, the 2 STANDARD
    # ones beside them skipped; the job-completed event counts every archived object once.
    plan = json.loads(next(line for line in lines if line.startswith("plan summary: "))
                      .removeprefix("plan summary: "))
    assert plan["job_id"] == "demo-bulk-1"
    assert (plan["objects"], plan["chunks"]) == (30, 3)
    assert plan["by_storage_class"] == {"ARCHIVE": 30}
    assert plan["skipped"] == {"not_archived": 2}
    job = events[6]
    assert job["type"] == "restorefn.bulk.job.v1.completed"
    assert job["subject"] == "jobs/demo-bulk-1"
    assert job["data"]["counts"] == {"initiated": 30}
    assert job["data"]["total"] == 30
    assert job["data"]["skipped"] == {"not_archived": 2}
    assert job["data"]["context"] == {"demo": True, "ticket": "OPS-1234"}
    report = "cos://demo-reports-1250000000/restorefn-reports/demo-bulk-1/report.csv"
    assert job["data"]["report_csv"] == report
    assert ("progress: completed, 3/3 chunks, 30/30 objects {\"initiated\": 30}, "
            "skipped {\"not_archived\": 2}") in lines
    # report.csv as read back from the report bucket: its header and first rows, then the tally
    # of all its rows: one per archived object, none for the STANDARD ones.
    shown = lines.index(f"report.csv ({report}), first lines:")
    assert lines[shown + 1] == ("  provider,bucket,key,version_id,generation,status,error_code,"
                                "http_status,message")
    assert lines[shown + 2] == ("  cos,demo-archive-1250000000,exports/2026-11/part-000.parquet,"
                                ",,initiated,,,")
    assert "report.csv: 30 rows, 30 distinct keys, 30 of them ARCHIVE, 0 STANDARD" in lines

    summary = re.search(r"^OK: 7 events in ([0-9.]+)s", out, re.MULTILINE)
    assert summary is not None
    assert float(summary.group(1)) < 30  # about 8 s on a quiet machine
