"""``make demo`` must keep working: run it as the Makefile does and check what it printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_restores_both_providers_and_prints_each_event():
    result = subprocess.run(
        [sys.executable, "-m", "scripts.demo"], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    printed = [
        line.split()[2].rsplit(".", 1)[-1]
        for line in result.stdout.splitlines() if line.startswith("=== event ")
    ]
    assert printed == ["completed", "initiated", "completed"] * 2  # Google, then Tencent SCF
    assert '"restored_generation"' in result.stdout
    assert '"expiry_time"' in result.stdout
