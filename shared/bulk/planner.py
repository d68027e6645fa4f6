"""The planner: selection stream in, chunk messages out (or, for a dry run, a summary).

It holds one chunk at a time, so its memory does not depend on how many objects the job has;
the queue's back-pressure (or the platform's) paces it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel

from shared.bulk.pacing import worker_rate
from shared.bulk.queues import ChunkQueue
from shared.bulk.report import JobReport
from shared.bulk.schemas import BulkChunk, BulkJob, JobParams, ObjectRef
from shared.bulk.selection import Skips
from shared.tiers import expected_window, supports_tier


class PlanSummary(BaseModel):
    """What a job selected: returned by every submission, the whole answer of a dry run."""

    job_id: str
    dry_run: bool
    objects: int
    chunks: int
    by_storage_class: dict[str, int]
    tier: str | None = None
    skipped: dict[str, int]
    expected_completion_after: datetime | None = None
    expected_completion_before: datetime | None = None
    rate_per_worker: float
    max_instances: int
    truncated_at_max_objects: bool = False


def chunk_id(index: int) -> str:
    return f"c{index:06d}"


# A chunk message stays well under CMQ's 1 MiB message limit (Pub/Sub allows 10 MB), whatever
# the key lengths: 1,000 keys of 1,024 bytes would not fit.
MAX_CHUNK_BYTES = 512 * 1024


def _batches(refs: Iterable[ObjectRef], size: int) -> Iterator[list[ObjectRef]]:
    batch: list[ObjectRef] = []
    weight = 0
    for ref in refs:
        cost = len(ref.key.encode()) * 2 + 96  # JSON escaping, field names, version/generation
        if batch and (len(batch) >= size or weight + cost > MAX_CHUNK_BYTES):
            yield batch
            batch, weight = [], 0
        batch.append(ref)
        weight += cost
    if batch:
        yield batch


def plan(job: BulkJob, refs: Iterable[ObjectRef], skips: Skips, *, queue: ChunkQueue | None,
         report: JobReport | None, job_rate: float, max_instances: int) -> PlanSummary:
    """Publish the chunks (unless dry run), write ``plan.json``, return the summary."""
    rate = worker_rate(job_rate, max_instances)
    params: JobParams = job.params()
    limit = job.limits.max_objects
    classes: Counter[str] = Counter()
    objects = chunks = 0
    truncated = False

    def counted(stream: Iterable[ObjectRef]) -> Iterator[ObjectRef]:
        nonlocal objects, truncated
        for ref in stream:
            if limit is not None and objects >= limit:
                truncated = True
                return
            objects += 1
            classes[ref.storage_class or "UNKNOWN"] += 1
            yield ref

    for batch in _batches(counted(refs), job.limits.chunk_size):
        chunks += 1
        if not job.dry_run and queue is not None:
            queue.send(BulkChunk(job=params, chunk_id=chunk_id(chunks), rate=rate, items=batch))
    if report is not None and not job.dry_run:
        report.write_plan(chunks, objects, dict(skips))
    after, before = _window(job, classes)
    return PlanSummary(
        job_id=job.job_id, dry_run=job.dry_run, objects=objects, chunks=chunks,
        by_storage_class=dict(classes), tier=job.tier if job.provider == "cos" else None,
        skipped=dict(skips), expected_completion_after=after, expected_completion_before=before,
        rate_per_worker=round(rate, 3), max_instances=max_instances,
        truncated_at_max_objects=truncated,
    )


def _window(job: BulkJob, classes: Counter[str]) -> tuple[datetime | None, datetime | None]:
    """COS: earliest lower and latest upper bound over the selected classes, plus the time the
    requests themselves take at the job's rate. GCS restores are synchronous: no window."""
    if job.provider != "cos" or not classes:
        return None, None
    windows = [expected_window(c, job.tier) for c in classes if supports_tier(c, job.tier)]
    known = [w for w in windows if w is not None]
    if not known:
        return None, None
    now = datetime.now(timezone.utc)
    return now + min(w[0] for w in known), now + max(w[1] for w in known)


def sending_time(objects: int, job_rate: float) -> timedelta:
    return timedelta(seconds=objects / job_rate)


def summary_dict(summary: PlanSummary) -> dict[str, Any]:
    return summary.model_dump(mode="json", exclude_none=True)
