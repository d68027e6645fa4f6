"""restorefn bulk: run a bulk restore job from a terminal, in this process.

The job (``restorefn.bulk.v1``, the schema the webhook and the queue functions accept) comes
from a file (``-`` for stdin), from flags, or both (flags override the file). It is planned and
worked here: the planner streams the selection into chunks, an in-process queue of
``--instances`` worker threads restores them at ``--rate`` (shared between the workers; capped
by ``RESTORE_COS_RESTORE_RATE`` / ``RESTORE_GCS_RESTORE_RATE``), and each chunk's rows go to
the job's report, as the functions do. The platform fan-out (many instances) is the function
path; this is one machine.

- ``--dry-run``: list and count what the job would restore (per storage class, skipped per
  reason, expected completion window); restores nothing, needs no report bucket.
- Progress on stderr: objects done / planned, rate, ETA; one line redrawn in place on a
  terminal, a plain line every ``--progress-interval`` seconds otherwise.
- Resumable: a job without ``job_id`` gets one derived from its content (``job-<hash>``), so
  running the same command again resumes it. Chunk ids are the planner's (``c000001``...), the
  same for the same selection, and a chunk's worker skips the objects its report part already
  holds: a rerun restores only what the interrupted run had not finished. A job whose report
  is complete is not run again (``--job-id`` or a new ``job_id`` starts over).
- At the end: a table of the objects per status, skipped per reason and the report's location
  (``--json``: one JSON document on stdout instead).

Exit codes: 0 every selected object was restored or accepted (or a dry run); 1 some objects
failed or were refused (their rows say why), or the provider refused the listing; 2 bad input
(the job's field list is printed); 4 configuration (credentials, a bucket outside a configured
allowlist); 5 the job did not finish (retryable failures remained, or the listing failed in a
way worth retrying): rerun the same command to resume; 130 interrupted: rerun to resume.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections import Counter
from typing import Any, TextIO, cast

from shared.bulk.errors import bulk_error
from shared.bulk.gcs_server_side import OperationProgress, ServerSidePlan
from shared.bulk.planner import PlanSummary, summary_dict
from shared.bulk.queues import InProcessQueue
from shared.bulk.report import Progress
from shared.bulk.schemas import BulkChunk, BulkJob
from shared.bulk.service import BulkService, parse_job
from shared.cli import (
    EXIT_BAD_INPUT,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RETRYABLE,
    CliError,
    Output,
    _duration,
    _note,
    _positive,
    _problems_text,
    _read_json,
    _when,
    build_settings,
)
from shared.config import ConfigurationError, Settings
from shared.events import CloudEvent
from shared.outcome import ErrorCode, ErrorInfo, Outcome
from shared.providers import ProviderRegistry
from shared.providers.base import ProviderAdapter
from shared.service import RestoreService
from shared.sinks import EventSink, LogSink
from shared.validation import RequestValidationError

DEFAULT_INSTANCES = 4
DEFAULT_PROGRESS_INTERVAL = 5.0
TTY_REDRAW_SECONDS = 0.25
REDELIVERIES = 2  # a chunk that raises is run again this many times, then left for a rerun
POLL_FIRST, POLL_GROWTH, POLL_MAX = 1.0, 1.5, 30.0  # a server-side operation's polls
BAR_WIDTH = 24
_NOT_DONE = ("failed", "rejected")
AnyProgress = Progress | OperationProgress

BULK_EPILOG = """\
exit codes:
  0    every selected object restored or accepted (or a dry run)
  1    some objects failed or were refused (see the report), or the provider refused the listing
  2    bad input: the job failed validation (the failing fields are listed)
  4    configuration error: credentials, a bucket outside a configured allowlist
  5    the job did not finish (retryable failures remained): rerun the same command to resume
  130  interrupted (Ctrl-C): rerun the same command to resume

