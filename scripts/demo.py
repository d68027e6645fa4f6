"""``make demo``: a real restore flow end to end on this machine, in well under a minute.

Starts the COS and GCS emulators on free loopback ports, seeds an archived COS object and a
soft-deleted GCS object, restores both through the core (the official SDKs over HTTP), and prints
each completion event as it is published. The COS emulator's clock runs 30x fast, so the
Expedited restore (one emulated minute) finishes in about two seconds.
"""

from __future__ import annotations

import json
import sys
import time

from emulators._http import serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, CosEmulator
from emulators.gcs import GcsEmulator
from shared.config import CosSettings, GcsSettings, Settings
from shared.events import CloudEvent
from shared.outcome import OutcomeStatus
from shared.service import RestoreService

COS_BUCKET, COS_KEY = "demo-archive-1250000000", "logs/2026-11-19.tar.gz"
GCS_BUCKET, GCS_OBJECT = "demo-restore", "reports/q3.csv"
CLOCK_FACTOR = 30.0
TIMEOUT_SECONDS = 45.0


class PrintingSink:
    """Prints each CloudEvent as it is published; counts them for the final check."""

    def __init__(self) -> None:
        self.types: list[str] = []

    def publish(self, event: CloudEvent) -> None:
        self.types.append(event.type)
        print(f"\n=== event {event.type}  (id {event.id})")
        print(json.dumps(json.loads(event.to_json()), indent=2))
        sys.stdout.flush()


def main() -> int:
    started = time.monotonic()
    with serve(CosEmulator(clock_factor=CLOCK_FACTOR)) as cos, serve(GcsEmulator()) as gcs:
        print(f"COS emulator on {cos.url} (clock x{CLOCK_FACTOR:g}), GCS emulator on {gcs.url}")
        cos.emulator.put_object(COS_BUCKET, COS_KEY, b"archived bytes " * 100, "ARCHIVE")
        gcs.emulator.create_bucket(GCS_BUCKET)
        deleted = gcs.emulator.put_object(GCS_BUCKET, GCS_OBJECT, b"q3,revenue\n1,2\n")
        gcs.emulator.delete_object(GCS_BUCKET, GCS_OBJECT)
        print(f"seeded: cos://{COS_BUCKET}/{COS_KEY} (ARCHIVE), "
              f"gs://{GCS_BUCKET}/{GCS_OBJECT} (soft-deleted generation {deleted})")

        settings = Settings(
            cos_allowed_buckets=("demo-*",),
            gcs_allowed_buckets=("demo-*",),
            cos=CosSettings(secret_id=DEFAULT_SECRET_ID, secret_key=DEFAULT_SECRET_KEY,
                            endpoint=cos.url, scheme="http"),
            gcs=GcsSettings(project="demo", endpoint=gcs.url),
        )
        sink = PrintingSink()
        service = RestoreService(settings, sink=sink)
        context = {"demo": True, "ticket": "OPS-1234"}

        cos_request = {"Bucket": COS_BUCKET, "Region": "ap-guangzhou", "Key": COS_KEY,
                       "RestoreRequest": {"Days": 2, "CASJobParameters": {"Tier": "Expedited"}},
                       "request_id": "demo-cos-1", "context": context}
        gcs_request = {"bucket": GCS_BUCKET, "object": GCS_OBJECT, "request_id": "demo-gcs-1",
                       "context": context}

        print("\n--- restoring the soft-deleted GCS object (synchronous)")
        gcs_outcome = service.restore(gcs_request)
        print("\n--- restoring the archived COS object (asynchronous)")
        cos_outcome = service.restore(cos_request)

        print("\n--- waiting for the COS restore to finish (polling HEAD)")
        while True:
            checked = service.check(cos_request)
            if checked.status is not OutcomeStatus.IN_PROGRESS:
                break
            if time.monotonic() - started > TIMEOUT_SECONDS:
                print("COS restore did not finish in time", file=sys.stderr)
                return 1
            time.sleep(0.25)

    expected = [
        (gcs_outcome.status, OutcomeStatus.COMPLETED),
        (cos_outcome.status, OutcomeStatus.INITIATED),
        (checked.status, OutcomeStatus.COMPLETED),
    ]
    ok = all(got is want for got, want in expected)
    phases = ", ".join(t.rsplit(".", 1)[-1] for t in sink.types)
    elapsed = time.monotonic() - started
    print(f"\n{'OK' if ok else 'UNEXPECTED'}: {len(sink.types)} events in {elapsed:.1f}s: {phases}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
