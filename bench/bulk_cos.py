"""Bulk COS: archived objects under one prefix, 20 ms added to every request the emulator
answers, restored by our fan-out and by the alternatives a user has.

- (a) No restore limit: objects per second, spawn to exit, of our job against ``coscmd restore
  -r`` with 5 and with 20 threads and against a sequential SDK loop
  (``bench/baselines/cos_restore_loop.py``; its rate measured on 1,000 objects, see
  LOOP_OBJECTS).
- (b) The emulator refuses restores beyond 100 in any one-second window with 503 SlowDown, as
  COS does: the sustained rate the emulator admitted (first to last admitted restore) as a
  fraction of the limit, and the 503s it answered, ours against ``coscmd`` with 5 threads.

Ours is a job as a deployment runs it (``bench/hosts/bulk_job.py``): the planner lists the
prefix and fans chunks out to ``RESTORE_BULK_MAX_INSTANCES`` = 10 workers (an in-process queue
standing in for Pub/Sub and ten function instances), each with ``RESTORE_BULK_WORKER_THREADS``
= 8 requests in flight and a connection pool of its own size (``COS_POOL_SIZE`` = 80 in the one
process); one chunk per worker (500 objects for 5,000: the default chunk size);
``RESTORE_COS_RESTORE_RATE`` = 100 (the default) in (b), 10,000 in (a), where the emulator
enforces none. Every run starts from a fresh emulator holding only freshly archived objects,
and each run's restores are checked on the emulator afterwards.
"""

from __future__ import annotations

import re
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
from bench.core import BenchContext, Row, Target, section
from bench.stack import COS_BUCKET, COS_REGION, PYTHON, ROOT
from emulators._http import FaultPlan, RunningEmulator, serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, CosEmulator

LIMIT = 100.0  # COS's restore rate limit the emulator enforces in (b)
UNLIMITED_SETTING = 10_000.0  # RESTORE_COS_RESTORE_RATE for (a): the most a chunk may take
TARGET_SHARE = 95.0  # % of the limit (b) must sustain
PREFIX = "bulk/"
DAYS, TIER = 1, "Standard"
REPORT_BUCKET = "bench-reports-1250000000"
LOOP = ROOT / "bench" / "baselines" / "cos_restore_loop.py"
# The sequential loop sends one request at a time, so its rate does not depend on how many
# objects it works through; measuring it on 5,000 would add 90 s to every run for nothing.
LOOP_OBJECTS = 1000
COSCMD = Path(PYTHON).with_name("coscmd")
# coscmd's connections through the proxy get TCP_NODELAY, as its direct ones to COS have
# (see the sitecustomize there: ~40 ms a request otherwise, an artefact of the harness).
NODELAY = ROOT / "bench" / "hosts" / "proxied_nodelay"
SUMMARY = re.compile(r"(\d+) files successful, (\d+) files have in progress, (\d+) files failed")


@contextmanager
def archived(count: int, limit: float) -> Iterator[RunningEmulator]:
    """A fresh COS emulator: ``count`` ARCHIVE objects under PREFIX, the report bucket, the
    restore limit (0: none) and LATENCY_MS on every request."""
    emulator = CosEmulator(restore_rate_limit=limit)
    emulator.create_bucket(REPORT_BUCKET)
    for i in range(count):
        emulator.put_object(COS_BUCKET, f"{PREFIX}obj-{i:06d}", b"x", "ARCHIVE")
    with serve(emulator) as running:
        running.faults.set(FaultPlan(latency_ms=LATENCY_MS))
        deeper_backlog(running)
        yield running


def accepted(running: RunningEmulator) -> dict[str, int]:
    emulator: CosEmulator = running.emulator  # type: ignore[assignment]
    return {e["key"]: e["accepted"] for e in emulator.restore_requests()
            if e["bucket"] == COS_BUCKET}


def check_each_once(running: RunningEmulator, count: int, who: str) -> None:
    """Every seeded object restored exactly once (answered 202 once)."""
    seen = accepted(running)
    wrong = [k for i in range(count) if seen.get(k := f"{PREFIX}obj-{i:06d}") != 1]
    if wrong:
        raise RuntimeError(f"{who}: {len(wrong)} objects not restored exactly once, "
                           f"e.g. {wrong[:3]}")


def rate_stats(running: RunningEmulator) -> dict[str, float]:
    emulator: CosEmulator = running.emulator  # type: ignore[assignment]
    return emulator.restore_rate_stats()