A job without job_id is named from its content, so the same command resumes the same job.
"""


# -- live counts -------------------------------------------------------------------------------
class Tally:
    """What this run has done so far, counted as it happens (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.planned = 0
        self.chunks = 0
        self.planning = True
        self.done_before = 0
        self.done = 0
        self.retrying = 0
        self.statuses: Counter[str] = Counter()
        self.operation: str | None = None  # a GCS server-side job: its operation's name

    def polled(self, progress: OperationProgress) -> None:
        with self._lock:
            self.planning = False
            self.done = progress.objects_done
            self.statuses = Counter(progress.counts)

    def planned_chunk(self, objects: int) -> None:
        with self._lock:
            self.planned += objects
            self.chunks += 1

    def plan_finished(self, summary: PlanSummary) -> None:
        with self._lock:
            self.planned, self.chunks, self.planning = summary.objects, summary.chunks, False

    def outcome(self, outcome: Outcome) -> None:
        with self._lock:
            if outcome.retryable:
                self.retrying += 1
            else:
                self.done += 1
                self.statuses[outcome.status.value] += 1


class _CountingAdapter:
    """A provider adapter whose restores are counted (everything else passes through)."""

    def __init__(self, adapter: Any, tally: Tally) -> None:
        self._adapter = adapter
        self._tally = tally

    def restore(self, request: Any) -> Outcome:
        outcome: Outcome = self._adapter.restore(request)
        self._tally.outcome(outcome)
        return outcome

    def restore_listed(self, request: Any, storage_class: str) -> Outcome:
        outcome: Outcome = self._adapter.restore_listed(request, storage_class)
        self._tally.outcome(outcome)
        return outcome

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


class _CountingRegistry(ProviderRegistry):
    def __init__(self, settings: Settings, tally: Tally) -> None:
        super().__init__(settings)
        self._tally = tally

    def get(self, provider: str) -> ProviderAdapter[Any, Any]:
        return cast(ProviderAdapter[Any, Any], _CountingAdapter(super().get(provider),
                                                                self._tally))


class _CountingQueue:
    """The in-process queue, counting the planner's chunks as they are sent."""

    def __init__(self, inner: InProcessQueue, tally: Tally) -> None:
        self.inner = inner
        self._tally = tally

    def send(self, chunk: BulkChunk) -> None:
        if chunk.chunk_id == chunk.root_id:  # a planner chunk, not a worker's leftovers
            self._tally.planned_chunk(len(chunk.items))
        self.inner.send(chunk)


# -- the progress line -------------------------------------------------------------------------
class BulkProgress:
    """objects done / planned, rate, ETA on stderr: redrawn in place on a terminal, a plain
    line every ``interval`` seconds otherwise. A background thread draws."""

    def __init__(self, stream: TextIO, tally: Tally, *, interval: float) -> None:
        self.stream = stream
        self.tally = tally
        self.tty = stream.isatty()
        self.interval = TTY_REDRAW_SECONDS if self.tty else interval
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._drawn = False
        self._thread = threading.Thread(target=self._run, name="bulk-progress", daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()

    def line(self) -> str:
        t = self.tally
        elapsed = max(time.monotonic() - self.started, 1e-6)
        if t.operation is not None:
            counts = ", ".join(f"{n} {s}" for s, n in sorted(t.statuses.items())) or "0 done"
            return (f"server-side {t.operation.rsplit('/', 1)[-1]}: {counts} · "
                    f"{_duration(elapsed)} elapsed")
        done = t.done_before + t.done
        planned = max(t.planned, done)
        rate = t.done / elapsed
        if planned and not t.planning:
            filled = round(BAR_WIDTH * done / planned)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            total = f"{done}/{planned} objects ({100 * done // planned}%)"
        else:
            bar = "?" * BAR_WIDTH if t.planning else "#" * BAR_WIDTH
            total = f"{done}/{planned}{'+' if t.planning else ''} objects"
        parts = [f"[{bar}] {total}", f"{rate:.1f}/s"]
        if t.planning:
            parts.append("planning")
        elif rate > 0 and planned > done:
            parts.append(f"ETA {_duration((planned - done) / rate)}")
        if t.retrying:
            parts.append(f"{t.retrying} retries")
        failed = sum(t.statuses[s] for s in _NOT_DONE)
        if failed:
            parts.append(f"{failed} failed")
        parts.append(f"{_duration(elapsed)} elapsed")
        return " · ".join(parts)

    def draw(self) -> None:
        with self.lock:
            if self.tty:
                self.stream.write("\r\x1b[K" + self.line())
                self._drawn = True
            else:
                self.stream.write("restorefn: " + self.line() + "\n")
            self.stream.flush()

    def clear(self) -> None:
        """Called with ``lock`` held: make room for another line on a terminal."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.draw()
        if self.tty:
            with self.lock:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = False


class _SinkBesideProgress:
    """Events printed on stderr (the log sink) do not land in the middle of the bar."""

    def __init__(self, sink: EventSink, progress: BulkProgress) -> None:
        self._sink = sink
        self._progress = progress

    def publish(self, event: CloudEvent) -> None:
        with self._progress.lock:
            self._progress.clear()
            self._sink.publish(event)


# -- the job -----------------------------------------------------------------------------------
def _job_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The file's job (if any) with the flags on top; a job_id derived when none is given."""
    payload: Any = _read_json(args.job) if args.job is not None else {}
    if not isinstance(payload, dict):
        raise CliError(EXIT_BAD_INPUT, f"{args.job}: a job is a JSON object")
    if args.job is None and args.bucket is None:
        raise CliError(EXIT_BAD_INPUT, "pass a job file (JOB.json, - for stdin) or name the "
                                       "job with flags (--provider, --bucket, --report, ...)")
    payload.setdefault("kind", "restorefn.bulk.v1")
    for dest in ("provider", "bucket", "region", "days", "tier"):
        if getattr(args, dest) is not None:
            payload[dest] = getattr(args, dest)
    if "provider" not in payload and any(k in payload for k in ("region", "Region", "days")):
        payload["provider"] = "cos"
    selection = dict(payload.get("selection") or {})
    if args.prefix is not None:
        selection["prefix"] = args.prefix
    if args.glob:
        selection["globs"] = list(args.glob)
    if args.manifest is not None:
        head, sep, tail = args.manifest.partition(":")  # bucket names hold no ':'
        bucket, key = (head, tail) if sep else ("", head)
        selection["manifest"] = {"key": key, **({"bucket": bucket} if bucket else {})}
    if selection:
        payload["selection"] = selection
    if args.report is not None:
        bucket, _, prefix = args.report.partition("/")
        payload["report"] = {"bucket": bucket, **({"prefix": prefix} if prefix else {})}
    if args.chunk_size is not None:
        payload["limits"] = {**(payload.get("limits") or {}), "chunk_size": args.chunk_size}
    if args.job_id is not None:
        payload.pop("jobId", None)
        payload["job_id"] = args.job_id
    if "job_id" not in payload and "jobId" not in payload:
        payload["job_id"] = derived_job_id(payload)
    if args.rate is not None:
        payload["limits"] = {**(payload.get("limits") or {}), "requests_per_second": args.rate}
    if args.dry_run:
        payload["dry_run"] = True
    return payload


def derived_job_id(payload: dict[str, Any]) -> str:
    """``job-<hash>`` of what selects and chunks the objects (not dry_run, not the rate), so
    the same job run again is the same job, its chunks the same chunks."""
    basis = {k: v for k, v in payload.items() if k not in ("dry_run", "dryRun")}
    limits = {k: v for k, v in (basis.pop("limits", None) or {}).items()
              if k != "requests_per_second"}
    if limits:
        basis["limits"] = limits
    text = json.dumps(basis, sort_keys=True, separators=(",", ":"), default=str)
    return "job-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _buckets(job: BulkJob) -> dict[str, set[str]]:
    named = {job.bucket}
    if job.report is not None:
        named.add(job.report.bucket)
    if job.selection.manifest is not None and job.selection.manifest.bucket:
        named.add(job.selection.manifest.bucket)
    return {job.provider: named}


def _service(settings: Settings, tally: Tally) -> RestoreService:
    sink = LogSink(sys.stderr) if settings.event_sink == "log" else None
    try:
        return RestoreService(settings, sink=sink, providers=_CountingRegistry(settings, tally))
    except ConfigurationError as exc:
        raise CliError(EXIT_CONFIG, str(exc)) from None


def _error_exit(error: ErrorInfo) -> int:
    if error.code in (ErrorCode.CONFIGURATION, ErrorCode.BUCKET_NOT_ALLOWED):
        return EXIT_CONFIG
    return EXIT_RETRYABLE if error.retryable else EXIT_FAILED


def _failure(exc: Exception, out: Output) -> int:
    """A submission or report failure as its exit code (unknown exceptions propagate)."""
    error = bulk_error(exc)
    if error is None:
        raise exc
    _emit(out, {"error": error.model_dump(mode="json", exclude_none=True)},
          f"error: {error.code.value}: {error.message}", stream=sys.stderr)
    return _error_exit(error)


def _emit(out: Output, doc: dict[str, Any], text: str, *, stream: TextIO | None = None) -> None:
    if out.as_json:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()
    else:
        target = stream or sys.stdout
        target.write(text + "\n")
        target.flush()


def cmd_bulk(args: argparse.Namespace, out: Output) -> int:
    payload = _job_payload(args)
    try:
        job = parse_job(payload)
    except RequestValidationError as exc:
        if out.as_json:
            _emit(out, {"error": exc.to_dict()}, "")
        raise CliError(EXIT_BAD_INPUT, _problems_text(exc)) from None
    settings = build_settings(args, _buckets(job))
    settings = settings.model_copy(update={"bulk_max_instances": args.instances})
    tally = Tally()
    service = _service(settings, tally)
    if job.dry_run:
        bulk = BulkService(service, None, use_settings_queue=False)
        try:
            summary = bulk.submit(job)
        except Exception as exc:
            return _failure(exc, out)
        _emit(out, summary_dict(summary), describe_plan(summary))
        return EXIT_OK
    return _run(job, service, tally, args, out)


def _run(job: BulkJob, service: RestoreService, tally: Tally, args: argparse.Namespace,
         out: Output) -> int:
    holder: list[BulkService] = []

    def deliver(data: bytes) -> None:
        holder[0].work(json.loads(data))  # raises: redelivered, at most REDELIVERIES times

    queue = InProcessQueue(deliver, instances=args.instances, redeliveries=REDELIVERIES)
    bulk = BulkService(service, _CountingQueue(queue, tally), use_settings_queue=False)
    holder.append(bulk)
    service.bulk_service = bulk
    params = job.params()
    try:
        before = bulk.progress(params)
    except Exception as exc:
        return _failure(exc, out)
    if before.state == "completed":
        _note(f"job {job.job_id} already completed; pass --job-id (or a new job_id) to run it "
              "again")
        return _finish(out, job, before, tally, None, 0.0, unfinished=0)
    tally.done_before = before.objects_done if isinstance(before, Progress) else 0
    if tally.done_before:
        _note(f"resuming job {job.job_id}: {tally.done_before} objects already done")
    else:
        _note(f"job {job.job_id} (rerun the same command to resume it if interrupted)")
    progress = BulkProgress(sys.stderr, tally, interval=args.progress_interval)
    if isinstance(service.sink, LogSink):
        service.sink = _SinkBesideProgress(service.sink, progress)
    progress.start()
    failure: Exception | None = None
    summary: PlanSummary | None = None
    final: AnyProgress | None = None
    try:
        try:
            summary = bulk.submit(job)
            tally.plan_finished(summary)
            if isinstance(summary, ServerSidePlan):
                tally.operation = summary.operation or "operation"
                final = _poll_operation(bulk, params, tally)
        except Exception as exc:  # chunks already queued still finish: a rerun skips them
            failure = exc
        _join(queue)
    except KeyboardInterrupt:
        progress.stop()
        _note(f"interrupted: rerun the same command to resume job {job.job_id} (finished "
              "chunks are kept)")
        return EXIT_INTERRUPTED
    progress.stop()
    queue.close()
    if failure is not None:
        return _failure(failure, out)
    if final is None:
        try:
            final = bulk.progress(params)
        except Exception as exc:
            return _failure(exc, out)
    unfinished = len(queue.failures)
    if unfinished:
        _note(f"{unfinished} chunk(s) did not finish; rerun the same command to resume job "
              f"{job.job_id}")
    return _finish(out, job, final, tally, summary, time.monotonic() - progress.started,
                   unfinished=unfinished)


def _poll_operation(bulk: BulkService, params: Any, tally: Tally) -> OperationProgress:
    """Poll a server-side job's operation until it is done (the poll that sees it done
    finishes the job: summary.json and the job event)."""
    interval = POLL_FIRST
    while True:
        progress = bulk.poll_operation(params)
        tally.polled(progress)
        if progress.state != "running":
            return progress
        time.sleep(interval)
        interval = min(interval * POLL_GROWTH, POLL_MAX)


def _join(queue: InProcessQueue) -> None:
    """queue.join() in a helper thread, so Ctrl-C reaches this one at once."""
    finished = threading.Event()

    def join() -> None:
        queue.join()
        finished.set()

    threading.Thread(target=join, daemon=True).start()
    while not finished.wait(0.2):
        pass


def _finish(out: Output, job: BulkJob, progress: AnyProgress, tally: Tally,
            summary: PlanSummary | None, elapsed: float, *, unfinished: int) -> int:
    _emit(out, _result_doc(job, progress, tally, summary, elapsed, unfinished=unfinished),
          describe_result(job, progress, tally, elapsed, unfinished=unfinished))
    return _result_exit(progress, unfinished=unfinished)


def _result_exit(progress: AnyProgress, *, unfinished: int) -> int:
    if isinstance(progress, OperationProgress) and progress.state == "failed":
        error = progress.error
        return _error_exit(error) if error is not None else EXIT_FAILED
    if unfinished or progress.state != "completed":
        return EXIT_RETRYABLE
    if any(progress.counts.get(status) for status in _NOT_DONE):
        return EXIT_FAILED
    return EXIT_OK


# -- output ------------------------------------------------------------------------------------
def _result_doc(job: BulkJob, progress: AnyProgress, tally: Tally, summary: PlanSummary | None,
                elapsed: float, *, unfinished: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"job_id": job.job_id,
                           "state": "incomplete" if unfinished else progress.state}
    if isinstance(progress, Progress):
        doc.update(planned_objects=progress.planned_objects,
                   planned_chunks=progress.planned_chunks, chunks_done=progress.chunks_done)
    else:
        doc.update(mode="server_side", operation=progress.operation)
        if progress.error is not None:
            doc["error"] = progress.error.model_dump(mode="json", exclude_none=True)
    doc.update(objects_done=progress.objects_done, counts=progress.counts,
               skipped=progress.skipped, done_before=tally.done_before,
               done_this_run=tally.done, unfinished_chunks=unfinished,
               elapsed_seconds=round(elapsed, 3))
    if progress.report is not None:
        doc["report"] = progress.report
    if summary is not None:
        doc["plan"] = summary_dict(summary)
    return doc


def _table(heading: str, rows: list[tuple[str, int]]) -> list[str]:
    width = max([len(name) for name, _ in rows] + [len(heading)])
    lines = [f"  {heading:<{width}}  {'objects':>8}"]
    lines.extend(f"  {name:<{width}}  {count:>8}" for name, count in rows)
    return lines


def describe_result(job: BulkJob, progress: AnyProgress, tally: Tally, elapsed: float, *,
                    unfinished: int) -> str:
    complete = progress.state == "completed" and not unfinished
    state = progress.state if progress.state == "failed" else \
        "completed" if complete else "incomplete"
    head = f"job {job.job_id} {state} in {_duration(elapsed)}: "
    if isinstance(progress, Progress):
        planned = progress.planned_objects if progress.planned_objects is not None else "?"
        head += (f"{progress.objects_done} of {planned} objects done ({tally.done} this run, "
                 f"{tally.done_before} before), {progress.chunks_done} of "
                 f"{progress.planned_chunks or '?'} chunks")
    else:
        head += (f"{progress.objects_done} objects done server-side (objects.bulkRestore "
                 f"{progress.operation or '?'})")
    rows = [(status, count) for status, count in sorted(progress.counts.items())]
    rows.append(("total", progress.objects_done))
    rows += [(f"skipped: {reason}", count) for reason, count in sorted(progress.skipped.items())]
    lines = [head, *_table("status", rows)]
    if isinstance(progress, OperationProgress) and progress.error is not None:
        lines.append(f"error: {progress.error.code.value}: {progress.error.message}")
    if progress.report is not None:
        lines.append("report: " + "\n        ".join(progress.report.values()))
    elif not complete:
        lines.append("report: not assembled yet (rerun the same command to finish the job)")
    return "\n".join(lines)


def describe_plan(summary: PlanSummary) -> str:
    lines = [f"dry run of job {summary.job_id}: {summary.objects} objects in {summary.chunks} "
             "chunks would be restored (nothing was restored)"]
    rows = [(name, count) for name, count in sorted(summary.by_storage_class.items())]
    rows += [(f"skipped: {reason}", count) for reason, count in sorted(summary.skipped.items())]
    if rows:
        lines.extend(_table("storage class", rows))
    if summary.truncated_at_max_objects:
        lines.append("  (stopped at limits.max_objects)")
    if summary.expected_completion_before is not None:
        lines.append(f"expected completion: between {_when(summary.expected_completion_after)} "
                     f"and {_when(summary.expected_completion_before)}")
    if isinstance(summary, ServerSidePlan):
        lines.append("mode: server_side (one objects.bulkRestore call: "
                     f"{json.dumps(summary.request)})")
    else:
        lines.append(f"rate: {summary.rate_per_worker}/s per worker, {summary.max_instances} "
                     "workers")
    return "\n".join(lines)


# -- arguments ---------------------------------------------------------------------------------
def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_bulk_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    bulk = commands.add_parser(
        "bulk", parents=parents, epilog=BULK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="run a bulk restore job here (dry run, progress, resumable, summary table)",
        description="Run a bulk job (restorefn.bulk.v1) in this process: plan, restore every "
                    "selected object with --instances workers, write the report, print a "
                    "summary. Flags fill in or override the job file.",
    )
    bulk.add_argument("job", nargs="?", metavar="JOB.json",
                      help="the job as JSON (- for stdin); optional when flags name the job")
    bulk.add_argument("--dry-run", action="store_true",
                      help="count what would be restored; restore nothing")
    bulk.add_argument("--instances", type=_count, default=DEFAULT_INSTANCES, metavar="N",
                      help=f"worker threads sharing the rate (default {DEFAULT_INSTANCES})")
    bulk.add_argument("--rate", type=_positive, metavar="R",
                      help="restore requests per second for the whole job (capped by the "
                           "provider's configured limit)")
    bulk.add_argument("--progress-interval", type=_positive, default=DEFAULT_PROGRESS_INTERVAL,
                      metavar="S", help="seconds between progress lines when stderr is not a "
                                        "terminal (default 5)")
    job = bulk.add_argument_group("the job (override the file)")
    job.add_argument("--job-id", help="default: the job file's, else derived from the job")
    job.add_argument("--provider", choices=("cos", "gcs"))
    job.add_argument("--bucket")
    job.add_argument("--region", help="COS region")
    job.add_argument("--days", type=int, help="COS: days the restored copies stay readable")
    job.add_argument("--tier", help="COS: Expedited, Standard (default) or Bulk")
    job.add_argument("--prefix", help="select the objects under this prefix")
    job.add_argument("--glob", action="append", metavar="GLOB",
                     help="select names matching (repeatable)")
    job.add_argument("--manifest", metavar="[BUCKET:]KEY",
                     help="select the objects a CSV/JSONL manifest names")
    job.add_argument("--report", metavar="BUCKET[/PREFIX]", help="where the report goes")
    job.add_argument("--chunk-size", type=_count, metavar="N", help="objects per chunk")
    bulk.set_defaults(handler=cmd_bulk)
