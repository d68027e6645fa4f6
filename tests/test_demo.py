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
    assert printed == ["completed", "initiated", "completed"] * 2  # Google, then Tencent SCF
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

    summary = re.search(r"^OK: 6 events in ([0-9.]+)s", out, re.MULTILINE)
    assert summary is not None
    assert float(summary.group(1)) < 30  # about 6 s on a quiet machine