# -- contenders ----------------------------------------------------------------------------------
def ours(running: RunningEmulator, count: int, rate_setting: float) -> tuple[Timed, dict[str, Any]]:
    env = {
        "COS_ENDPOINT": running.url, "COS_SCHEME": "http", "COS_SECRET_ID": DEFAULT_SECRET_ID,
        "COS_SECRET_KEY": DEFAULT_SECRET_KEY, "COS_POOL_SIZE": str(INSTANCES * THREADS),
        "RESTORE_COS_ALLOWED_BUCKETS": "bench-*",
        "RESTORE_COS_RESTORE_RATE": f"{rate_setting:g}",
        "RESTORE_BULK_MAX_INSTANCES": str(INSTANCES),
        "RESTORE_BULK_WORKER_THREADS": str(THREADS),
    }
    job = {"kind": "restorefn.bulk.v1", "job_id": "bench-bulk-cos", "provider": "cos",
           "bucket": COS_BUCKET, "region": COS_REGION, "days": DAYS, "tier": TIER,
           "selection": {"prefix": PREFIX},
           "report": {"bucket": REPORT_BUCKET, "prefix": "reports"},
           "limits": {"chunk_size": chunk_size(count)}}
    run, result = run_our_job(env, job)
    progress = result["progress"]
    if progress["state"] != "completed" or progress["counts"] != {"initiated": count}:
        raise RuntimeError(f"our job did not initiate every restore: {progress}")
    if result["events"] != ["restorefn.bulk.job.v1.completed"]:
        raise RuntimeError(f"our job published {result['events']}")
    check_each_once(running, count, "ours")
    return run, result


def coscmd(running: RunningEmulator, threads: int) -> tuple[Timed, dict[str, int]]:
    """``coscmd restore -r`` configured by ``coscmd config`` (its defaults, ``-m threads``),
    reaching the emulator as its HTTP proxy (the only way it reaches a local server), with
    TCP_NODELAY as on a direct connection (``NODELAY``)."""
    with tempfile.TemporaryDirectory(prefix="bench-coscmd-") as tmp:
        conf, log = str(Path(tmp) / "cos.conf"), str(Path(tmp) / "cos.log")
        env = child_env({"http_proxy": f"http://127.0.0.1:{running.port}",
                         "PYTHONPATH": str(NODELAY)})
        configured = timed([str(COSCMD), "-c", conf, "-l", log, "config", "-a",
                            DEFAULT_SECRET_ID, "-s", DEFAULT_SECRET_KEY, "-b", COS_BUCKET,
                            "-r", COS_REGION, "--do-not-use-ssl", "-m", str(threads)], env)
        if configured.returncode != 0:
            raise RuntimeError(f"coscmd config failed: {configured.stderr[-500:]}")
        run = timed([str(COSCMD), "-c", conf, "-l", log, "restore", "-r", PREFIX,
                     "-d", str(DAYS), "-t", TIER], env)
    match = SUMMARY.search(run.stdout + run.stderr)
    if match is None:
        raise RuntimeError(f"coscmd printed no summary (exit {run.returncode}): "
                           f"{(run.stdout + run.stderr)[-800:]}")
    succeeded, in_progress, failed = (int(g) for g in match.groups())
    return run, {"successful": succeeded, "in_progress": in_progress, "failed": failed,
                 "exit": run.returncode}


def sdk_loop(running: RunningEmulator) -> tuple[Timed, dict[str, Any]]:
    env = child_env({"COS_ENDPOINT": running.url, "COS_SECRET_ID": DEFAULT_SECRET_ID,
                     "COS_SECRET_KEY": DEFAULT_SECRET_KEY})
    run = timed([PYTHON, str(LOOP), COS_BUCKET, COS_REGION, PREFIX, str(DAYS), TIER], env)
    return run, run.marker()


