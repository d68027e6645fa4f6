"""Bulk chunks over the real Pub/Sub emulator: the planner publishes, a pull feeds the workers."""

from __future__ import annotations

import base64
import json
import uuid

import requests

from emulators._http import RunningEmulator
from shared.bulk.service import bulk_for
from shared.queue import process_message
from shared.service import RestoreService
from tests.bulk.conftest import REPORT_BUCKET, cos_job
from tests.conftest import COS_BUCKET, CollectingSink, make_settings
from tests.pubsub.conftest import PubSubEmulator

PROJECT = "restorefn-test"


def _topic(base: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    topic = f"projects/{PROJECT}/topics/restore-requests-{suffix}"
    subscription = f"projects/{PROJECT}/subscriptions/restore-workers-{suffix}"
    assert requests.put(f"{base}/v1/{topic}", json={}, timeout=10).status_code == 200
    assert requests.put(f"{base}/v1/{subscription}", json={"topic": topic},
                        timeout=10).status_code == 200
    return topic, subscription


def _pull(base: str, subscription: str) -> list[dict[str, object]]:
    answer = requests.post(f"{base}/v1/{subscription}:pull",
                           json={"maxMessages": 100, "returnImmediately": True}, timeout=10)
    received = answer.json().get("receivedMessages", [])
    if received:
        requests.post(f"{base}/v1/{subscription}:acknowledge",
                      json={"ackIds": [m["ackId"] for m in received]}, timeout=10)
    return [m["message"] for m in received]


def test_planner_publishes_chunks_that_the_queue_core_works(
        pubsub_emulator: PubSubEmulator, cos_emulator: RunningEmulator) -> None:
    emulator = cos_emulator.emulator
    emulator.create_bucket(REPORT_BUCKET)
    keys = [f"ps/{i:02d}.gz" for i in range(7)]
    for key in keys:
        emulator.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
    topic, subscription = _topic(pubsub_emulator.url)
    settings = make_settings(cos_emulator, bulk_queue="pubsub", bulk_pubsub_topic=topic,
                             event_pubsub_endpoint=pubsub_emulator.url)
    sink = CollectingSink()
    service = RestoreService(settings, sink=sink)

    queued = process_message(service, json.dumps(cos_job(
        job_id="job-pubsub", selection={"prefix": "ps/"}, limits={"chunk_size": 3})))
    assert not queued.retry and queued.bulk is not None and queued.bulk["chunks"] == 3

    messages = _pull(pubsub_emulator.url, subscription)
    assert len(messages) == 3
    assert {m["attributes"]["restorefn-kind"] for m in messages} == {"restorefn.bulk.chunk.v1"}
    for message in messages:
        result = process_message(service, base64.b64decode(message["data"]))
        assert not result.retry
    restored = sorted(r["key"] for r in emulator.restore_requests())
    assert restored == keys
    assert [e.type for e in sink.events] == ["restorefn.bulk.job.v1.completed"]
    assert bulk_for(service).progress({
        "provider": "cos", "bucket": COS_BUCKET, "region": "ap-guangzhou",
        "job_id": "job-pubsub", "report": {"bucket": REPORT_BUCKET, "prefix": "reports"},
    }).state == "completed"
