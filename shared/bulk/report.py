"""The job's report: per-object rows, progress so far, and the job-completed event.

Layout under ``PREFIX/JOB_ID/`` in the report bucket:

- ``plan.json``: written by the planner once every chunk is published (chunk and object counts);
- ``parts/<chunk_id>.jsonl``: the final rows of one chunk attempt. A row is written only when
  its object is finished (restored, refused, or failed for good), and leftovers go to a new chunk
  id, so across all parts every object appears exactly once;
- ``done/<root chunk>.json``: the counts of a planner chunk whose leftovers are all finished;
- ``report.csv``, ``report.jsonl``, ``summary.json``: the whole report, assembled by whichever
  worker finishes the last chunk (streamed through temporary files: memory stays flat).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import field
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.bulk.schemas import JobParams, ObjectRef
from shared.bulk.stores import ReportStore
from shared.events import CloudEvent, RestoreEventData, event_id, event_source
from shared.outcome import Outcome, OutcomeStatus
from shared.records import record

logger = logging.getLogger("restorefn.bulk")

JOB_EVENT_PREFIX = "restorefn.bulk.job.v1"
CSV_FIELDS = ("provider", "bucket", "key", "version_id", "generation", "status", "error_code",
              "http_status", "message")


class ReportRow(BaseModel):
    """One object's line in the report (the S3 Batch Operations report's columns, renamed)."""

    model_config = ConfigDict(frozen=True)

    provider: str
    bucket: str
    key: str
    version_id: str | None = None
    generation: int | None = None
    status: str
    error_code: str | None = None
    http_status: int | None = None
    message: str | None = None


def row_for(job: JobParams, item: ObjectRef, outcome: Outcome) -> ReportRow:
    error = outcome.error
    return ReportRow(
        provider=job.provider, bucket=job.bucket, key=item.key,
        version_id=item.version_id, generation=outcome.generation or item.generation,
        status=outcome.status.value,
        error_code=error.code.value if error else None,
        http_status=error.http_status if error else None,
        message=error.message if error else None,
    )


class Progress(BaseModel):
    """Where a job stands: what the status operation and the CLI show."""

    job_id: str
    state: Literal["planning", "running", "completed", "unknown"]
    planned_objects: int | None = None
    planned_chunks: int | None = None
    chunks_done: int = 0
    counts: dict[str, int] = {}
    skipped: dict[str, int] = {}
    report: dict[str, str] | None = None

    @property
    def objects_done(self) -> int:
        return sum(self.counts.values())


@record
class BulkJobEventData(RestoreEventData):
    """``data`` of a job event: the job's id as ``request_id``, counts per status."""

    job_id: str
    counts: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)
    total: int
    report_csv: str | None = None
    report_jsonl: str | None = None


