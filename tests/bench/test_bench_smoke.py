"""``make bench`` in a tiny mode: every section runs end to end against the emulators, and the
JSON carries every expected figure with a positive baseline and a ratio computed from the two
figures measured in that run (nothing here knows what the figures should be)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core import ROW_KEYS, Row, Target
from bench.run import parse_args

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = ("gcp_webhook", "gcp_queue", "scf_apigw")


@pytest.mark.slow
def test_a_tiny_run_reports_every_figure_against_its_baseline(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--runs", "1", "--iterations", "5",
         "--requests", "100", "--out", str(out), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(out.read_text())

    seen = {(row["section"], row["detail"].get("entry") or row["detail"].get("workload"))
            for row in doc["rows"]}
    assert seen == {
        *(("cold_start", entry) for entry in ENTRIES),
        *(("warm", entry) for entry in ENTRIES),
        ("memory", "gcp_queue_batch"), ("memory", "scf_queue_batch"),
    }
    for row in doc["rows"]:
        assert set(ROW_KEYS) <= set(row)
        assert row["ours"] > 0
        assert row["baseline"] > 0
        assert row["ratio"] == pytest.approx(row["ours"] / row["baseline"], rel=1e-3)
        assert isinstance(row["ok"], bool)
        assert row["target"]
        assert row["name"] in done.stdout  # the printed table carries the same rows
    units = {row["section"]: row["unit"] for row in doc["rows"]}
    assert units == {"cold_start": "ms", "warm": "ms", "memory": "MiB"}
    assert doc["options"]["warm_iterations"] == 5
    assert doc["machine"]["cpus"] >= 1
    assert doc["all_ok"] == all(row["ok"] for row in doc["rows"])


def test_targets_decide_from_the_measured_figures():
    ratio = Row("s", "r", ours=120.0, baseline=100.0, unit="ms",
                target=Target.ratio_at_most(1.2))
    assert ratio.ratio == pytest.approx(1.2)
    assert ratio.ok
    added = Row("s", "a", ours=2.4, baseline=1.0, unit="ms",
                target=Target.added_at_most(1.0, "ms"), added=1.3)
    assert not added.ok  # the paired difference decides, not the difference of medians
    memory = Row("s", "m", ours=130.0, baseline=40.0, unit="MiB",
                 target=Target.ours_at_most(128, "MiB"))
    assert not memory.ok
    assert memory.added == pytest.approx(90.0)


def test_only_selects_sections_and_refuses_unknown_ones(capsys):
    assert parse_args(["--only", "warm,memory"]).sections == ["warm", "memory"]
    assert parse_args([]).sections == ["cold_start", "warm", "memory"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])
    assert "unknown section" in capsys.readouterr().err
