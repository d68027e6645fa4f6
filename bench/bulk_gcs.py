"""Bulk GCS: soft-deleted objects under one prefix (1,000 by default), 20 ms added to every
request the GCS emulator answers, restored by

- our per-object path: a ``per_object`` job as a deployment runs it (``bench/hosts/bulk_job.py``:
  10 instances x 8 threads, one chunk per instance, ``RESTORE_GCS_RESTORE_RATE`` at its default
  500/s, so at most 465/s by the pacing rule);
- our bulkRestore path: a ``server_side`` job, one ``objects.bulkRestore`` polled every 20 ms
  until the operation is done. The emulator runs the operation at its first look (no
  ``bulk_restore_seconds``): this measures our side of the call, not Google's, whose
  operations take minutes;
- ``gcloud storage restore gs://BUCKET/PREFIX**`` (Google's CLI, its default parallelism),
  pointed at the emulator with ``CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE``, a fake access token
  file and a throwaway ``CLOUDSDK_CONFIG``; skipped with a note where gcloud is absent;
- a sequential SDK loop (``bench/baselines/gcs_restore_loop.py``).

Objects per second, every contender timed from spawn to exit; a fresh emulator for each run;
every object checked live on the emulator afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.bulk_common import (
    INSTANCES,
    LATENCY_MS,
    THREADS,
    Timed,
    child_env,
    chunk_size,
    deeper_backlog,
    run_our_job,
    throughput_row,
    timed,
)
from bench.core import BenchContext, Row, section
from bench.stack import GCS_BUCKET, PYTHON, ROOT
from emulators._http import FaultPlan, RunningEmulator, serve
from emulators.gcs import GcsEmulator

PREFIX = "bulk/"
REPORT_BUCKET = "bench-restore-reports"
LOOP = ROOT / "bench" / "baselines" / "gcs_restore_loop.py"


@contextmanager
def soft_deleted(count: int) -> Iterator[RunningEmulator]:
    """A fresh GCS emulator: ``count`` soft-deleted objects under PREFIX (one generation
    each), the report bucket, LATENCY_MS on every request."""
    emulator = GcsEmulator(bulk_restore_seconds=0.0)
    emulator.create_bucket(GCS_BUCKET)
    emulator.create_bucket(REPORT_BUCKET)
    for i in range(count):
        name = f"{PREFIX}obj-{i:06d}"
        emulator.put_object(GCS_BUCKET, name, b"x")
        emulator.delete_object(GCS_BUCKET, name)
    with serve(emulator) as running:
        running.faults.set(FaultPlan(latency_ms=LATENCY_MS))
        deeper_backlog(running)
        yield running


def check_live(running: RunningEmulator, count: int, who: str) -> None:
    emulator: GcsEmulator = running.emulator  # type: ignore[assignment]
    live = {g["name"] for g in emulator.generations(GCS_BUCKET) if g["state"] == "live"}
    missing = [n for i in range(count) if (n := f"{PREFIX}obj-{i:06d}") not in live]
    if missing:
        raise RuntimeError(f"{who}: {len(missing)} objects not restored, e.g. {missing[:3]}")


def ours(running: RunningEmulator, count: int, mode: str) -> Timed:
    env = {"GCS_ENDPOINT": running.url, "GOOGLE_CLOUD_PROJECT": "bench",
           "RESTORE_GCS_ALLOWED_BUCKETS": "bench-*",
           "RESTORE_BULK_MAX_INSTANCES": str(INSTANCES),
           "RESTORE_BULK_WORKER_THREADS": str(THREADS)}
    job = {"kind": "restorefn.bulk.v1", "job_id": f"bench-bulk-gcs-{mode}", "provider": "gcs",
           "bucket": GCS_BUCKET, "mode": mode, "selection": {"prefix": PREFIX},
           "report": {"bucket": REPORT_BUCKET, "prefix": "reports"},
           "limits": {"chunk_size": chunk_size(count)}}
    run, result = run_our_job(env, job)
    if result["progress"]["state"] != "completed":
        raise RuntimeError(f"our {mode} job did not complete: {result['progress']}")
    if result["events"] != ["restorefn.bulk.job.v1.completed"]:
        raise RuntimeError(f"our {mode} job published {result['events']}")
    check_live(running, count, f"ours ({mode})")
    return run


def gcloud(running: RunningEmulator, count: int, executable: str) -> Timed:
    with tempfile.TemporaryDirectory(prefix="bench-gcloud-") as tmp:
        token = Path(tmp) / "token"
        token.write_text("bench-fake-token\n")
        env = child_env({
            "CLOUDSDK_CONFIG": str(Path(tmp) / "config"),
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"{running.url}/",
            "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token),
            "CLOUDSDK_CORE_PROJECT": "bench",
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        })
        env.pop("PYTHONPATH", None)  # gcloud runs its own bundled Python
        run = timed([executable, "storage", "restore", f"gs://{GCS_BUCKET}/{PREFIX}**"], env)
    if run.returncode != 0:
        raise RuntimeError(f"gcloud storage restore exited {run.returncode}: "
                           f"{run.stderr[-800:]}")
    check_live(running, count, "gcloud")
    return run


def sdk_loop(running: RunningEmulator, count: int) -> Timed:
    run = timed([PYTHON, str(LOOP), GCS_BUCKET, PREFIX],
                child_env({"GCS_ENDPOINT": running.url, "GOOGLE_CLOUD_PROJECT": "bench"}))
    result: dict[str, Any] = run.marker()
    if result["restored"] != count:
        raise RuntimeError(f"GCS SDK loop: {result}")
    check_live(running, count, "SDK loop")
    return run


@section("bulk_gcs", order=60,
         help="GCS bulk restore, 20 ms latency: per-object and bulkRestore vs gcloud, SDK loop")
def bulk_gcs(ctx: BenchContext) -> list[Row]:
    count = ctx.gcs_bulk_objects
    ctx.log(f"{count:,} soft-deleted objects a run, {LATENCY_MS:g} ms added per request")
    seconds: dict[str, float] = {}
    for mode in ("per_object", "server_side"):
        with soft_deleted(count) as running:
            seconds[mode] = ours(running, count, mode).seconds
        ctx.log(f"ours, {mode}: {count / seconds[mode]:.0f} obj/s ({seconds[mode]:.1f} s)")
    with soft_deleted(count) as running:
        seconds["loop"] = sdk_loop(running, count).seconds
    ctx.log(f"sequential SDK loop: {count / seconds['loop']:.0f} obj/s ({seconds['loop']:.1f} s)")
    executable = shutil.which("gcloud")
    if executable is not None:
        with soft_deleted(count) as running:
            seconds["gcloud"] = gcloud(running, count, executable).seconds
        ctx.log(f"gcloud storage restore: {count / seconds['gcloud']:.0f} obj/s "
                f"({seconds['gcloud']:.1f} s)")
    else:
        ctx.notes.append("bulk_gcs: gcloud is not installed here; the rows against "
                         "`gcloud storage restore` were not measured")
    per_object = {"ours": f"per_object job, {INSTANCES} instances x {THREADS} threads, "
                          f"chunks of {chunk_size(count)}, RESTORE_GCS_RESTORE_RATE=500"}
    server_side = {"ours": "server_side job: one objects.bulkRestore, polled every 20 ms; the "
                           "emulator runs the operation at once"}
    gcloud_text = {"baseline": "gcloud storage restore gs://BUCKET/PREFIX** (defaults)"}
    loop_text = {"baseline": "list soft-deleted, then restore_blob per object "
                             "(bench/baselines/gcs_restore_loop.py)"}
    rows = []
    if "gcloud" in seconds:
        rows.append(throughput_row(
            "bulk_gcs", f"bulk GCS, {count:,} objects: our per-object job vs gcloud storage "
            "restore", count, seconds["per_object"], seconds["gcloud"],
            {**per_object, **gcloud_text}))
    rows.append(throughput_row(
        "bulk_gcs", f"bulk GCS, {count:,} objects: our per-object job vs a sequential SDK loop",
        count, seconds["per_object"], seconds["loop"], {**per_object, **loop_text}))
    if "gcloud" in seconds:
        rows.append(throughput_row(
            "bulk_gcs", f"bulk GCS, {count:,} objects: our bulkRestore job vs gcloud storage "
            "restore", count, seconds["server_side"], seconds["gcloud"],
            {**server_side, **gcloud_text}))
    else:
        rows.append(throughput_row(
            "bulk_gcs", f"bulk GCS, {count:,} objects: our bulkRestore job vs a sequential "
            "SDK loop", count, seconds["server_side"], seconds["loop"],
            {**server_side, **loop_text}))
    return rows