class JobReport:
    """Reads and writes one job's report files."""

    def __init__(self, store: ReportStore, job: JobParams) -> None:
        self.store = store
        self.job = job
        self.base = job.report_key_prefix

    def _key(self, name: str) -> str:
        return f"{self.base}/{name}"

    # -- parts ------------------------------------------------------------------------------
    def read_part(self, chunk_id: str) -> list[ReportRow]:
        raw = self.store.get(self._key(f"parts/{chunk_id}.jsonl"))
        if raw is None:
            return []
        return [ReportRow.model_validate_json(line) for line in raw.splitlines() if line.strip()]

    def root_rows(self, root_id: str) -> Iterator[ReportRow]:
        """The rows of a planner chunk and of all its leftover chunks (``c000007``,
        ``c000007.r2``...): what a resumed or redelivered chunk must not redo."""
        for key in self.store.keys(self._key(f"parts/{root_id}")):
            if key.rsplit("/", 1)[-1].split(".", 1)[0] != root_id:
                continue
            for line in (self.store.get(key) or b"").splitlines():
                if line.strip():
                    yield ReportRow.model_validate_json(line)

    def write_part(self, chunk_id: str, rows: list[ReportRow]) -> None:
        body = "".join(row.model_dump_json() + "\n" for row in rows).encode()
        self.store.put(self._key(f"parts/{chunk_id}.jsonl"), body, "application/x-ndjson")

    def mark_done(self, root_id: str) -> dict[str, int]:
        """Record a planner chunk as finished, with the counts of all its attempts' rows."""
        counts: Counter[str] = Counter()
        for key in self.store.keys(self._key(f"parts/{root_id}")):
            for line in (self.store.get(key) or b"").splitlines():
                if line.strip():
                    counts[json.loads(line)["status"]] += 1
        self.store.put(self._key(f"done/{root_id}.json"), json.dumps(dict(counts)).encode())
        return dict(counts)

    # -- plan -------------------------------------------------------------------------------
    def write_plan(self, chunks: int, objects: int, skipped: dict[str, int]) -> None:
        plan = {"job_id": self.job.job_id, "chunks": chunks, "objects": objects,
                "skipped": skipped, "planned_at": datetime.now(timezone.utc).isoformat()}
        self.store.put(self._key("plan.json"), json.dumps(plan).encode())

    def read_plan(self) -> dict[str, Any] | None:
        raw = self.store.get(self._key("plan.json"))
        return None if raw is None else dict(json.loads(raw))

    # -- progress ---------------------------------------------------------------------------
    def progress(self) -> Progress:
        plan = self.read_plan()
        summary = self.store.get(self._key("summary.json"))
        counts: Counter[str] = Counter()
        done_roots: set[str] = set()
        for key in self.store.keys(self._key("done/")):
            done_roots.add(key.rsplit("/", 1)[-1].removesuffix(".json"))
            counts.update(json.loads(self.store.get(key) or b"{}"))
        for key in self.store.keys(self._key("parts/")):
            root = key.rsplit("/", 1)[-1].split(".", 1)[0]
            if root not in done_roots:  # a chunk still running: count its finished rows
                counts.update(json.loads(line)["status"]
                              for line in (self.store.get(key) or b"").splitlines()
                              if line.strip())
        if summary is not None:
            state: Literal["planning", "running", "completed", "unknown"] = "completed"
        elif plan is not None:
            state = "running"
        else:
            state = "planning" if counts or done_roots else "unknown"
        return Progress(
            job_id=self.job.job_id, state=state,
            planned_objects=plan["objects"] if plan else None,
            planned_chunks=plan["chunks"] if plan else None,
            chunks_done=len(done_roots), counts=dict(counts),
            skipped=dict(plan.get("skipped", {})) if plan else {},
            report=self.report_urls() if summary is not None else None,
        )

    def all_done(self) -> bool:
        plan = self.read_plan()
        if plan is None:
            return False
        done = sum(1 for _ in self.store.keys(self._key("done/")))
        return done >= int(plan["chunks"])

    # -- the whole report -------------------------------------------------------------------
    def report_urls(self) -> dict[str, str]:
        scheme = "cos" if self.job.provider == "cos" else "gs"
        assert self.job.report is not None
        root = f"{scheme}://{self.job.report.bucket}/{self.base}"
        return {"csv": f"{root}/report.csv", "jsonl": f"{root}/report.jsonl",
                "summary": f"{root}/summary.json"}

    def rows(self) -> Iterator[ReportRow]:
        """Every row, part by part in chunk order."""
        for key in list(self.store.keys(self._key("parts/"))):
            for line in (self.store.get(key) or b"").splitlines():
                if line.strip():
                    yield ReportRow.model_validate_json(line)

    def assemble(self) -> dict[str, int]:
        """Write report.csv, report.jsonl and summary.json; return the counts per status."""
        counts: Counter[str] = Counter()
        with tempfile.TemporaryFile("w+b") as jsonl, tempfile.TemporaryFile("w+b") as csv_file:
            text = io.TextIOWrapper(csv_file, encoding="utf-8", newline="")
            writer = csv.DictWriter(text, fieldnames=CSV_FIELDS)
            writer.writeheader()
            for row in self.rows():
                counts[row.status] += 1
                jsonl.write(row.model_dump_json().encode() + b"\n")
                writer.writerow({k: "" if v is None else v for k, v in row.model_dump().items()})
            text.flush()
            csv_file.seek(0)
            jsonl.seek(0)
            self.store.put(self._key("report.csv"), csv_file, "text/csv")
            self.store.put(self._key("report.jsonl"), jsonl, "application/x-ndjson")
            text.detach()
        plan = self.read_plan() or {}
        summary = {"job_id": self.job.job_id, "counts": dict(counts),
                   "total": sum(counts.values()), "skipped": plan.get("skipped", {}),
                   "completed_at": datetime.now(timezone.utc).isoformat()}
        self.store.put(self._key("summary.json"), json.dumps(summary).encode())
        return dict(counts)


def job_event(job: JobParams, phase: str, counts: dict[str, int], *,
              skipped: dict[str, int] | None = None, urls: dict[str, str] | None = None,
              failed: bool = False) -> CloudEvent:
    """A job-level CloudEvent (``restorefn.bulk.job.v1.<phase>``), id stable per job and phase."""
    status = OutcomeStatus.FAILED if failed else OutcomeStatus.COMPLETED
    data = BulkJobEventData(
        outcome=status, request_id=job.job_id, job_id=job.job_id, provider=job.provider,
        bucket=job.bucket, region=job.region, tier=job.tier if job.provider == "cos" else None,
        days=job.days, context=job.context, counts=counts, skipped=skipped or {},
        total=sum(counts.values()),
        report_csv=(urls or {}).get("csv"), report_jsonl=(urls or {}).get("jsonl"),
    )
    return CloudEvent(
        id=event_id(f"bulk:{job.job_id}:{phase}", status),
        source=event_source(job.provider, job.bucket, job.region),
        type=f"{JOB_EVENT_PREFIX}.{phase}", subject=f"jobs/{job.job_id}",
        time=datetime.now(timezone.utc), data=data,
    )


def count_statuses(rows: Iterable[ReportRow]) -> dict[str, int]:
    return dict(Counter(row.status for row in rows))
