"""One bulk job run the way a deployment runs it, in a process of its own:

    python bench/hosts/bulk_job.py SPEC.json

SPEC: ``{"env": {...}, "job": {...}}``. ``env`` is what a deployment sets (``RESTORE_*``,
``COS_*``, ``GCS_ENDPOINT``): the settings are read from it with ``Settings.from_env``, as the
functions read theirs. The job is submitted to a ``BulkService`` whose chunk queue is an
``InProcessQueue`` of ``RESTORE_BULK_MAX_INSTANCES`` workers (each one a function instance,
with ``RESTORE_BULK_WORKER_THREADS`` requests in flight), the same ``process_message`` the queue
functions run consuming every chunk message. A GCS job that goes server-side (one
``objects.bulkRestore``) is polled until its operation ends.

Prints one line ``@@bench@@ {json}``: the plan summary, the job's final progress, the events
published, redeliveries, the seconds from submission to the end, and the process's peak RSS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

MARKER = "@@bench@@ "
POLL_INTERVAL = 0.02  # seconds between looks at a server-side operation
POLL_DEADLINE = 600.0


class CountingSink:
    """Keeps only the events' types: what was published, not the bulk of it."""

    def __init__(self) -> None:
        self.types: list[str] = []

    def publish(self, event: Any) -> None:
        self.types.append(event.type)


def peak_rss_kib() -> int:
    """VmHWM: this process's own peak (``ru_maxrss`` would carry the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from shared.bulk.queues import InProcessQueue
    from shared.bulk.service import BulkService
    from shared.config import Settings
    from shared.queue import process_message
    from shared.service import RestoreService

    settings = Settings.from_env(spec["env"])
    sink = CountingSink()
    service = RestoreService(settings, sink=sink)
    redeliveries: list[str] = []

    def deliver(data: bytes) -> None:
        result = process_message(service, data)
        if result.retry:
            redeliveries.append("retry")
            raise RuntimeError("redeliver")

    queue = InProcessQueue(deliver, instances=settings.bulk_max_instances)
    bulk = BulkService(service, queue)
    service.bulk_service = bulk
    job = spec["job"]
    started = time.perf_counter()
    summary = bulk.submit(job)
    queue.close()
    ref = {"provider": job["provider"], "bucket": job["bucket"], "region": job.get("region"),
           "job_id": summary.job_id, "report": job["report"]}
    progress = bulk.progress(ref)
    deadline = time.monotonic() + POLL_DEADLINE
    while getattr(progress, "mode", None) == "server_side" and progress.state == "running":
        if time.monotonic() > deadline:
            raise TimeoutError("the bulkRestore operation did not end")
        time.sleep(POLL_INTERVAL)
        progress = bulk.poll_operation(ref)
    seconds = time.perf_counter() - started
    return {"summary": summary.model_dump(mode="json"),
            "progress": progress.model_dump(mode="json"), "events": sink.types,
            "redeliveries": len(redeliveries), "queue_failures": queue.failures,
            "seconds": seconds, "peak_rss_kib": peak_rss_kib()}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = run(spec)
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # worker threads are idle daemons; the interpreter's teardown adds nothing


if __name__ == "__main__":
    main()
