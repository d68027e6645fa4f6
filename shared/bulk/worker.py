"""One chunk: restore its objects at the worker's paced rate and write their report rows.

- Requests start ``1/rate`` apart (``Pacer``) on a small thread pool, so a slow provider does
  not lower the rate and a fast one cannot raise it.
- A throttling answer (503 SlowDown, 429) halves the pace for a while; retryable failures get
  another pass within the chunk, after the rest.
- What is still retryable when the passes or the chunk's time budget run out is re-published as
  a new chunk holding only those objects; finished objects are never sent again. If that publish
  fails, the worker raises and the platform redelivers this chunk: its report part already
  holds the finished rows, which the redelivery skips.
- One copy of a planner chunk (or of its leftovers) runs at a time: the worker claims the root
  chunk in the ledger first. A copy delivered while another runs (two instances handed the same
  message) raises ``ChunkInFlight`` without a provider call, and its redelivery finds the rows
  written. Skipping written rows alone could not do this: they are written when a chunk ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from shared.bulk.pacing import Pacer
from shared.bulk.queues import ChunkQueue, QueueError
from shared.bulk.report import JobReport, ReportRow, row_for
from shared.bulk.schemas import BulkChunk, JobParams, ObjectRef
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.restore_requests import (
    CosRestoreRequest,
    GcsRestoreRequest,
    fast_parse,
    from_model,
)

logger = logging.getLogger("restorefn.bulk")

PASSES = 3
MAX_ATTEMPTS = 10  # chunk generations: leftovers of leftovers... then the object fails for good
THROTTLED = (429, 503)


class ChunkRedelivery(RuntimeError):
    """Leftovers could not be re-published: redeliver this chunk (its done rows are kept)."""


class ChunkInFlight(ChunkRedelivery):
    """Another copy of this chunk (or of its root's leftovers) is running: redeliver later."""


class ChunkClaim(Protocol):
    def release(self) -> None: ...


@dataclass
class ChunkResult:
    chunk_id: str
    rows: list[ReportRow] = field(default_factory=list)
    leftovers: list[ObjectRef] = field(default_factory=list)
    leftover_chunk: str | None = None
    throttled: int = 0
    chunk_done: bool = False


def identity(item: ObjectRef | ReportRow) -> tuple[str, str | None, int | None]:
    return item.key, item.version_id, item.generation


def request_for(
    job: JobParams, item: ObjectRef, index: str
) -> CosRestoreRequest | GcsRestoreRequest:
    """The single-object request the adapters take, validated like any request (the key
    too): by ``fast_parse`` when it can vouch for it, else by the pydantic model, which raises
    ValidationError for an invalid one."""
    fields: dict[str, Any] = {"request_id": f"{job.job_id}/{index}", "bucket": job.bucket}
    if job.provider == "cos":
        fields.update(provider="cos", region=job.region or "", key=item.key,
                      days=job.days or 1, tier=job.tier, version_id=item.version_id)
    else:
        fields.update(provider="gcs", object=item.key, generation=item.generation,
                      copy_source_acl=job.copy_source_acl, allow_overwrite=job.allow_overwrite)
    request = fast_parse(fields)
    if request is None:
        from shared import schemas

        model = schemas.CosRestoreRequest if job.provider == "cos" else schemas.GcsRestoreRequest
        request = from_model(model(**fields))
    return request


class ChunkWorker:
    """Runs chunks for one service (its adapters, settings and report stores)."""

    def __init__(self, adapter: Any, report_for: Callable[[JobParams], JobReport], *,
                 threads: int, budget_seconds: float, queue: ChunkQueue | None,
                 claim: Callable[[BulkChunk], ChunkClaim] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._adapter = adapter
        self._claim = claim  # raises ChunkInFlight while another copy holds the root chunk
        self._report_for = report_for
        self._threads = threads
        self._budget = budget_seconds
        self._queue = queue
        self._clock = clock

    def run(self, chunk: BulkChunk) -> ChunkResult:
        job = chunk.job
        report = self._report_for(job)
        result = ChunkResult(chunk.chunk_id)
        claim = self._claim(chunk) if self._claim is not None else None
        try:
            # A redelivery of this chunk: keep what its earlier delivery finished. A resumed job
            # (the planner's chunk sent again) also skips what its leftover chunks finished.
            result.rows = report.read_part(chunk.chunk_id)
            finished = {identity(row) for row in report.root_rows(chunk.root_id)}
            todo = [item for item in chunk.items if identity(item) not in finished]

            deadline = self._clock() + self._budget
            pacer = Pacer(chunk.rate)
            with ThreadPoolExecutor(max_workers=self._threads,
                                    thread_name_prefix="bulk-restore") as pool:
                for attempt in range(PASSES):
                    if not todo:
                        break
                    todo = self._pass(job, chunk, todo, attempt, pacer, pool, deadline, result)
            result.leftovers = todo
            report.write_part(chunk.chunk_id, result.rows)
        finally:
            # Released before the leftovers are sent: the leftover chunk claims the same root.
            if claim is not None:
                claim.release()
        if todo:
            self._republish(chunk, todo, result)
        else:
            report.mark_done(chunk.root_id)
            result.chunk_done = True
        return result

    def _pass(self, job: JobParams, chunk: BulkChunk, todo: list[ObjectRef], attempt: int,
              pacer: Pacer, pool: ThreadPoolExecutor, deadline: float,
              result: ChunkResult) -> list[ObjectRef]:
        """One pass over ``todo``; returns what must be tried again.

        Each request waits for its turn in the thread that sends it, right before sending: a
        turn taken when the request is queued would let requests that queued behind a slow one
        leave together, a burst the provider's one-second window would count.
        """
        retry: list[ObjectRef] = []
        pending = [
            (item, pool.submit(self._paced_restore, pacer, deadline, job, item,
                               f"{chunk.chunk_id}/{position}/{attempt}"))
            for position, item in enumerate(todo)
        ]
        for item, future in pending:
            outcome = future.result()
            if outcome is None:  # the chunk's time budget ran out before its turn
                retry.append(item)
                continue
            error = outcome.error
            if error is not None and error.http_status in THROTTLED:
                result.throttled += 1
            if outcome.retryable:
                retry.append(item)
            else:
                result.rows.append(row_for(job, item, outcome))
        return retry

    def _paced_restore(self, pacer: Pacer, deadline: float, job: JobParams, item: ObjectRef,
                       index: str) -> Outcome | None:
        if self._clock() >= deadline:
            return None
        pacer.wait()
        if self._clock() >= deadline:
            return None
        outcome = self._restore_one(job, item, index)
        error = outcome.error
        if error is not None and error.http_status in THROTTLED:
            pacer.slow_down()  # at once: the requests still waiting take the slower pace
        return outcome

    def _restore_one(self, job: JobParams, item: ObjectRef, index: str) -> Outcome:
        try:
            request = request_for(job, item, index)
        except ValidationError as exc:
            reason = "; ".join(str(e["msg"]) for e in exc.errors(include_input=False))
            return Outcome(
                request_id=f"{job.job_id}/{index}", status=OutcomeStatus.REJECTED,
                provider=job.provider, bucket=job.bucket, key=item.key,
                error=ErrorInfo(code=ErrorCode.VALIDATION_FAILED, message=reason),
            )
        try:
            if isinstance(request, CosRestoreRequest) and item.storage_class:
                outcome: Outcome = self._adapter.restore_listed(request, item.storage_class)
            else:
                outcome = self._adapter.restore(request)
        except Exception as exc:  # a bug must not lose the object: retry it, then fail it
            logger.error("bulk restore raised %s", type(exc).__name__)
            return Outcome(
                request_id=request.request_id, status=OutcomeStatus.FAILED,
                provider=job.provider, bucket=job.bucket, key=item.key,
                error=ErrorInfo(code=ErrorCode.PROVIDER_ERROR, retryable=True,
                                message=f"unexpected {type(exc).__name__}"),
            )
        return outcome

    def _republish(self, chunk: BulkChunk, todo: list[ObjectRef], result: ChunkResult) -> None:
        if chunk.attempt >= MAX_ATTEMPTS or self._queue is None:
            raise ChunkRedelivery(
                f"{len(todo)} objects of chunk {chunk.chunk_id} are still retryable"
            )
        leftover = chunk.model_copy(update={
            "chunk_id": f"{chunk.root_id}.r{chunk.attempt + 1}", "attempt": chunk.attempt + 1,
            "items": todo,
        })
        try:
            self._queue.send(leftover)
        except QueueError as exc:
            raise ChunkRedelivery(str(exc)) from None
        result.leftover_chunk = leftover.chunk_id
