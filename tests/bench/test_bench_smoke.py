"""``make bench`` in a tiny mode: every section runs end to end against the emulators, and the
JSON carries every expected figure with a positive baseline and a ratio computed from the two
figures measured in that run (nothing here knows what the figures should be)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core import ROW_KEYS, Row, Target
from bench.run import parse_args

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = ("gcp_webhook", "gcp_queue", "scf_apigw")
BULK_SECTIONS = ("bulk_cos", "bulk_gcs")


@pytest.mark.slow
def test_a_tiny_run_reports_every_figure_against_its_baseline(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--runs", "1", "--iterations", "5",
         "--requests", "100", "--cos-objects", "200", "--gcs-objects", "40", "--out", str(out),
         "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(out.read_text())

    seen = {(row["section"], row["detail"].get("entry") or row["detail"].get("workload"))
            for row in doc["rows"] if row["section"] not in BULK_SECTIONS}
    assert seen == {
        *(("cold_start", entry) for entry in ENTRIES),
        *(("warm", entry) for entry in ENTRIES),
        ("memory", "gcp_queue_batch"), ("memory", "scf_queue_batch"), ("memory", "bulk_chunk"),
    }
    for row in doc["rows"]:
        assert set(ROW_KEYS) <= set(row)
        assert isinstance(row["ok"], bool)
        assert row["target"]
        assert row["name"] in done.stdout  # the printed table carries the same rows
        if row["unit"] == "503s":  # a count: either side may have none
            assert row["ours"] >= 0 and row["baseline"] >= 0
            if row["baseline"] > 0:
                assert row["ratio"] == pytest.approx(row["ours"] / row["baseline"], rel=1e-3)
            continue
        assert row["ours"] > 0
        assert row["baseline"] > 0
        assert math.isfinite(row["ratio"])
        assert row["ratio"] == pytest.approx(row["ours"] / row["baseline"], rel=1e-3)
    units = {(row["section"], row["unit"]) for row in doc["rows"]}
    assert units == {("cold_start", "ms"), ("warm", "ms"), ("memory", "MiB"),
                     ("bulk_cos", "obj/s"), ("bulk_cos", "%"), ("bulk_cos", "503s"),
                     ("bulk_gcs", "obj/s")}
    assert doc["options"]["warm_iterations"] == 5
    assert doc["machine"]["cpus"] >= 1
    assert doc["all_ok"] == all(row["ok"] for row in doc["rows"])
    _check_bulk_rows(doc["rows"], cos_objects=200, gcs_objects=40)


def _check_bulk_rows(rows, *, cos_objects, gcs_objects):
    """The bulk figures: each throughput is the run's object count over the seconds it took
    (both recorded beside it), the limit rows carry what the emulator counted."""
    bulk = [row for row in rows if row["section"] in BULK_SECTIONS]
    throughput = [row for row in bulk if row["unit"] == "obj/s"]
    baselines = {row["detail"]["baseline"].split(",")[0] for row in throughput}
    assert any(b.startswith("coscmd restore -r") for b in baselines)
    cos_rows = [row for row in throughput if row["section"] == "bulk_cos"]
    gcs_rows = [row for row in throughput if row["section"] == "bulk_gcs"]
    assert len(cos_rows) == 3  # coscmd 5 and 20 threads, the SDK loop
    assert len(gcs_rows) >= 2  # the SDK loop, plus gcloud where installed
    for row, count in [(r, cos_objects) for r in cos_rows] + [(r, gcs_objects) for r in gcs_rows]:
        detail = row["detail"]
        assert detail["objects"] == count
        assert row["ours"] == pytest.approx(count / detail["ours_seconds"], rel=1e-2)
        assert row["baseline"] == pytest.approx(count / detail["baseline_seconds"], rel=1e-2)
    [share] = [row for row in bulk if row["unit"] == "%"]
    [refused] = [row for row in bulk if row["unit"] == "503s"]
    assert share["detail"]["ours_admitted"] == cos_objects  # every object, each once
    limit = share["detail"]["limit_per_second"]
    assert share["ours"] == pytest.approx(100 * share["detail"]["ours_rate"] / limit, rel=1e-2)
    assert refused["target"] and share["target"]


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
    # Throughput: higher is better, so the bound is from below.
    faster = Row("s", "t", ours=300.0, baseline=200.0, unit="obj/s",
                 target=Target.ratio_at_least(1.0))
    slower = Row("s", "t", ours=150.0, baseline=200.0, unit="obj/s",
                 target=Target.ratio_at_least(1.0))
    assert faster.ok and not slower.ok
    share = Row("s", "p", ours=94.9, baseline=99.0, unit="%", target=Target.ours_at_least(95, "%"))
    assert not share.ok
    assert Row("s", "p", ours=95.0, baseline=99.0, unit="%",
               target=Target.ours_at_least(95, "%")).ok


def test_only_selects_sections_and_refuses_unknown_ones(capsys):
    assert parse_args(["--only", "warm,memory"]).sections == ["warm", "memory"]
    assert parse_args([]).sections == ["cold_start", "warm", "memory", "bulk_cos", "bulk_gcs"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])
    assert "unknown section" in capsys.readouterr().err
