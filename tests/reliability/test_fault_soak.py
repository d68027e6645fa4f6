"""The fault soak (``tests/reliability/soak.py``) at a size ``make test`` can afford.

600 requests over Pub/Sub, CMQ and CKafka (batches among them) while COS, GCS and the event
collector fail, reset, lose answers, stall and throttle; the platform redelivers what asks for a
retry. Latency spikes are 200 ms here (2 s in ``make soak``). Every check the reconciliation
makes must come out clean, and every kind of fault must really have happened, so the test
cannot pass on a quiet run.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from emulators._http import FaultPlan, serve
from emulators.cos import CosEmulator
from emulators.gcs import GcsEmulator
from tests.reliability.soak import (
    GCS_BUCKET,
    KINDS,
    LEDGER_BUCKET,
    Delivery,
    EventCollector,
    Functions,
    SoakConfig,
    StderrTap,
    cmq_record,
    environment,
    function_env,
    label,
    run_soak,
    violations,
)

# Seed 3: its fault plans put several of every kind of fault within the first 300 GCS and 600
# COS calls, so a run this size cannot miss one (the draws are fixed by the seed).
SMALL = SoakConfig(requests=600, seed=3, latency_ms=200.0, latency_rate=0.01,
                   deadline_seconds=240.0)


@pytest.fixture(scope="module")
def report() -> dict:
    found = run_soak(SMALL)
    print(json.dumps({k: v for k, v in found.items() if k != "config"}, indent=1))
    return found


def test_every_request_ends_in_exactly_one_terminal_event(report):
    assert report["settled"], "the queue did not drain before the deadline"
    assert violations(report) == {}, json.dumps(report["examples"], indent=1)
    # Spelled out, for the message when one of them is not zero.
    assert report["lost"] == 0
    assert report["doubled"] == 0
    assert report["accepted_not_once"] == 0
    assert report["wrong_outcome"] == 0
    assert report["request_id_mismatch"] == 0
    assert report["foreign_events"] == 0
    assert report["retryable_failure_events"] == 0
    # Each COS restore announced its acceptance once and then its completion once.
    cos_restores = report["kinds"]["cos_archived"]
    assert report["accepted_events"] == cos_restores
    assert report["terminal_events"] == report["requests"]


def test_no_permanent_error_is_retried(report):
    assert report["permanent_requests"] >= 0.2 * report["requests"]
    assert report["permanent_errors_retried"] == 0, report["examples"]
    assert report["refused_but_called"] == 0, report["examples"]
    assert report["extra_restores"] == 0, report["examples"]
    assert report["dead_lettered"] == 0
    assert report["bug_logs"] == 0, report["bug_log_examples"]


def test_every_fault_kind_was_injected_and_every_path_used(report):
    faults = report["faults_total"]
    for kind in ("500", "503", "429", "throttle", "reset", "lost_response", "latency"):
        assert faults.get(kind, 0) > 0, f"no {kind} fault in {faults}"
    assert report["faults"]["sink"], "the event collector never failed"
    assert set(report["kinds"]) == set(KINDS)
    deliveries = report["deliveries"]
    for route in ("pubsub", "cmq", "ckafka", "cos_notice"):
        assert deliveries.get(route, 0) > 0, f"nothing went through {route}"
    assert sum(report["redeliveries"].values()) > 0, "the platform never had to redeliver"
    assert report["messages"] < report["requests"], "no batches"
    assert report["cos_notifications"]["cos:ObjectRestore:Completed"] == report["kinds"][
        "cos_archived"]


# -- what the soak found, pinned down deterministically ---------------------------------------
def test_a_redelivered_batch_publishes_its_validation_rejection_once():
    """A CMQ batch: a GCS restore the provider refuses with 503 once, and an invalid request.
    The event is retried (the restore is retryable) and the retry succeeds; the invalid
    request's rejection must still go out once, not once per delivery."""
    config = SoakConfig(retry_base_seconds=0.001, retry_max_seconds=0.002)
    with contextlib.ExitStack() as stack:
        cos = stack.enter_context(serve(CosEmulator()))
        gcs = stack.enter_context(serve(GcsEmulator()))
        collector = EventCollector()
        sink = stack.enter_context(serve(collector))
        for bucket in (GCS_BUCKET, LEDGER_BUCKET):
            gcs.emulator.create_bucket(bucket)
        gcs.emulator.put_object(GCS_BUCKET, "kept.bin", b"kept")
        gcs.emulator.delete_object(GCS_BUCKET, "kept.bin")
        stack.enter_context(environment(function_env(config, cos.url, gcs.url, sink.url)))
        stack.enter_context(StderrTap().listening())
        functions = Functions()
        stack.callback(functions.reset)
        batch = {"requests": [
            {"provider": "gcs", "bucket": GCS_BUCKET, "object": "kept.bin", "request_id": "ok-1"},
            {"provider": "gcs", "bucket": GCS_BUCKET, "object": "x.bin", "request_id": "bad-1",
             "colour": "blue"},
        ]}
        delivery = Delivery("cmq", {"Records": [cmq_record(json.dumps(batch), 1)]}, 3)
        gcs.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_path="/restore"))
        first = functions.deliver(delivery)
        gcs.faults.clear()
        second = functions.deliver(delivery)
    assert (first, second) == (False, True)
    published = sorted((e["data"]["request_id"], label(e)) for e in collector.received())
    assert published == [("bad-1", "rejected:validation_failed"), ("ok-1", "completed")]
