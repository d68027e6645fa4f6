"""``make demo``: a real restore flow end to end on this machine, in well under a minute.

Starts the COS, GCS and Cloud Tasks emulators, the three Google functions as real
functions-framework processes and an event collector (``scripts.local``), seeds an archived COS
object and a soft-deleted GCS object, then:

1. restores the GCS object through the webhook (HTTP, HMAC-signed): synchronous, ``completed``;
2. restores the COS object through a Pub/Sub CloudEvent posted to the queue function:
   ``initiated``; the function schedules the first re-check as a (signed) Cloud Tasks task due
   at the lower bound of the Expedited window, 60 s later;
3. the Cloud Tasks emulator delivers that task to the ``restore_recheck`` function when it is
   due, which HEADs the object, finds the copy readable and publishes ``completed``. The
   emulators and the re-check schedule share one clock running 30x fast, so the emulated minute
   takes two real seconds.

Then the same flows through the Tencent SCF handler (``index.main_handler``) with real-shaped
events: an API Gateway POST (GCS, ``completed``), a CMQ topic message (COS, ``initiated``), and
the COS emulator's ``cos:ObjectRestore:Completed`` notification delivered to the handler when the
emulated restore finishes (COS trigger path, ``completed`` for the request that started it).

Last, a small COS bulk job (``shared.bulk``): 30 archived objects under a prefix, and two
STANDARD ones beside them that the listing skips. The job message goes through
``shared.queue.process_message``, the entry the queue functions run, whose planner fans it out in
chunks of 10 onto an in-process queue drained by two worker threads (standing in for Pub/Sub and
two function instances; each chunk goes through ``process_message`` too). The worker that
finishes the last chunk assembles the report in a COS report bucket and publishes
``restorefn.bulk.job.v1.completed``, which reaches the collector like every other event; the
demo prints the plan, the job's progress and the first lines of ``report.csv`` read back from
the emulator.

Every event reaches the collector through the HTTP sink, signature checked, and is printed as it
arrives.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from emulators.cloudtasks import parse_timestamp
from scripts.demo_tencent import (
    api_gateway_event,
    attach_cos_trigger,
    cmq_event,
    load_handler,
    wait_for_cos_trigger,
)
from scripts.local import LocalStack, function_environment, local_stack
from shared.bulk.queues import InProcessQueue
from shared.bulk.schemas import JobParams
from shared.bulk.service import BulkService, parse_job
from shared.config import Settings
from shared.queue import process_message
from shared.service import RestoreService

COS_BUCKET, COS_KEY = "demo-archive-1250000000", "logs/2026-11-19.tar.gz"
GCS_BUCKET, GCS_OBJECT = "demo-restore", "reports/q3.csv"
CLOCK_FACTOR = 30.0
TIMEOUT_SECONDS = 45.0
CONTEXT = {"demo": True, "ticket": "OPS-1234"}
BULK_PREFIX, BULK_ARCHIVED, BULK_STANDARD = "exports/2026-11/", 30, 2
BULK_JOB_ID, REPORT_BUCKET = "demo-bulk-1", "demo-reports-1250000000"  # both fit demo-*
BULK_INSTANCES, BULK_CHUNK_SIZE = 2, 10


class EventPrinter:
    """Prints the collector's events in arrival order, from the main thread."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.shown = 0

    def show_until(self, count: int) -> list[dict[str, Any]]:
        events = self.stack.collector.wait_for(count, timeout=TIMEOUT_SECONDS)
        for event in events[self.shown:]:
            print(f"\n=== event {event['type']}  (id {event['id']})")
            print(json.dumps(event, indent=2))
        self.shown = len(events)
        sys.stdout.flush()
        return events


def seed(stack: LocalStack) -> None:
    stack.cos_emulator.put_object(COS_BUCKET, COS_KEY, b"archived bytes " * 100, "ARCHIVE")
    stack.gcs_emulator.create_bucket(GCS_BUCKET)
    deleted = stack.gcs_emulator.put_object(GCS_BUCKET, GCS_OBJECT, b"q3,revenue\n1,2\n")
    stack.gcs_emulator.delete_object(GCS_BUCKET, GCS_OBJECT)
    print(f"seeded: cos://{COS_BUCKET}/{COS_KEY} (ARCHIVE), "
          f"gs://{GCS_BUCKET}/{GCS_OBJECT} (soft-deleted generation {deleted})")


