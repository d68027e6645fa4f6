"""restorefn bulk against the emulators: dry run, a whole job, progress, the summary, resuming
an interrupted job without restoring anything twice, exit codes, the console script."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from emulators._http import FaultPlan, RunningEmulator
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from shared.bulk.pacing import worker_rate
from shared.cli import (
    EXIT_BAD_INPUT,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RETRYABLE,
)
from shared.cli_bulk import BulkProgress, Tally, derived_job_id
from tests.cli.test_local_and_script import SCRIPT, write_urls
from tests.conftest import COS_BUCKET, COS_REGION, GCS_BUCKET

REPORT_BUCKET = "archive-reports-1250000000"


@pytest.fixture
def cos(cos_emulator: RunningEmulator, cos_credentials: None) -> RunningEmulator:
    cos_emulator.emulator.create_bucket(REPORT_BUCKET)
    return cos_emulator


def job_file(tmp_path: Path, **overrides: Any) -> str:
    job: dict[str, Any] = {
        "kind": "restorefn.bulk.v1", "provider": "cos", "bucket": COS_BUCKET,
        "region": COS_REGION, "days": 1, "tier": "Standard",
        "selection": {"prefix": "logs/"}, "limits": {"chunk_size": 4},
        "report": {"bucket": REPORT_BUCKET, "prefix": "reports"},
    }
    job.update(overrides)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return str(path)


def archive(cos: RunningEmulator, names: list[str]) -> list[str]:
    keys = [f"logs/{name}" for name in names]
    for key in keys:
        cos.emulator.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
    return keys


def posts(cos: RunningEmulator) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in cos.emulator.restore_requests()}


def report_rows(cos: RunningEmulator, job_id: str) -> list[dict[str, Any]]:
    body = cos.emulator.object_body(REPORT_BUCKET, f"reports/{job_id}/report.jsonl")
    return [json.loads(line) for line in body.splitlines()]


def test_dry_run_counts_and_restores_nothing(cli, cos, tmp_path) -> None:
    archive(cos, [f"a-{i}" for i in range(10)])
    cos.emulator.put_object(COS_BUCKET, "logs/live.txt", b"x", "STANDARD")
    run = cli("--cos-endpoint", cos.url, "bulk", job_file(tmp_path), "--dry-run")
    assert run.code == EXIT_OK, run.err
    assert "10 objects in 3 chunks would be restored" in run.out
    assert "ARCHIVE" in run.out and "skipped: not_archived" in run.out
    assert "expected completion: between" in run.out

    as_json = cli("--json", "--cos-endpoint", cos.url, "bulk", job_file(tmp_path), "--dry-run")
    doc = as_json.doc()
    assert (doc["dry_run"], doc["objects"], doc["chunks"]) == (True, 10, 3)
    assert doc["skipped"] == {"not_archived": 1}
    assert posts(cos) == {}


def test_a_whole_job_with_progress_lines_and_a_json_summary(cli, cos, tmp_path) -> None:
    keys = archive(cos, [f"d-{i:02d}" for i in range(11)])
    cos.emulator.put_object(COS_BUCKET, "logs/live.txt", b"x", "STANDARD")
    run = cli("--json", "--cos-endpoint", cos.url, "bulk", job_file(tmp_path),
              "--instances", "3", "--rate", "80", "--progress-interval", "0.05")
    assert run.code == EXIT_OK, run.err
    doc = run.doc()
    assert doc["job_id"].startswith("job-")
    assert doc["state"] == "completed"
    assert (doc["planned_objects"], doc["planned_chunks"], doc["chunks_done"]) == (11, 3, 3)
    assert doc["counts"] == {"initiated": 11}
    assert doc["skipped"] == {"not_archived": 1}
    assert (doc["done_this_run"], doc["done_before"], doc["unfinished_chunks"]) == (11, 0, 0)
    root = f"cos://{REPORT_BUCKET}/reports/{doc['job_id']}"
    assert doc["report"]["csv"] == f"{root}/report.csv"
    assert doc["plan"]["rate_per_worker"] == pytest.approx(worker_rate(80, 3), abs=0.01)
    assert sorted(r["key"] for r in report_rows(cos, doc["job_id"])) == keys
    assert {k: p["received"] for k, p in posts(cos).items()} == dict.fromkeys(keys, 1)
    # Progress on stderr (not a terminal): plain lines, the last one complete.
    lines = [line for line in run.err.splitlines() if "objects" in line and "[" in line]
    assert lines, run.err
    assert "[########################] 11/11 objects (100%)" in lines[-1]
    assert "\r" not in run.err
    # The job-completed event of the log sink also went to stderr, never stdout.
    assert "restorefn.bulk.job.v1.completed" in run.err


def test_human_summary_table(cli, cos, tmp_path) -> None:
    archive(cos, ["one", "two", "three"])
    cos.emulator.put_object(COS_BUCKET, "logs/plain.txt", b"x", "STANDARD")
    run = cli("--cos-endpoint", cos.url, "bulk", job_file(tmp_path))
    assert run.code == EXIT_OK, run.err
    out = run.out.splitlines()
    assert out[0].startswith("job job-") and "completed" in out[0]
    assert "3 of 3 objects done (3 this run, 0 before), 1 of 1 chunks" in out[0]
    table = {line.rsplit(None, 1)[0].strip(): line.split()[-1]
             for line in out[1:] if line.startswith("  ") and not line.startswith("     ")}
    assert table["status"] == "objects"
    assert table["initiated"] == "3"
    assert table["skipped: not_archived"] == "1"
    assert table["total"] == "3"
    assert any(line.startswith(f"report: cos://{REPORT_BUCKET}/reports/job-") for line in out)


def test_an_interrupted_job_resumes_without_restoring_anything_twice(cli, cos,
                                                                     tmp_path) -> None:
    good = archive(cos, [f"ok-{i:02d}" for i in range(9)])
    bad = archive(cos, ["bad-1", "bad-2"])
    job = job_file(tmp_path)
    # COS keeps answering 503 for the bad keys: the first run cannot finish them.
    cos.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_method="POST",
                             match_path="/logs/bad-"))
    first = cli("--json", "--cos-endpoint", cos.url, "bulk", job, "--rate", "400")
    assert first.code == EXIT_RETRYABLE, first.err
    partial = first.doc()
    assert partial["state"] == "incomplete"
    assert partial["unfinished_chunks"] >= 1
    assert partial["counts"] == {"initiated": 9}
    assert "rerun the same command to resume" in first.err
    assert all(posts(cos)[k]["accepted"] == 0 for k in bad)

    cos.faults.clear()
    second = cli("--json", "--cos-endpoint", cos.url, "bulk", job, "--rate", "400")
    assert second.code == EXIT_OK, second.err
    done = second.doc()
    assert done["job_id"] == partial["job_id"]  # the same command names the same job
    assert done["state"] == "completed"
    assert (done["done_before"], done["done_this_run"]) == (9, 2)
    assert done["counts"] == {"initiated": 11}
    assert "resuming job" in second.err
    log = posts(cos)
    assert {k: log[k]["received"] for k in good} == dict.fromkeys(good, 1)  # never again
    assert {k: log[k]["accepted"] for k in bad} == dict.fromkeys(bad, 1)
    rows = report_rows(cos, done["job_id"])
    assert sorted(r["key"] for r in rows) == sorted(good + bad)  # each object once

    third = cli("--json", "--cos-endpoint", cos.url, "bulk", job)
    assert third.code == EXIT_OK
    assert "already completed" in third.err
    assert third.doc()["counts"] == {"initiated": 11}
    assert posts(cos) == log


def test_a_resumed_job_skips_objects_its_leftover_chunks_finished(cli, cos, tmp_path) -> None:
    archive(cos, ["ok-1"])
    late, never = archive(cos, ["bad-1", "bad-2"])
    job = job_file(tmp_path, limits={"chunk_size": 10})
    # bad-1 fails the chunk's three passes, then succeeds in its leftover chunk (c000001.r2);
    # bad-2 never succeeds in the first run.
    cos.faults.set(FaultPlan(match_method="POST", match_path="/logs/bad-",
                             script=[503] * 6 + [200], error_rate=1.0, error_status=503))
    first = cli("--json", "--cos-endpoint", cos.url, "bulk", job, "--instances", "1",
                "--rate", "400")
    assert first.code == EXIT_RETRYABLE, first.err
    assert posts(cos)[late]["accepted"] == 1 and posts(cos)[never]["accepted"] == 0
    cos.faults.clear()
    second = cli("--json", "--cos-endpoint", cos.url, "bulk", job, "--rate", "400")
    assert second.code == EXIT_OK, second.err
    assert posts(cos)[late]["received"] == 4  # 3 refused, 1 accepted: never sent again
    keys = [r["key"] for r in report_rows(cos, second.doc()["job_id"])]
    assert sorted(keys) == sorted(set(keys))


def test_ctrl_c_then_the_same_command_resumes(cos, tmp_path) -> None:
    """The console script interrupted (SIGINT) after its first chunks: exit 130; run again, it
    restores only what no finished chunk holds."""
    keys = archive(cos, [f"c-{i:02d}" for i in range(45)])
    cos.faults.set(FaultPlan(latency_ms=40, match_method="POST"))
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("RESTORE_", "COS_", "TENCENTCLOUD_"))}
    env.update(COS_SECRET_ID=DEFAULT_SECRET_ID, COS_SECRET_KEY=DEFAULT_SECRET_KEY)
    command = [str(SCRIPT), "--json", "--cos-endpoint", cos.url, "bulk", job_file(tmp_path),
               "--chunk-size", "3", "--instances", "1", "--rate", "15"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(parts_written(cos)) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "rerun the same command to resume" in err
    kept = {row["key"] for rows in parts_written(cos).values() for row in rows}
    assert 6 <= len(kept) < len(keys)

    cos.faults.clear()
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120,
                           check=False)
    assert rerun.returncode == EXIT_OK, rerun.stderr
    doc = json.loads(rerun.stdout)
    assert doc["state"] == "completed" and doc["objects_done"] == len(keys)
    assert doc["done_before"] >= len(kept)
    log = posts(cos)
    assert {k: log[k]["received"] for k in kept} == dict.fromkeys(kept, 1)
    assert all(log[k]["accepted"] == 1 for k in keys)


def parts_written(cos: RunningEmulator) -> dict[str, list[dict[str, Any]]]:
    """The report parts in the report bucket: chunk part key -> rows."""
    found = {}
    for entry in cos.emulator.objects(REPORT_BUCKET, "reports/"):
        if "/parts/" in entry["key"]:
            body = cos.emulator.object_body(REPORT_BUCKET, entry["key"])
            found[entry["key"]] = [json.loads(line) for line in body.splitlines()]
    return found


def test_objects_that_fail_make_exit_1_and_are_in_the_report(cli, cos, tmp_path) -> None:
    archive(cos, ["here"])
    job = job_file(tmp_path, selection={"objects": [{"key": "logs/here"},
                                                    {"key": "logs/missing"}]})
    run = cli("--json", "--cos-endpoint", cos.url, "bulk", job)
    assert run.code == EXIT_FAILED, run.err
    doc = run.doc()
    assert doc["counts"] == {"initiated": 1, "failed": 1}
    [failed] = [r for r in report_rows(cos, doc["job_id"]) if r["status"] == "failed"]
    assert (failed["key"], failed["error_code"]) == ("logs/missing", "not_found")


def test_flags_make_a_job_without_a_file(cli, cos) -> None:
    archive(cos, ["f-1", "f-2"])
    args = ["--cos-endpoint", cos.url, "bulk", "--provider", "cos", "--bucket", COS_BUCKET,
            "--region", COS_REGION, "--days", "1", "--prefix", "logs/f-",
            "--report", f"{REPORT_BUCKET}/flags"]
    dry = cli("--json", *args, "--dry-run")
    assert (dry.code, dry.doc()["objects"]) == (EXIT_OK, 2)
    run = cli("--json", *args, "--job-id", "job-flags")
    assert run.code == EXIT_OK, run.err
    assert run.doc()["report"]["csv"] == f"cos://{REPORT_BUCKET}/flags/job-flags/report.csv"


def test_invalid_job_is_bad_input_with_the_field_list(cli, cos, tmp_path) -> None:
    run = cli("--json", "--cos-endpoint", cos.url, "bulk",
              job_file(tmp_path, days=0, tier="Fast"))
    assert run.code == EXIT_BAD_INPUT
    assert "days" in run.err and "tier" in run.err
    fields = {f["field"] for f in run.doc()["error"]["fields"]}
    assert fields == {"days", "tier"}

    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    assert cli("bulk", str(not_json)).code == EXIT_BAD_INPUT
    assert cli("bulk").code == EXIT_BAD_INPUT


def test_a_bucket_outside_a_configured_allowlist_is_a_configuration_error(
        cli, cos, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RESTORE_COS_ALLOWED_BUCKETS", "archive-1250000000")  # not the report's
    run = cli("--cos-endpoint", cos.url, "bulk", job_file(tmp_path))
    assert run.code == EXIT_CONFIG
    assert REPORT_BUCKET in run.err
    assert posts(cos) == {}


def test_listing_failures_exit_with_their_code(cli, cos, tmp_path) -> None:
    missing = cli("--cos-endpoint", cos.url, "bulk", "--dry-run",
                  job_file(tmp_path, bucket="archive-gone-1250000000"))
    assert missing.code == EXIT_FAILED
    assert "not_found" in missing.err
    cos.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_method="GET",
                             match_path="prefix="))
    throttled = cli("--cos-endpoint", cos.url, "bulk", "--dry-run", job_file(tmp_path))
    assert throttled.code == EXIT_RETRYABLE


def test_local_uses_the_emulators(cli, cos_emulator, gcs_emulator, tmp_path) -> None:
    # No credentials in the environment: --local supplies the emulators' own.
    cos_emulator.emulator.create_bucket(REPORT_BUCKET)
    archive(cos_emulator, ["l-1", "l-2", "l-3"])
    write_urls(tmp_path, cos_emulator.url, gcs_emulator.url)
    run = cli("--json", "--local-state", str(tmp_path), "bulk", job_file(tmp_path))
    assert run.code == EXIT_OK, run.err
    assert run.doc()["counts"] == {"initiated": 3}


def test_job_ids_are_derived_from_what_selects_and_chunks() -> None:
    job = {"provider": "cos", "bucket": COS_BUCKET, "selection": {"prefix": "a/"},
           "limits": {"chunk_size": 5}}
    same = derived_job_id({**job, "dry_run": True,
                           "limits": {"chunk_size": 5, "requests_per_second": 9}})
    assert derived_job_id(job) == same
    assert derived_job_id({**job, "selection": {"prefix": "b/"}}) != same
    assert derived_job_id({**job, "limits": {"chunk_size": 6}}) != same


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_in_place_on_a_terminal() -> None:
    tally = Tally()
    stream = FakeTerminal()
    progress = BulkProgress(stream, tally, interval=60)
    tally.planned_chunk(10)
    progress.draw()
    assert stream.getvalue().startswith("\r\x1b[K[????????????????????????] 0/10+ objects")
    assert "planning" in stream.getvalue()
    tally.planning = False
    tally.done = 4
    progress.draw()
    last = stream.getvalue().rsplit("\r\x1b[K", 1)[-1]
    assert last.startswith("[##########--------------] 4/10 objects (40%)")
    assert "ETA" in last and "\n" not in stream.getvalue()


def test_console_script_runs_a_job(cos, tmp_path) -> None:
    assert SCRIPT.is_file(), "run .venv/bin/pip install -e '.[dev]' to install the script"
    archive(cos, ["s-1", "s-2"])
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("RESTORE_", "COS_", "TENCENTCLOUD_"))}
    env.update(COS_SECRET_ID=DEFAULT_SECRET_ID, COS_SECRET_KEY=DEFAULT_SECRET_KEY)
    done = subprocess.run(
        [str(SCRIPT), "--json", "--cos-endpoint", cos.url, "bulk", "-"],
        input=Path(job_file(tmp_path)).read_text(), capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["state"], doc["counts"]) == ("completed", {"initiated": 2})
    assert sys.executable  # the script is the venv's, next to this interpreter


# -- GCS: per object, and server-side (objects.bulkRestore) -------------------------------------
GCS_REPORTS = "restore-reports"


def gcs_job(tmp_path: Path, **overrides: Any) -> str:
    job: dict[str, Any] = {"kind": "restorefn.bulk.v1", "provider": "gcs",
                           "bucket": GCS_BUCKET, "selection": {"prefix": "old/"},
                           "report": {"bucket": GCS_REPORTS}}
    job.update(overrides)
    path = tmp_path / "gcs-job.json"
    path.write_text(json.dumps(job))
    return str(path)


def soft_deleted(gcs: RunningEmulator, names: list[str]) -> None:
    for name in names:
        gcs.emulator.put_object(GCS_BUCKET, name, b"bytes")
        gcs.emulator.delete_object(GCS_BUCKET, name)


def test_gcs_job_per_object(cli, gcs_emulator, tmp_path) -> None:
    gcs_emulator.emulator.create_bucket(GCS_REPORTS)
    soft_deleted(gcs_emulator, ["old/a", "old/b", "old/c"])
    run = cli("--json", "--gcs-endpoint", gcs_emulator.url, "bulk",
              gcs_job(tmp_path, mode="per_object"))
    assert run.code == EXIT_OK, run.err
    doc = run.doc()
    assert (doc["state"], doc["counts"]) == ("completed", {"completed": 3})
    assert doc["report"]["csv"].startswith(f"gs://{GCS_REPORTS}/restorefn-reports/job-")


def test_gcs_job_server_side_is_polled_to_its_end(cli, gcs_emulator, tmp_path) -> None:
    gcs_emulator.emulator.create_bucket(GCS_REPORTS)
    soft_deleted(gcs_emulator, ["old/a", "old/b"])
    dry = cli("--gcs-endpoint", gcs_emulator.url, "bulk", gcs_job(tmp_path), "--dry-run")
    assert dry.code == EXIT_OK, dry.err
    assert "mode: server_side" in dry.out
    run = cli("--json", "--gcs-endpoint", gcs_emulator.url, "bulk", gcs_job(tmp_path))
    assert run.code == EXIT_OK, run.err
    doc = run.doc()
    assert (doc["state"], doc["mode"], doc["counts"]) == ("completed", "server_side",
                                                          {"completed": 2})
    assert doc["report"]["summary"].endswith("/summary.json")
