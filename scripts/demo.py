"""``make demo``: a real restore flow end to end on this machine, in well under a minute.

Starts the COS and GCS emulators, both Google functions as real functions-framework processes
and an event collector (``scripts.local``), seeds an archived COS object and a soft-deleted GCS
object, then:

1. restores the GCS object through the webhook (HTTP, HMAC-signed): synchronous, ``completed``;
2. restores the COS object through a Pub/Sub CloudEvent posted to the queue function:
   ``initiated``;
3. waits for the COS restore to finish (the emulator's clock runs 30x fast, so the Expedited
   restore's emulated minute takes about two seconds) and publishes ``completed``.

Every event the functions publish reaches the collector through the HTTP sink, signature checked,
and is printed as it arrives.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from scripts.local import LocalStack, local_stack
from shared.config import CosSettings, GcsSettings, Settings
from shared.outcome import OutcomeStatus
from shared.service import RestoreService
from shared.sinks.http import HttpSink

COS_BUCKET, COS_KEY = "demo-archive-1250000000", "logs/2026-11-19.tar.gz"
GCS_BUCKET, GCS_OBJECT = "demo-restore", "reports/q3.csv"
CLOCK_FACTOR = 30.0
TIMEOUT_SECONDS = 45.0
CONTEXT = {"demo": True, "ticket": "OPS-1234"}


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


def wait_for_cos_restore(stack: LocalStack, request: dict[str, Any], started: float) -> bool:
    """Poll HEAD until the restored copy is readable; the check publishes ``completed``."""
    settings = Settings(
        cos_allowed_buckets=("demo-*",),
        cos=CosSettings(secret_id=DEFAULT_SECRET_ID, secret_key=DEFAULT_SECRET_KEY,
                        endpoint=stack.cos.url, scheme="http"),
        gcs=GcsSettings(project="local"),
    )
    service = RestoreService(settings, sink=HttpSink(stack.events_url, secret=stack.secret))
    while service.check(request).status is OutcomeStatus.IN_PROGRESS:
        if time.monotonic() - started > TIMEOUT_SECONDS:
            return False
        time.sleep(0.25)
    return True


def main() -> int:
    started = time.monotonic()
    with local_stack(clock_factor=CLOCK_FACTOR) as stack:
        print(f"COS emulator {stack.cos.url} (clock x{CLOCK_FACTOR:g}), GCS emulator "
              f"{stack.gcs.url}")
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

        print("\n--- 3. waiting for the emulated COS restore to finish (polling HEAD)")
        finished = wait_for_cos_restore(stack, cos_request, started)
        events = printer.show_until(3) if finished else printer.show_until(2)
        refused = stack.collector.refused

    phases = [event["type"].rsplit(".", 1)[-1] for event in events]
    ok = (finished and status == 200 and 200 <= queue_status < 300 and refused == 0
          and phases == ["completed", "initiated", "completed"])
    elapsed = time.monotonic() - started
    print(f"\n{'OK' if ok else 'UNEXPECTED'}: {len(events)} events in {elapsed:.1f}s: "
          f"{', '.join(phases)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
