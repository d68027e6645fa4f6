"""Bulk jobs on SCF: a job message to ``main_handler`` publishes its chunks to the request topic
(PublishCmqMsg through the real TDMQ SDK); each chunk comes back as a CMQ topic event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType

import pytest

from emulators._http import RunningEmulator, serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from emulators.tdmq import TdmqEmulator
from tests.bulk.conftest import REPORT_BUCKET, cos_job
from tests.conftest import COS_BUCKET
from tests.tencent.conftest import cmq_event

REQUESTS, EVENTS = "restore-requests", "restore-events"


@pytest.fixture
def tdmq_running() -> Iterator[RunningEmulator]:
    emulator = TdmqEmulator(credentials={DEFAULT_SECRET_ID: DEFAULT_SECRET_KEY},
                            topics=[REQUESTS, EVENTS], push_interval=None)
    try:
        with serve(emulator) as running:
            yield running
    finally:
        emulator.close()


def test_job_fans_out_over_the_request_topic_and_chunks_run_in_main_handler(
        scf: ModuleType, monkeypatch: pytest.MonkeyPatch, cos_emulator: RunningEmulator,
        tdmq_running: RunningEmulator) -> None:
    for name, value in {
        "TDMQ_ENDPOINT": tdmq_running.url, "RESTORE_EVENT_TDMQ_REGION": "ap-guangzhou",
        "RESTORE_EVENT_SINK": "tdmq", "RESTORE_EVENT_TDMQ_TOPIC": EVENTS,
        "RESTORE_BULK_QUEUE": "tdmq", "RESTORE_BULK_TDMQ_TOPIC": REQUESTS,
    }.items():
        monkeypatch.setenv(name, value)
    scf.reset_service()
    cos = cos_emulator.emulator
    cos.create_bucket(REPORT_BUCKET)
    keys = [f"scf/{i}.gz" for i in range(5)]
    for key in keys:
        cos.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
    tdmq = tdmq_running.emulator

    scf.main_handler(cmq_event(json.dumps(cos_job(job_id="job-scf", selection={"prefix": "scf/"},
                                                  limits={"chunk_size": 2}))), {})
    chunks = [m["body"] for m in tdmq.topic_messages(REQUESTS)]
    assert [json.loads(c)["chunk_id"] for c in chunks] == ["c000001", "c000002", "c000003"]
    assert cos.restore_requests() == []  # the planner restores nothing itself

    scf.main_handler(cmq_event(*chunks), {})
    assert sorted(r["key"] for r in cos.restore_requests()) == keys
    events = [json.loads(m["body"]) for m in tdmq.topic_messages(EVENTS)]
    assert [e["type"] for e in events] == ["restorefn.bulk.job.v1.completed"]
    assert events[0]["data"]["counts"] == {"initiated": 5}