# -- the two parts -------------------------------------------------------------------------------
def no_limit(ctx: BenchContext, count: int) -> list[Row]:
    with archived(count, 0) as running:
        mine, result = ours(running, count, UNLIMITED_SETTING)
        ours_rate = rate_stats(running)
    ctx.log(f"ours: {count / mine.seconds:.0f} obj/s ({mine.seconds:.1f} s)")
    ours_detail = {"ours_peak_rss_mib": round(result["peak_rss_kib"] / 1024, 1),
                   "ours_emulator_rate": round(ours_rate["rate"], 1),
                   "ours_config": config_text(UNLIMITED_SETTING, count)}
    rows = []
    for threads in (5, 20):
        with archived(count, 0) as running:
            run, summary = coscmd(running, threads)
            if summary["successful"] != count:
                raise RuntimeError(f"coscmd ({threads} threads): {summary}")
            check_each_once(running, count, f"coscmd {threads} threads")
            base_rate = rate_stats(running)
        ctx.log(f"coscmd -r, {threads} threads: {count / run.seconds:.0f} obj/s "
                f"({run.seconds:.1f} s)")
        rows.append(throughput_row(
            "bulk_cos", f"bulk COS, {count:,} objects, no limit: ours vs coscmd -r, "
            f"{threads} threads", count, mine.seconds, run.seconds,
            {"baseline": f"coscmd restore -r, max_thread {threads}",
             "baseline_emulator_rate": round(base_rate["rate"], 1), **ours_detail}))
    looped = min(count, LOOP_OBJECTS)
    with archived(looped, 0) as running:
        run, counted = sdk_loop(running)
        if counted["restored"] != looped:
            raise RuntimeError(f"SDK loop: {counted}")
        check_each_once(running, looped, "SDK loop")
    ctx.log(f"sequential SDK loop: {looped / run.seconds:.0f} obj/s ({run.seconds:.1f} s for "
            f"{looped:,})")
    row = throughput_row(
        "bulk_cos", f"bulk COS, {count:,} objects, no limit: ours vs a sequential SDK loop "
        f"(its rate on {looped:,})", count, mine.seconds, run.seconds * count / looped,
        {"baseline": "list, then restore_object per key (bench/baselines/cos_restore_loop.py)",
         "baseline_objects": looped, "baseline_measured_seconds": round(run.seconds, 3),
         **ours_detail})
    return [*rows, row]


def at_limit(ctx: BenchContext, count: int) -> list[Row]:
    with archived(count, LIMIT) as running:
        mine, result = ours(running, count, LIMIT)
        ours_stats = rate_stats(running)
    with archived(count, LIMIT) as running:
        run, summary = coscmd(running, 5)
        base_stats = rate_stats(running)
        base_restored = sum(1 for n in accepted(running).values() if n >= 1)
    detail = {"limit_per_second": LIMIT, "objects": count, "ours_config": config_text(LIMIT, count),
              "ours_seconds": round(mine.seconds, 2), "ours_rate": round(ours_stats["rate"], 2),
              "ours_admitted": ours_stats["admitted"],
              "ours_rate_per_worker": result["summary"]["rate_per_worker"],
              "baseline": "coscmd restore -r, max_thread 5 (coscmd config's retry: 5)",
              "baseline_seconds": round(run.seconds, 2),
              "baseline_rate": round(base_stats["rate"], 2),
              "baseline_restored": base_restored, "baseline_summary": summary}
    ctx.log(f"ours: {ours_stats['rate']:.1f}/s, {ours_stats['refused']:.0f} x 503; "
            f"coscmd: {base_stats['rate']:.1f}/s, {base_stats['refused']:.0f} x 503, "
            f"{base_restored} of {count} restored")
    share = Row("bulk_cos", f"bulk COS, {count:,} objects at the {LIMIT:g}/s restore limit: "
                "sustained rate, % of the limit (ours vs coscmd -r, 5 threads)",
                100 * ours_stats["rate"] / LIMIT, 100 * base_stats["rate"] / LIMIT, "%",
                Target.ours_at_least(TARGET_SHARE, "%"), samples=1, detail=detail)
    refused = Row("bulk_cos", f"bulk COS, {count:,} objects at the {LIMIT:g}/s restore limit: "
                  "503 SlowDown answers (ours vs coscmd -r, 5 threads)",
                  ours_stats["refused"], base_stats["refused"], "503s",
                  Target.ours_at_most(0, "503s"), samples=1, detail=detail)
    return [share, refused]


def config_text(rate_setting: float, count: int) -> str:
    return (f"{INSTANCES} instances x {THREADS} threads, chunks of {chunk_size(count)}, "
            f"RESTORE_COS_RESTORE_RATE={rate_setting:g}")


@section("bulk_cos", order=50,
         help="COS bulk restore, 20 ms latency: ours vs coscmd and an SDK loop; at 100/s")
def bulk_cos(ctx: BenchContext) -> list[Row]:
    if shutil.which(str(COSCMD)) is None:
        raise RuntimeError(f"coscmd is not installed ({COSCMD}): pip install -e '.[dev]'")
    count = ctx.cos_bulk_objects
    ctx.log(f"{count:,} archived objects a run, {LATENCY_MS:g} ms added per request")
    return [*no_limit(ctx, count), *at_limit(ctx, count)]