class FunctionLogs:
    """Keeps the functions' log lines (JSON on stderr) to show what ``restore_recheck`` did."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._changed = threading.Condition()

    def __call__(self, target: str, line: str) -> None:
        with self._changed:
            self.lines.append((target, line))
            self._changed.notify_all()

    def rechecks(self) -> list[dict[str, Any]]:
        """``restore_recheck``'s "re-check handled" entries so far."""
        entries = []
        with self._changed:
            lines = list(self.lines)
        for target, line in lines:
            if target == "restore_recheck" and line.startswith("{"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("message") == "re-check handled":
                    entries.append(entry)
        return entries

    def wait_for_recheck(self, request_id: str, timeout: float) -> list[dict[str, Any]]:
        """Wait (on a condition) until restore_recheck logged the end of ``request_id``."""
        def done() -> bool:
            return any(e.get("request_id") == request_id and e.get("result") == "done"
                       for e in self.rechecks())

        with self._changed:
            self._changed.wait_for(done, timeout=timeout)
        return self.rechecks()


def show_recheck(stack: LocalStack, logs: FunctionLogs, request_id: str) -> bool:
    """Print how the re-check went; True when Cloud Tasks delivered it to restore_recheck (2xx)
    and restore_recheck completed ``request_id``."""
    url = stack.functions["restore_recheck"].url
    stack.tasks_emulator.wait_for_attempt(
        lambda a: a["url"] == url and a["outcome"] == "succeeded", timeout=TIMEOUT_SECONDS
    )
    entries = logs.wait_for_recheck(request_id, TIMEOUT_SECONDS)
    delivered = False
    for attempt in stack.recheck_attempts():
        print(f"Cloud Tasks emulator -> restore_recheck: task "
              f"{attempt['task'].rsplit('/', 1)[1][:12]}..., attempt {attempt['attempt']}, "
              f"HTTP {attempt['status']} ({attempt['outcome']})")
        delivered |= attempt["status"] == 200 and attempt["outcome"] == "succeeded"
    done = False
    for entry in entries:
        print(f"restore_recheck log: status {entry['status']}, result {entry.get('result')}, "
              f"request {entry.get('request_id')}, check {entry.get('check')}")
        done |= entry.get("result") == "done" and entry.get("request_id") == request_id
    return delivered and done


def first_recheck_delay(stack: LocalStack, request_id: str) -> float | None:
    """Emulated seconds between the restore's initiation and its first re-check."""
    for task in stack.tasks_emulator.tasks():
        message = json.loads(base64.b64decode(task["httpRequest"]["body"]))
        if message["request"]["request_id"] == request_id and message["check"] == 0:
            initiated = datetime.fromisoformat(message["initiated_at"].replace("Z", "+00:00"))
            scheduled = parse_timestamp(task["scheduleTime"]) / 1_000_000
            return scheduled - initiated.timestamp()
    return None


def run_tencent(stack: LocalStack, printer: EventPrinter) -> bool:
    """The same flows through the SCF handler: API Gateway, CMQ, then the COS trigger."""
    handler = load_handler(stack)
    name, key = "reports/q4.csv", "logs/2026-11-20.tar.gz"
    stack.gcs_emulator.put_object(GCS_BUCKET, name, b"q4,revenue\n3,4\n")
    stack.gcs_emulator.delete_object(GCS_BUCKET, name)
    stack.cos_emulator.put_object(COS_BUCKET, key, b"archived bytes " * 100, "ARCHIVE")

    print("\n--- 4. Tencent SCF, API Gateway event (signed): restore a soft-deleted GCS object")
    answer = handler.main_handler(api_gateway_event(stack, {
        "bucket": GCS_BUCKET, "object": name, "request_id": "demo-scf-gcs-1", "context": CONTEXT,
    }), {"request_id": "apigw-1"})
    print(f"integration response: statusCode {answer['statusCode']}, keys {sorted(answer)}")
    printer.show_until(4)

    delivered = attach_cos_trigger(stack, handler)
    print("\n--- 5. Tencent SCF, CMQ topic event: restore an archived COS object")
    summary = handler.main_handler(cmq_event({
        "Bucket": COS_BUCKET, "Region": "ap-guangzhou", "Key": key,
        "RestoreRequest": {"Days": 1, "CASJobParameters": {"Tier": "Expedited"}},
        "request_id": "demo-scf-cos-1", "context": CONTEXT,
    }, msg_id="demo-cmq-1"), {"request_id": "cmq-1"})
    print(f"handler summary: {json.dumps(summary)}")
    printer.show_until(5)

    print("\n--- 6. the COS emulator's cos:ObjectRestore:Completed notification -> main_handler")
    names = wait_for_cos_trigger(stack, delivered, TIMEOUT_SECONDS)
    print(f"COS trigger events delivered: {', '.join(names)}")
    return answer["statusCode"] == 200 and "cos:ObjectRestore:Completed" in names


def seed_bulk(stack: LocalStack) -> tuple[list[str], list[str]]:
    """The bulk job's objects under BULK_PREFIX: the archived keys, then the STANDARD ones."""
    archived = [f"{BULK_PREFIX}part-{i:03d}.parquet" for i in range(BULK_ARCHIVED)]
    standard = [f"{BULK_PREFIX}index-{i}.json" for i in range(BULK_STANDARD)]
    for key in archived:
        stack.cos_emulator.put_object(COS_BUCKET, key, b"archived part", "ARCHIVE")
    for key in standard:
        stack.cos_emulator.put_object(COS_BUCKET, key, b"{}", "STANDARD")
    stack.cos_emulator.create_bucket(REPORT_BUCKET)
    print(f"seeded: {len(archived)} ARCHIVE and {len(standard)} STANDARD objects under "
          f"cos://{COS_BUCKET}/{BULK_PREFIX}; report bucket cos://{REPORT_BUCKET}")
    return archived, standard


def bulk_runner(stack: LocalStack) -> tuple[BulkService, InProcessQueue]:
    """A restore service configured as the functions are (same emulators, the collector's HTTP
    sink, the demo-* allowlist), whose chunk queue is in-process: BULK_INSTANCES worker threads,
    each handing its chunk message to ``process_message`` as a queue function would."""
    env = function_environment(stack.cos.url, stack.gcs.url, events_url=stack.events_url,
                               secret=stack.secret)
    settings = Settings.from_env({**env, "RESTORE_BULK_MAX_INSTANCES": str(BULK_INSTANCES)})
    service = RestoreService(settings)

    def deliver(data: bytes) -> None:
        if process_message(service, data).retry:
            raise RuntimeError("chunk not finished: redeliver")  # as the platform's queue would

    queue = InProcessQueue(deliver, instances=BULK_INSTANCES)
    bulk = BulkService(service, queue)
    service.bulk_service = bulk  # what process_message's bulk_for() picks up
    return bulk, queue


def report_csv(bulk: BulkService, job: JobParams, url: str) -> list[dict[str, str]]:
    """Read report.csv back from the report bucket (through the COS SDK, as a consumer would)."""
    key = url.removeprefix(f"cos://{REPORT_BUCKET}/")
    text = (bulk.store_for(job).get(key) or b"").decode()
    lines = text.splitlines()
    print(f"report.csv ({url}), first lines:")
    for line in lines[:4]:
        print(f"  {line}")
    if len(lines) > 4:
        print(f"  ... {len(lines) - 4} more")
    return list(csv.DictReader(io.StringIO(text)))


def run_bulk(stack: LocalStack, printer: EventPrinter, count: int) -> bool:
    """A COS bulk job: plan, fan-out, per-chunk workers, report, job-completed event."""
    stack.cos_emulator.restore_notify = None  # the SCF COS trigger is not part of this step
    archived, standard = seed_bulk(stack)
    job = {
        "kind": "restorefn.bulk.v1", "job_id": BULK_JOB_ID, "provider": "cos",
        "bucket": COS_BUCKET, "region": "ap-guangzhou", "days": 1, "tier": "Expedited",
        "selection": {"prefix": BULK_PREFIX},
        # Well under the COS emulator's 100 restores/s, so no chunk is throttled.
        "limits": {"chunk_size": BULK_CHUNK_SIZE, "requests_per_second": 40},
        "report": {"bucket": REPORT_BUCKET, "prefix": "restorefn-reports"},
        "context": CONTEXT,
    }
    params = parse_job(job).params()
    bulk, queue = bulk_runner(stack)
    try:
        print(f"\n--- 7. bulk job: restore cos://{COS_BUCKET}/{BULK_PREFIX}* in chunks of "
              f"{BULK_CHUNK_SIZE}, {BULK_INSTANCES} worker instances")
        result = process_message(bulk.service, json.dumps(job).encode(),
                                 message_id="demo-bulk-msg-1")
        print(f"plan summary: {json.dumps(result.bulk)}")
        queue.join()  # every chunk (and any leftover chunk) handled
        events = printer.show_until(count)
        progress = bulk.report_for(params).progress()  # what the status operation answers
        print(f"progress: {progress.state}, {progress.chunks_done}/{progress.planned_chunks} "
              f"chunks, {progress.objects_done}/{progress.planned_objects} objects "
              f"{json.dumps(progress.counts)}, skipped {json.dumps(progress.skipped)}")
    finally:
        queue.close()
    if len(events) < count or not events[count - 1]["type"].startswith("restorefn.bulk.job."):
        return False
    data = events[count - 1]["data"]
    rows = report_csv(bulk, params, data["report_csv"])
    keys = [row["key"] for row in rows]
    print(f"report.csv: {len(rows)} rows, {len(set(keys))} distinct keys, "
          f"{len(set(keys) & set(archived))} of them ARCHIVE, "
          f"{len(set(keys) & set(standard))} STANDARD")
    return (result.bulk is not None and result.bulk["objects"] == BULK_ARCHIVED
            and data["total"] == BULK_ARCHIVED and progress.state == "completed"
            and sorted(keys) == sorted(archived) and not queue.failures)


def main(
    *, secret: SecretStr | None = None, logs: FunctionLogs | None = None,
    before_teardown: Callable[[LocalStack], None] | None = None,
) -> int:
    """The demo; ``secret`` (else a random one), ``logs`` and ``before_teardown`` let a test run
    it with known secret values, read every function log line and add calls of its own."""
    started = time.monotonic()
    logs = FunctionLogs() if logs is None else logs
    with local_stack(clock_factor=CLOCK_FACTOR, echo=logs, secret=secret) as stack:
        print(f"COS emulator {stack.cos.url}, Cloud Tasks emulator {stack.tasks.url} (one clock, "
              f"x{CLOCK_FACTOR:g}), GCS emulator {stack.gcs.url}")
        for target, function in stack.functions.items():
            print(f"{target} (functions-framework) {function.url}")
        seed(stack)
        printer = EventPrinter(stack)

        print("\n--- 1. webhook (signed POST): restore the soft-deleted GCS object")
        gcs_request = {"bucket": GCS_BUCKET, "object": GCS_OBJECT, "request_id": "demo-gcs-1",
                       "context": CONTEXT}
        status, answer = stack.post_webhook(gcs_request)
        print(f"HTTP {status}: outcome {answer['outcome']['status']}")
        printer.show_until(1)

        print("\n--- 2. Pub/Sub CloudEvent to the queue function: restore the archived COS object")
        cos_request = {"Bucket": COS_BUCKET, "Region": "ap-guangzhou", "Key": COS_KEY,
                       "RestoreRequest": {"Days": 2, "CASJobParameters": {"Tier": "Expedited"}},
                       "request_id": "demo-cos-1", "context": CONTEXT}
        queue_status, _ = stack.publish_to_queue_function(cos_request, message_id="demo-msg-1")
        print(f"HTTP {queue_status} (a 2xx acknowledges the message)")
        printer.show_until(2)
        delay = first_recheck_delay(stack, "demo-cos-1")
        print("first re-check scheduled on Cloud Tasks "
              + (f"{delay:.0f} s (emulated) after initiation" if delay is not None else "? (none)"))

        print("\n--- 3. Cloud Tasks delivers the re-check to restore_recheck, which completes it")
        events = printer.show_until(3)
        finished = (len(events) >= 3 and events[2]["type"].endswith(".completed")
                    and events[2]["data"]["request_id"] == "demo-cos-1"
                    and show_recheck(stack, logs, "demo-cos-1"))

        tencent_ok = run_tencent(stack, printer)
        printer.show_until(6)
        bulk_ok = run_bulk(stack, printer, 7)
        events = printer.show_until(7)
        refused = stack.collector.refused
        if before_teardown is not None:
            before_teardown(stack)

    phases = [event["type"].rsplit(".", 1)[-1] for event in events]
    ok = (finished and tencent_ok and bulk_ok and status == 200 and 200 <= queue_status < 300
          and refused == 0 and phases == ["completed", "initiated", "completed"] * 2
          + ["completed"])
    elapsed = time.monotonic() - started
    print(f"\n{'OK' if ok else 'UNEXPECTED'}: {len(events)} events in {elapsed:.1f}s: "
          f"{', '.join(phases)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
