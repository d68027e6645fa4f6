"""GCS bulk jobs object by object (``mode: per_object``): listing, globs, time filters, the
newest soft-deleted generation, live objects, report and job-completed event.

Everything goes through the real google-cloud-storage client against the GCS emulator; time
moves with ``clock.advance`` only.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from emulators._http import FaultPlan, RunningEmulator
from emulators.gcs import GcsEmulator
from emulators.gcs.store import glob_to_regex
from shared.bulk.schemas import BulkJob
from shared.bulk.selection import gcs_listing, glob_regex, listing_prefix
from tests.bulk.conftest import GCS_REPORT_BUCKET, gcs_job
from tests.conftest import GCS_BUCKET, CollectingSink


def client_for(running: RunningEmulator) -> storage.Client:
    return storage.Client(project="p", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                          client_options={"api_endpoint": running.url})


def soft_deleted(emulator: GcsEmulator, name: str, data: bytes = b"x") -> int:
    """Upload then delete ``name``; the soft-deleted generation."""
    generation = emulator.put_object(GCS_BUCKET, name, data)
    emulator.delete_object(GCS_BUCKET, name)
    return generation


def live(emulator: GcsEmulator) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in emulator.generations(GCS_BUCKET) if g["state"] == "live"}


def report(running: RunningEmulator, job_id: str, name: str) -> bytes:
    blob = client_for(running).bucket(GCS_REPORT_BUCKET).blob(f"reports/{job_id}/{name}")
    data: bytes = blob.download_as_bytes()
    return data


def rows(running: RunningEmulator, job_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in report(running, job_id, "report.jsonl").splitlines()]


def completed_events(sink: CollectingSink) -> list[dict[str, Any]]:
    return [e.data.model_dump() for e in sink.events
            if e.type == "restorefn.bulk.job.v1.completed"]


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def listed(running: RunningEmulator, **job: Any) -> tuple[list[tuple[str, int]], Counter[str]]:
    """What the per-object listing selects for a job (names and generations), and its skips."""
    skips: Counter[str] = Counter()
    parsed = BulkJob.model_validate(gcs_job(mode="per_object", dry_run=True, **job))
    refs = [(r.key, r.generation or 0) for r in gcs_listing(client_for(running), parsed, skips)]
    return refs, skips


# -- globs ---------------------------------------------------------------------------------------
NAMES = ["a", "a/b", "a/b/c", "a/x/b", "ab", "a/b.csv", "logs/top.gz", "logs/2026/01/d.gz",
         "logs/2026/01/d.txt", "data/a/1.csv", "data/b/2.csv", "data/c/3.csv",
         "data/a/sub/4.csv", "x-1", "x-a", "x/1", "we{ird", "q?", "*star"]
PATTERNS = ["**", "*", "a/*", "a/**", "a/**/b", "**/b", "a?", "logs/**/*.gz", "logs/*.gz",
            "data/{a,b}/*.csv", "data/{a,b/**}/*.csv", "x-[0-9]", "x[!-]1", "x-[^0-9]",
            "x[/]1", "we{ird", "q\\?", "\\*star", "{a,ab}", "**.csv"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_globs_select_what_gcs_matchglob_selects(pattern: str) -> None:
    ours, theirs = glob_regex(pattern), glob_to_regex(pattern)
    assert [n for n in NAMES if ours.match(n)] == [n for n in NAMES if theirs.match(n)]


def test_glob_semantics_spelled_out() -> None:
    def selects(pattern: str) -> list[str]:
        return [n for n in NAMES if glob_regex(pattern).match(n)]

    assert selects("a/*") == ["a/b", "a/b.csv"]  # * stays within a segment
    assert selects("a/**/b") == ["a/b", "a/x/b"]  # **/ is zero or more segments
    assert selects("data/{a,b}/*.csv") == ["data/a/1.csv", "data/b/2.csv"]
    assert selects("x[/]1") == []  # a class never matches /
    assert selects("q\\?") == ["q?"]
    job = BulkJob.model_validate(gcs_job(dry_run=True, selection={"globs": ["logs/\\*", "logs/x"]}))
    assert listing_prefix(job) == "logs/"


def test_globs_and_prefix_restore_the_selected_names_each_reported_once(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    emulator = bulk_gcs_emulator.emulator
    generations = {name: soft_deleted(emulator, name, name.encode()) for name in NAMES}
    harness = gcs_bulk()
    summary = harness.run(gcs_job(job_id="job-globs", mode="per_object",
                                  selection={"globs": ["logs/**/*.gz", "data/{a,b}/*.csv"]},
                                  limits={"chunk_size": 2}))

    wanted = {"logs/top.gz", "logs/2026/01/d.gz", "data/a/1.csv", "data/b/2.csv"}
    assert type(summary).__name__ == "PlanSummary"  # per-object: no operation
    assert (summary.objects, summary.chunks) == (4, 2)
    assert set(live(emulator)) == wanted
    table = rows(bulk_gcs_emulator, "job-globs")
    assert sorted(r["key"] for r in table) == sorted(wanted)
    assert all(r["status"] == "completed" and r["generation"] == generations[r["key"]]
               for r in table)
    csv_rows = list(csv.DictReader(io.StringIO(report(bulk_gcs_emulator, "job-globs",
                                                      "report.csv").decode())))
    assert {r["provider"] for r in csv_rows} == {"gcs"} and len(csv_rows) == 4
    [event] = completed_events(sink)
    assert event["counts"] == {"completed": 4} and event["total"] == 4
    assert event["report_jsonl"] == f"gs://{GCS_REPORT_BUCKET}/reports/job-globs/report.jsonl"

    # A prefix (with one glob, matched by the server alongside it).
    bulk_gcs_emulator.log.clear()
    summary = harness.run(gcs_job(job_id="job-prefix", mode="per_object",
                                  selection={"prefix": "a/", "globs": ["a/**/b"]}))
    assert summary.objects == 2
    assert set(live(emulator)) == wanted | {"a/b", "a/x/b"}
    queries = [e.query for e in bulk_gcs_emulator.log.entries()
               if e.method == "GET" and e.path.endswith(f"/b/{GCS_BUCKET}/o")]
    assert {(q.get("prefix"), q.get("matchGlob"), str(q.get("softDeleted")).lower())
            for q in queries} == {("a/", "a/**/b", "true"), ("a/", "a/**/b", "none")}


# -- time filters and generations -----------------------------------------------------------------
def test_time_filters_select_by_soft_delete_and_creation_time(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    emulator = bulk_gcs_emulator.emulator
    hour = 3600.0
    t0 = emulator.clock.now()
    soft_deleted(emulator, "t/early")  # created and deleted at t0
    emulator.clock.advance(hour)
    emulator.put_object(GCS_BUCKET, "t/mid", b"mid")  # created t0+1h ...
    emulator.clock.advance(hour)
    emulator.delete_object(GCS_BUCKET, "t/mid")  # ... deleted t0+2h
    emulator.clock.advance(hour)
    soft_deleted(emulator, "t/late")  # created and deleted at t0+3h

    def names(**selection: Any) -> tuple[list[str], int]:
        refs, skips = listed(bulk_gcs_emulator, selection={"prefix": "t/", **selection})
        return [name for name, _ in refs], skips["outside_time_filters"]

    assert names() == (["t/early", "t/late", "t/mid"], 0)
    assert names(soft_deleted_after=stamp(t0 + hour)) == (["t/late", "t/mid"], 1)
    assert names(soft_deleted_before=stamp(t0 + 2.5 * hour)) == (["t/early", "t/mid"], 1)
    assert names(soft_deleted_after=stamp(t0 + hour),
                 soft_deleted_before=stamp(t0 + 2.5 * hour)) == (["t/mid"], 2)
    assert names(created_before=stamp(t0 + 0.5 * hour)) == (["t/early"], 2)
    assert names(created_after=stamp(t0 + 0.5 * hour),
                 created_before=stamp(t0 + 2 * hour)) == (["t/mid"], 2)
    # A time without an offset is UTC.
    naive = datetime.fromtimestamp(t0 + 2.5 * hour, timezone.utc).replace(tzinfo=None)
    assert names(soft_deleted_after=naive.isoformat()) == (["t/late"], 2)

    harness = gcs_bulk()
    summary = harness.run(gcs_job(job_id="job-times", mode="per_object", selection={
        "prefix": "t/", "soft_deleted_after": stamp(t0 + hour),
        "soft_deleted_before": stamp(t0 + 2.5 * hour)}))
    assert (summary.objects, summary.skipped) == (1, {"outside_time_filters": 2})
    assert set(live(emulator)) == {"t/mid"}
    [event] = completed_events(sink)
    assert (event["counts"], event["skipped"]) == ({"completed": 1}, {"outside_time_filters": 2})


def test_the_newest_soft_deleted_generation_in_the_filters_is_restored(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any) -> None:
    emulator = bulk_gcs_emulator.emulator
    first = soft_deleted(emulator, "doc", b"v1")
    emulator.clock.advance(60)
    between = emulator.clock.now()
    emulator.clock.advance(60)
    second = soft_deleted(emulator, "doc", b"v2")
    assert first < second

    assert listed(bulk_gcs_emulator, selection={"globs": ["doc"]})[0] == [("doc", second)]
    assert listed(bulk_gcs_emulator, selection={
        "globs": ["doc"], "soft_deleted_before": stamp(between)})[0] == [("doc", first)]

    gcs_bulk().run(gcs_job(job_id="job-newest", mode="per_object",
                           selection={"globs": ["doc"]}))
    assert client_for(bulk_gcs_emulator).bucket(GCS_BUCKET).blob("doc").download_as_bytes() \
        == b"v2"
    [row] = rows(bulk_gcs_emulator, "job-newest")
    assert (row["key"], row["generation"], row["status"]) == ("doc", second, "completed")


# -- live objects --------------------------------------------------------------------------------
def test_a_live_object_is_skipped_unless_allow_overwrite(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    emulator = bulk_gcs_emulator.emulator
    soft_deleted(emulator, "keep", b"deleted copy")
    emulator.put_object(GCS_BUCKET, "keep", b"live copy")
    soft_deleted(emulator, "free", b"free")
    harness = gcs_bulk()
    bucket = client_for(bulk_gcs_emulator).bucket(GCS_BUCKET)

    summary = harness.run(gcs_job(job_id="job-safe", mode="per_object",
                                  selection={"globs": ["{keep,free}"]}))
    assert (summary.objects, summary.skipped) == (1, {"live_object_exists": 1})
    assert bucket.blob("keep").download_as_bytes() == b"live copy"
    assert bucket.blob("free").download_as_bytes() == b"free"
    assert [r["key"] for r in rows(bulk_gcs_emulator, "job-safe")] == ["free"]

    summary = harness.run(gcs_job(job_id="job-overwrite", mode="per_object",
                                  allow_overwrite=True, selection={"globs": ["keep"]}))
    assert (summary.objects, summary.skipped) == (1, {})
    assert bucket.blob("keep").download_as_bytes() == b"deleted copy"
    [row] = rows(bulk_gcs_emulator, "job-overwrite")
    assert (row["key"], row["status"]) == ("keep", "completed")
    safe, overwrite = completed_events(sink)
    assert (safe["counts"], safe["skipped"]) == ({"completed": 1}, {"live_object_exists": 1})
    assert (overwrite["counts"], overwrite["skipped"]) == ({"completed": 1}, {})


def test_listing_groups_generations_and_skips_live_names_across_pages(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any) -> None:
    """The emulator pages at 1,000 like GCS: n0999's generations straddle the page boundary of
    the soft-deleted listing, and live names sit on both pages of the live one."""
    emulator = bulk_gcs_emulator.emulator
    for i in range(999):
        soft_deleted(emulator, f"n{i:04d}")
    last = [soft_deleted(emulator, "n0999", bytes([k])) for k in range(3)]
    for name in ("n0005", "n0999"):
        emulator.put_object(GCS_BUCKET, name, b"live")
    for i in range(1000, 1100):  # live only: a second page of the live listing
        emulator.put_object(GCS_BUCKET, f"n{i:04d}", b"live")

    refs, skips = listed(bulk_gcs_emulator, selection={"prefix": "n"})
    assert len(refs) == 998 and skips == {"live_object_exists": 2}
    assert [name for name, _ in refs] == sorted(name for name, _ in refs)
    refs, skips = listed(bulk_gcs_emulator, allow_overwrite=True, selection={"prefix": "n"})
    assert len(refs) == 1000 and refs[-1] == ("n0999", last[-1]) and not skips

    summary = gcs_bulk().bulk.submit(gcs_job(job_id="job-dry", dry_run=True, mode="per_object",
                                             selection={"prefix": "n"}))
    assert (summary.dry_run, summary.objects, summary.skipped) == (
        True, 998, {"live_object_exists": 2})


# -- manifests and retries -----------------------------------------------------------------------
def test_manifests_name_objects_and_generations(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any) -> None:
    emulator = bulk_gcs_emulator.emulator
    old = soft_deleted(emulator, "m/a", b"old a")
    soft_deleted(emulator, "m/a", b"new a")
    soft_deleted(emulator, "m/b", b"b")
    soft_deleted(emulator, "m/c", b"c")
    emulator.put_object(GCS_BUCKET, "manifests/list.csv",
                        f"key,generation\nm/a,{old}\nm/b,\n".encode())
    emulator.put_object(GCS_BUCKET, "manifests/list.jsonl",
                        b'{"object": "m/c"}\nnot json\n')
    harness = gcs_bulk()
    bucket = client_for(bulk_gcs_emulator).bucket(GCS_BUCKET)

    csv_summary = harness.run(gcs_job(job_id="job-csv", selection={
        "manifest": {"key": "manifests/list.csv"}}))
    assert type(csv_summary).__name__ == "PlanSummary"  # auto: a manifest is per-object
    assert bucket.blob("m/a").download_as_bytes() == b"old a"
    assert {(r["key"], r["generation"]) for r in rows(bulk_gcs_emulator, "job-csv")} >= {
        ("m/a", old)}
    jsonl = harness.run(gcs_job(job_id="job-jsonl", selection={
        "manifest": {"key": "manifests/list.jsonl"}}))
    assert (jsonl.objects, jsonl.skipped) == (1, {"manifest_line_invalid": 1})
    assert set(live(emulator)) >= {"m/a", "m/b", "m/c"}


def test_retryable_failures_are_retried_and_each_object_reported_once(
        bulk_gcs_emulator: RunningEmulator, gcs_bulk: Any, sink: CollectingSink) -> None:
    emulator = bulk_gcs_emulator.emulator
    for i in range(6):
        soft_deleted(emulator, f"r/{i}")
    bulk_gcs_emulator.faults.set(FaultPlan(script=[503, 429, 503], match_method="POST",
                                           match_path="/restore?"))
    gcs_bulk().run(gcs_job(job_id="job-retry", mode="per_object", selection={"prefix": "r/"},
                           limits={"chunk_size": 3}))
    restores = [e for e in bulk_gcs_emulator.log.entries()
                if e.method == "POST" and e.path.endswith("/restore")]
    assert len(restores) == 9 and sum(1 for e in restores if e.fault) == 3
    assert sorted(r["key"] for r in rows(bulk_gcs_emulator, "job-retry")) == [
        f"r/{i}" for i in range(6)]
    [event] = completed_events(sink)
    assert event["counts"] == {"completed": 6}
