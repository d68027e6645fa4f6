"""A bulk job's function side in its own process, so its peak memory is its own.

``python -m tests.bulk.fanout_child COS_URL INSTANCES JOB_JSON``: plans and works the job with
an in-process queue of INSTANCES workers against the COS emulator at COS_URL, then prints one
JSON line: the plan summary, the report's counts, and this process's peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from shared.bulk.queues import InProcessQueue
from shared.bulk.service import BulkService
from shared.config import CosSettings, Settings
from shared.queue import process_message
from shared.service import RestoreService


class CountingSink:
    def __init__(self) -> None:
        self.types: list[str] = []

    def publish(self, event: Any) -> None:
        self.types.append(event.type)


def peak_rss_kib() -> int:
    """This process's own high-water RSS: VmHWM belongs to the address space exec created.

    ``getrusage().ru_maxrss`` would not do: Linux carries it over from the parent across fork
    and exec, so a child started by a big parent reports the parent's peak.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best there is


def main(argv: list[str]) -> int:
    url, instances, job = argv[0], int(argv[1]), json.loads(argv[2])
    settings = Settings(
        cos_allowed_buckets=("archive-*",), bulk_max_instances=instances,
        cos=CosSettings(secret_id=DEFAULT_SECRET_ID, secret_key=DEFAULT_SECRET_KEY,
                        endpoint=url, scheme="http"),
        cos_restore_rate=float(argv[3]) if len(argv) > 3 else 100.0,
    )
    sink = CountingSink()
    service = RestoreService(settings, sink=sink)
    retries: list[bool] = []

    def deliver(data: bytes) -> None:
        result = process_message(service, data)
        if result.retry:
            retries.append(True)
            raise RuntimeError("redeliver")

    queue = InProcessQueue(deliver, instances=instances)
    bulk = BulkService(service, queue)
    service.bulk_service = bulk
    summary = bulk.submit(job)
    queue.close()
    progress = bulk.progress({"provider": job["provider"], "bucket": job["bucket"],
                              "region": job.get("region"), "job_id": summary.job_id,
                              "report": job["report"]})
    peak_kib = peak_rss_kib()
    print(json.dumps({"summary": summary.model_dump(mode="json"),
                      "progress": progress.model_dump(mode="json"),
                      "events": sink.types, "redeliveries": len(retries),
                      "peak_rss_mib": peak_kib / 1024}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
