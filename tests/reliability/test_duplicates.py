"""Every queue path with every message delivered three times, interleaved (A1 A2 B1 A3 B2 ...)
and concurrently (three threads released by a barrier, three function instances sharing a
ledger in a GCS-emulator bucket): exactly one restore per object at the provider (the
emulators' own request logs), one live GCS generation per object, each (request id, phase)
event published once, and every copy that reports an event naming that same event id.

Paths: Google Pub/Sub (``restore_pubsub``), the webhook (``restore_http``), Cloud Tasks
re-checks (``restore_recheck``), SCF CMQ and CKafka records, the COS trigger and TDMQ re-checks
(``main_handler``), and bulk chunks (``shared.queue.process_message``, what both queue entry
points run). Copies that ask for a retry (``duplicate_in_flight``: a twin holds the claim) are
redelivered until they settle.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import SecretStr

from emulators._http import RunningEmulator, serve
from emulators.cloudtasks import CloudTasksEmulator
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from emulators.tdmq import TdmqEmulator
from shared import auth
from shared.bulk.queues import ChunkQueue
from shared.bulk.schemas import BulkChunk
from shared.bulk.service import BulkService
from shared.ledger import DuplicateInFlight, Ledger, MemoryStore
from shared.ledger.stores import GcsStore, LedgerStore
from shared.outcome import Outcome, OutcomeStatus
from shared.providers.clients import gcs_client
from shared.queue import QueueResult, process_message
from shared.recheck import recheck_offsets
from shared.service import RestoreService
from tests.cloudtasks.conftest import QUEUE, Tasks
from tests.conftest import (
    COS_BUCKET,
    COS_REGION,
    GCS_BUCKET,
    CollectingSink,
    cos_request,
    gcs_request,
    make_settings,
)
from tests.gcp.conftest import RECHECK_INVOKER
from tests.gcp.test_recheck_function import body_of, deliver
from tests.reliability.conftest import (
    LEDGER_BUCKET,
    MODES,
    WEBHOOK_SECRET,
    Deliveries,
    EntryInstance,
    Mode,
    assert_reports_match,
    cos_restore_posts,
    gcs_restore_calls,
    live_generations,
    published_once,
    run_concurrently,
    sink_events,
)
from tests.tencent.conftest import golden

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
PUBSUB_SOURCE = "//pubsub.googleapis.com/projects/test-project/topics/restore-requests"
EXPEDITED = 60  # the COS emulator's ARCHIVE/Expedited restore, emulated seconds
RECHECKS = "restore-rechecks"

# Figures for the README's Reliability section: printed with -s.
FIGURES: dict[str, dict[str, int]] = {}


def provider_restores(cos: RunningEmulator | None = None,
                      gcs: RunningEmulator | None = None) -> int:
    return (sum(cos_restore_posts(cos).values()) if cos else 0) + (
        sum(gcs_restore_calls(gcs).values()) if gcs else 0)


def record(path: str, **figures: int) -> None:
    FIGURES[path] = figures
    print(f"\n[duplicates] {path}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def soft_deleted(gcs: RunningEmulator, *names: str) -> None:
    for name in names:
        gcs.emulator.put_object(GCS_BUCKET, name, f"bytes of {name}".encode())
        gcs.emulator.delete_object(GCS_BUCKET, name)


def archived(cos: RunningEmulator, *keys: str) -> None:
    for key in keys:
        cos.emulator.put_object(COS_BUCKET, key, b"archived", "ARCHIVE")


def events_of(instances: list[EntryInstance]) -> list[dict[str, Any]]:
    return [event for instance in instances for event in instance.events()]


def objects_of(events: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """(key, phase, provider) of each published event: one per object and phase expected."""
    phases = {"initiated": "accepted", "in_progress": "accepted"}
    return Counter((e["data"]["key"], phases.get(e["data"]["outcome"], "done"),
                    e["data"]["provider"]) for e in events)


class Spy:
    """Records what the real ``process_message`` (or another core call) returned to the entry
    module that called it, per delivery thread; the call itself is untouched."""

    def __init__(self) -> None:
        self._local = threading.local()

    def wrap(self, real: Callable[..., QueueResult]) -> Callable[..., QueueResult]:
        def recorded(*args: Any, **kwargs: Any) -> QueueResult:
            result = real(*args, **kwargs)
            self._local.results = [*getattr(self._local, "results", []), result]
            return result
        return recorded

    def start(self) -> None:
        self._local.results = []

    def taken(self) -> list[QueueResult]:
        results: list[QueueResult] = getattr(self._local, "results", [])
        self._local.results = []
        return results


def outcomes_of(deliveries: list[Any]) -> list[Outcome]:
    """The outcomes each settled copy reported (its last delivery)."""
    return [o for d in deliveries for result in d.result[1] for o in result.outcomes]


# -- Google: restore_pubsub ----------------------------------------------------------------------
def pubsub_body(payload: Any, message_id: str) -> bytes:
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    return json.dumps({"message": {"data": data, "messageId": message_id,
                                   "publishTime": "2026-11-20T10:00:00Z"},
                       "subscription": "projects/test-project/subscriptions/restore"}).encode()


def post_pubsub(instance: EntryInstance, body: bytes, message_id: str) -> Any:
    headers = {"ce-specversion": "1.0", "ce-type": PUBSUB_TYPE, "ce-source": PUBSUB_SOURCE,
               "ce-id": message_id, "Content-Type": "application/json"}
    return instance.client.post("/", data=body, headers=headers)


def spied(instances: list[EntryInstance], monkeypatch: pytest.MonkeyPatch,
          *names: str) -> Spy:
    spy = Spy()
    for instance in instances:
        for name in names:
            monkeypatch.setattr(instance.module, name, spy.wrap(getattr(instance.module, name)))
    return spy


@pytest.mark.parametrize("mode", MODES)
def test_pubsub_messages_three_times_restore_each_object_once(
    mode: Mode, gcp_instances, cos_emulator, gcs_emulator, monkeypatch
):
    soft_deleted(gcs_emulator, "ps/g1.txt", "ps/g2.txt")
    archived(cos_emulator, "ps/c1.bin", "ps/c2.bin")
    instances = gcp_instances("restore_pubsub")
    spy = spied(instances, monkeypatch, "process_message")
    messages = [  # (messageId, data): ids derived from the messageId where none is given
        ("ps-m1", gcs_request("ps/g1.txt")),
        ("ps-m2", cos_request("ps/c1.bin", request_id="ps-c1")),
        ("ps-m3", {"requests": [gcs_request("ps/g2.txt"), cos_request("ps/c2.bin")]}),
    ]

    def deliver_copy(message: tuple[str, Any], index: int) -> tuple[int, list[QueueResult]]:
        spy.start()
        answer = post_pubsub(instances[index], pubsub_body(message[1], message[0]), message[0])
        return answer.status_code, spy.taken()

    runs = Deliveries(deliver_copy, asks_retry=lambda r: r[0] != 200)
    settled = runs.run(messages, mode)

    assert cos_restore_posts(cos_emulator) == {"ps/c1.bin": 1, "ps/c2.bin": 1}
    assert gcs_restore_calls(gcs_emulator) == {"ps/g1.txt": 1, "ps/g2.txt": 1}
    for name in ("ps/g1.txt", "ps/g2.txt"):
        assert len(live_generations(gcs_emulator, GCS_BUCKET, name)) == 1
    events = events_of(instances)
    ids = published_once(events)
    assert objects_of(events) == Counter({
        ("ps/g1.txt", "done", "gcs"): 1, ("ps/g2.txt", "done", "gcs"): 1,
        ("ps/c1.bin", "accepted", "cos"): 1, ("ps/c2.bin", "accepted", "cos"): 1,
    })
    compared = assert_reports_match(outcomes_of(settled), ids)
    assert compared == 3 * 4  # three copies of four requests, each settled with its outcome
    record(f"pubsub/{mode}", messages=len(messages), requests=len(ids), copies=len(settled),
           deliveries=len(runs.log), redeliveries=runs.redeliveries,
           provider_restores=provider_restores(cos_emulator, gcs_emulator),
           live_generations=sum(len(live_generations(gcs_emulator, GCS_BUCKET, n))
                                for n in ("ps/g1.txt", "ps/g2.txt")),
           events=len(events), event_ids_compared=compared)


# -- Google: restore_http (the webhook) ----------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_webhook_posts_three_times_restore_once_and_answer_alike(
    mode: Mode, gcp_instances, gcs_emulator
):
    soft_deleted(gcs_emulator, "wh/g1.txt", "wh/g2.txt")
    instances = gcp_instances("restore_http")
    secret = SecretStr(WEBHOOK_SECRET)
    requests = [gcs_request("wh/g1.txt", request_id="wh-1"),
                gcs_request("wh/g2.txt", request_id="wh-2")]

    def deliver_copy(payload: dict[str, Any], index: int) -> Any:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **auth.sign(secret, body)}
        return instances[index].client.post("/", data=body, headers=headers)

    runs = Deliveries(deliver_copy, asks_retry=lambda r: r.status_code == 503)
    settled = runs.run(requests, mode)

    busy = [d.result for d in runs.log if d.result.status_code == 503]
    for answer in busy:  # a twin held the claim: come back later, nothing was done or published
        assert answer.headers.get("Retry-After")
        assert answer.get_json()["outcome"]["error"]["code"] == "duplicate_in_flight"
    assert gcs_restore_calls(gcs_emulator) == {"wh/g1.txt": 1, "wh/g2.txt": 1}
    for name in ("wh/g1.txt", "wh/g2.txt"):
        assert len(live_generations(gcs_emulator, GCS_BUCKET, name)) == 1
    ids = published_once(events_of(instances))
    assert set(ids) == {("wh-1", "done"), ("wh-2", "done")}
    for delivery in settled:
        answer = delivery.result
        assert answer.status_code == 200
        rid = delivery.message["request_id"]
        assert answer.get_json()["event_id"] == ids[(rid, "done")]
    record(f"webhook/{mode}", requests=len(requests), copies=len(settled),
           deliveries=len(runs.log), answered_503_in_flight=len(busy),
           provider_restores=provider_restores(gcs=gcs_emulator),
           live_generations=sum(len(live_generations(gcs_emulator, GCS_BUCKET, n))
                                for n in ("wh/g1.txt", "wh/g2.txt")),
           event_ids_compared=len(settled))


# -- Google: restore_recheck (Cloud Tasks) --------------------------------------------------------
@pytest.fixture
def cloud_tasks() -> Iterator[Tasks]:
    with CloudTasksEmulator([QUEUE], clock_factor=0.0) as emulator, serve(emulator) as running:
        yield Tasks(running)


@pytest.mark.parametrize("mode", MODES)
def test_cloud_tasks_rechecks_three_times_publish_completed_once(
    mode: Mode, gcp_instances, cos_emulator, cloud_tasks, monkeypatch
):
    archived(cos_emulator, "rc/a.bin")
    recheck_env = {
        "RESTORE_RECHECK_SCHEDULER": "cloudtasks", "RESTORE_RECHECK_CLOUDTASKS_QUEUE": QUEUE,
        "RESTORE_RECHECK_URL": "http://127.0.0.1:9/recheck",
        "RESTORE_RECHECK_SERVICE_ACCOUNT": RECHECK_INVOKER,
        "CLOUD_TASKS_EMULATOR_HOST": cloud_tasks.url,
    }
    queue_fns = gcp_instances("restore_pubsub", **recheck_env)
    recheck_fns = gcp_instances("restore_recheck", **recheck_env)

    def request_copy(message: tuple[str, Any], index: int) -> Any:
        return post_pubsub(queue_fns[index], pubsub_body(message[1], message[0]), message[0])

    asks_retry: Callable[[Any], bool] = lambda r: r.status_code != 200  # noqa: E731
    Deliveries(request_copy, asks_retry).run(
        [("rc-m1", cos_request("rc/a.bin", request_id="rc-1"))], mode)

    delivered: set[str] = set()
    answers: dict[int, list[dict[str, Any]]] = {}
    tasks_delivered = 0

    def task_copy(task: dict[str, Any], index: int) -> Any:
        return deliver(recheck_fns[index].client, task)

    # The restore takes 60 emulated seconds: the first look finds it running, the next done.
    for advance in (30, EXPEDITED):
        cos_emulator.emulator.clock.advance(advance)
        fresh = [t for t in cloud_tasks.emulator.tasks() if t["name"] not in delivered]
        assert len(fresh) == 1, [t["name"] for t in fresh]  # named tasks: one per check
        delivered.update(t["name"] for t in fresh)
        runs = Deliveries(task_copy, asks_retry)
        settled = runs.run(fresh, mode)
        tasks_delivered += len(runs.log)
        check = json.loads(body_of(fresh[0]))["check"]
        answers[check] = [d.result.get_json() for d in settled]

    results = {check: Counter(a["result"] for a in got) for check, got in answers.items()}
    assert results == {0: Counter({"rescheduled": 1, "duplicate": 2}),
                       1: Counter({"done": 1, "duplicate": 2})}
    assert cos_restore_posts(cos_emulator) == {"rc/a.bin": 1}
    events = events_of(queue_fns) + events_of(recheck_fns)
    ids = published_once(events)
    assert set(ids) == {("rc-1", "accepted"), ("rc-1", "done")}
    [done] = [a for a in answers[1] if a["result"] == "done"]
    assert done["event_id"] == ids[("rc-1", "done")]
    record(f"cloudtasks-recheck/{mode}", tasks=len(delivered),
           copies=sum(len(got) for got in answers.values()), deliveries=tasks_delivered,
           provider_restores=provider_restores(cos_emulator), events=len(events),
           event_ids_compared=1)


# -- Tencent: CMQ and CKafka records through main_handler ------------------------------------------
def cmq_records(*bodies: tuple[str, Any]) -> dict[str, Any]:
    """One CMQ topic event, a record per (msgId, body), shaped like the golden one."""
    template = golden("scf_cmq_topic.json")["Records"][0]
    records = []
    for msg_id, body in bodies:
        record_ = json.loads(json.dumps(template))
        record_["CMQ"]["msgId"] = msg_id
        record_["CMQ"]["msgBody"] = json.dumps(body)
        records.append(record_)
    return {"Records": records}


def ckafka_record(offset: int, body: Any) -> dict[str, Any]:
    event = golden("scf_ckafka.json")
    event["Records"][0]["Ckafka"].update(offset=offset, msgBody=json.dumps(body))
    return event


def scf_deliver(instances: list[EntryInstance], spy: Spy) -> Callable[[Any, int], Any]:
    def deliver_copy(event: dict[str, Any], index: int) -> tuple[Any, list[QueueResult]]:
        spy.start()
        try:
            summary: Any = instances[index].module.main_handler(event, {"request_id": "inv"})
        except Exception as exc:  # RetryRequested: SCF retries the invocation
            summary = exc
        return summary, spy.taken()
    return deliver_copy


def scf_asks_retry(result: tuple[Any, list[QueueResult]]) -> bool:
    return isinstance(result[0], Exception)


@pytest.mark.parametrize("mode", MODES)
def test_cmq_and_ckafka_records_three_times_restore_each_object_once(
    mode: Mode, scf_instances, cos_emulator, gcs_emulator, monkeypatch
):
    archived(cos_emulator, "scf/c1.bin", "scf/c2.bin", "scf/k1.bin")
    soft_deleted(gcs_emulator, "scf/g1.txt")
    instances = scf_instances()
    spy = spied(instances, monkeypatch, "process_message")
    events_in = [
        cmq_records(("cmq-1", cos_request("scf/c1.bin")),
                    ("cmq-2", gcs_request("scf/g1.txt", request_id="scf-g1"))),
        cmq_records(("cmq-3", {"requests": [cos_request("scf/c2.bin")]})),
        ckafka_record(4711, cos_request("scf/k1.bin")),
    ]
    runs = Deliveries(scf_deliver(instances, spy), scf_asks_retry)
    settled = runs.run(events_in, mode)

    assert cos_restore_posts(cos_emulator) == {"scf/c1.bin": 1, "scf/c2.bin": 1,
                                               "scf/k1.bin": 1}
    assert gcs_restore_calls(gcs_emulator) == {"scf/g1.txt": 1}
    assert len(live_generations(gcs_emulator, GCS_BUCKET, "scf/g1.txt")) == 1
    events = events_of(instances)
    ids = published_once(events)
    assert objects_of(events) == Counter({
        ("scf/c1.bin", "accepted", "cos"): 1, ("scf/c2.bin", "accepted", "cos"): 1,
        ("scf/k1.bin", "accepted", "cos"): 1, ("scf/g1.txt", "done", "gcs"): 1,
    })
    compared = assert_reports_match(outcomes_of(settled), ids)
    assert compared == 3 * 4
    record(f"scf-cmq-ckafka/{mode}", scf_events=len(events_in), requests=len(ids),
           copies=len(settled), deliveries=len(runs.log), redeliveries=runs.redeliveries,
           provider_restores=provider_restores(cos_emulator, gcs_emulator),
           live_generations=len(live_generations(gcs_emulator, GCS_BUCKET, "scf/g1.txt")),
           events=len(events), event_ids_compared=compared)


# -- Tencent: the COS trigger --------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_cos_trigger_notifications_three_times_publish_completed_once(
    mode: Mode, scf_instances, cos_emulator, monkeypatch
):
    emulator = cos_emulator.emulator
    notifications: list[dict[str, Any]] = []
    emulator.restore_notify = notifications.append
    archived(cos_emulator, "trig/a.bin", "trig/b.bin", "trig/outside.bin")
    instances = scf_instances()
    spy = spied(instances, monkeypatch, "process_message", "handle_restore_notice")
    deliver_copy = scf_deliver(instances, spy)

    requests = [cmq_records((f"trig-m{i}", cos_request(key, request_id=f"trig-{i}")))
                for i, key in enumerate(("trig/a.bin", "trig/b.bin"))]
    first = Deliveries(deliver_copy, scf_asks_retry).run(requests, mode)
    # A restore started outside this deployment: its completion is named after the notice.
    outsider = RestoreService(make_settings(cos_emulator), sink=CollectingSink())
    outsider.handle(cos_request("trig/outside.bin"))

    posts = emulator.deliver_due_notifications()
    emulator.clock.advance(EXPEDITED + 1)
    completions = emulator.deliver_due_notifications()
    assert len(posts) == len(completions) == 3
    runs = Deliveries(deliver_copy, scf_asks_retry)
    settled = runs.run(posts + completions, mode)

    assert cos_restore_posts(cos_emulator) == {"trig/a.bin": 1, "trig/b.bin": 1,
                                               "trig/outside.bin": 1}
    events = events_of(instances)
    ids = published_once(events)
    assert objects_of(events) == Counter({
        ("trig/a.bin", "accepted", "cos"): 1, ("trig/a.bin", "done", "cos"): 1,
        ("trig/b.bin", "accepted", "cos"): 1, ("trig/b.bin", "done", "cos"): 1,
        ("trig/outside.bin", "done", "cos"): 1,
    })
    # The trigger completes the request that started each restore, under its own id.
    assert {("trig-0", "done"), ("trig-1", "done")} <= set(ids)
    completed_reports = outcomes_of(settled)
    assert [o.status for o in completed_reports] == [OutcomeStatus.COMPLETED] * 9
    compared = assert_reports_match(completed_reports + outcomes_of(first), ids)
    record(f"cos-trigger/{mode}", notifications=len(posts + completions), copies=len(settled),
           deliveries=len(runs.log), redeliveries=runs.redeliveries,
           provider_restores=provider_restores(cos_emulator), events=len(events),
           event_ids_compared=compared)


# -- Tencent: TDMQ delayed re-checks ---------------------------------------------------------------
@pytest.fixture
def tdmq_queue() -> Iterator[RunningEmulator]:
    emulator = TdmqEmulator(credentials={DEFAULT_SECRET_ID: DEFAULT_SECRET_KEY},
                            queues=[RECHECKS], push_interval=None)
    try:
        with serve(emulator) as running:
            yield running
    finally:
        emulator.close()


@pytest.mark.parametrize("mode", MODES)
def test_tdmq_rechecks_three_times_look_once_per_check_and_complete_once(
    mode: Mode, scf_instances, cos_emulator, tdmq_queue, monkeypatch
):
    offsets = recheck_offsets("ARCHIVE", "Expedited", 0.5)
    # Done a third of the way into the window: a few looks find it running, then done.
    cos_emulator.emulator.restore_durations[("ARCHIVE", "Expedited")] = (
        offsets[0] + (offsets[-1] / 1.5 - offsets[0]) / 3)
    archived(cos_emulator, "tq/a.bin")
    instances = scf_instances(
        RESTORE_RECHECK_SCHEDULER="tdmq", RESTORE_RECHECK_TDMQ_QUEUE=RECHECKS,
        TDMQ_ENDPOINT=f"127.0.0.1:{tdmq_queue.port}", TENCENTCLOUD_REGION=COS_REGION,
    )
    clock = cos_emulator.emulator.clock
    for instance in instances:  # the re-check schedule follows the emulated clocks
        instance.service.now = lambda: datetime.fromtimestamp(clock.now(), timezone.utc)
    spy = spied(instances, monkeypatch, "process_message")
    deliver_copy = scf_deliver(instances, spy)
    Deliveries(deliver_copy, scf_asks_retry).run(
        [cmq_records(("tq-m1", cos_request("tq/a.bin", request_id="tq-1")))], mode)

    tdmq = tdmq_queue.emulator
    looks: Counter[int] = Counter()
    copies = 0

    def pushed(event: dict[str, Any]) -> None:  # the queue's trigger: each message three times
        nonlocal copies
        runs = Deliveries(deliver_copy, scf_asks_retry)
        for delivery in runs.run([event], mode):
            for result in delivery.result[1]:
                check = json.loads(event["Records"][0]["CMQ"]["msgBody"])["check"]
                looks[check] += len(result.outcomes)  # outcomes only from a real look
        copies += len(runs.log)

    tdmq.set_queue_push(RECHECKS, pushed)
    for _ in range(60):
        pending = tdmq.queue_messages(RECHECKS)
        if not pending:
            break
        step = max(0.0, pending[0]["visible_at"] - tdmq.clock.now())
        tdmq.clock.advance(step)
        clock.advance(step)
        assert tdmq.deliver_due() >= 1
    assert tdmq.queue_messages(RECHECKS) == []

    assert cos_restore_posts(cos_emulator) == {"tq/a.bin": 1}
    assert looks and set(looks.values()) == {1}, looks  # every check looked once, by one copy
    events = events_of(instances)
    ids = published_once(events)
    assert set(ids) == {("tq-1", "accepted"), ("tq-1", "done")}
    assert [e["data"]["outcome"] for e in events if e["data"]["request_id"] == "tq-1"
            and e["data"]["outcome"] == "completed"] == ["completed"]
    record(f"tdmq-recheck/{mode}", checks=len(looks),
           messages=len(tdmq.consumed_messages(RECHECKS)), deliveries=copies,
           provider_restores=provider_restores(cos_emulator), events=len(events))


# -- bulk: the job and its chunks ----------------------------------------------------------------
class CapturingQueue:
    """The chunk queue a planner or a worker sends to: kept for the test to deliver."""

    def __init__(self, sent: list[bytes]) -> None:
        self._sent = sent

    def send(self, chunk: BulkChunk) -> None:
        self._sent.append(chunk.model_dump_json().encode())


REPORT_BUCKET = "archive-reports-1250000000"


@pytest.mark.parametrize("mode", MODES)
def test_bulk_job_and_chunks_three_times_restore_each_object_once(
    mode: Mode, service_instances, cos_emulator
):
    cos_emulator.emulator.create_bucket(REPORT_BUCKET)
    keys = [f"bulk/{i:02d}.bin" for i in range(12)]
    archived(cos_emulator, *keys)
    instances = service_instances(bulk_max_instances=2)
    sent: list[bytes] = []
    for instance in instances:
        queue: ChunkQueue = CapturingQueue(sent)
        instance.service.bulk_service = BulkService(instance.service, queue)
    job = {"kind": "restorefn.bulk.v1", "job_id": f"dup-{mode}", "provider": "cos",
           "bucket": COS_BUCKET, "region": COS_REGION, "days": 2, "tier": "Standard",
           "selection": {"prefix": "bulk/"}, "limits": {"chunk_size": 4},
           "report": {"bucket": REPORT_BUCKET, "prefix": "reports"}}

    def deliver_copy(data: bytes, index: int) -> QueueResult:
        return process_message(instances[index].service, data)

    runs = Deliveries(deliver_copy, asks_retry=lambda r: isinstance(r, Exception) or r.retry)
    runs.run([json.dumps(job).encode()], mode)  # the job itself, planned three times
    delivered = 0
    while delivered < len(sent):  # every chunk message (and any leftover) three times
        batch = sent[delivered:]
        delivered = len(sent)
        runs.run(batch, mode)

    assert cos_restore_posts(cos_emulator) == {key: 1 for key in keys}
    chunk_messages = len(sent)
    assert chunk_messages == 3 * 3  # three plannings of three chunks: nothing else was needed
    report = cos_emulator.emulator.object_body(REPORT_BUCKET, f"reports/dup-{mode}/report.csv")
    rows = report.decode().splitlines()[1:]
    assert sorted(row.split(",")[2] for row in rows) == keys  # each object once in the report
    events = [e for i in instances for e in sink_events(i.sink)]
    assert [e["type"] for e in events] == ["restorefn.bulk.job.v1.completed"]
    record(f"bulk/{mode}", objects=len(keys), job_copies=3, chunk_messages=chunk_messages,
           deliveries=len(runs.log), redeliveries=runs.redeliveries,
           provider_restores=provider_restores(cos_emulator), job_events=len(events))


# -- the claims themselves, on both stores ---------------------------------------------------------
def stores(gcs: RunningEmulator) -> dict[str, Callable[[], LedgerStore]]:
    shared_memory = MemoryStore()
    settings = make_settings(gcs=gcs)
    return {
        "memory": lambda: shared_memory,
        "gcs": lambda: GcsStore(LEDGER_BUCKET, "claims", lambda: gcs_client(settings.gcs), 5.0),
    }


@pytest.mark.parametrize("kind", ["memory", "gcs"])
def test_a_stale_claim_is_taken_over_by_exactly_one_copy(kind, gcs_emulator, ledger_bucket):
    """Three copies find a crashed holder's claim stale at once: one takes it over, the others
    are told to come back; the crashed holder, waking up, cannot drop the new holder's claim."""
    make_store = stores(gcs_emulator)[kind]
    now = [1000.0]
    crashed = Ledger(make_store(), claim_ttl_seconds=60, clock=lambda: now[0])
    stale = crashed.claim("requests/r-1/restoring")
    now[0] += 61
    ledgers = [Ledger(make_store(), claim_ttl_seconds=60, clock=lambda: now[0])
               for _ in range(3)]

    def take(ledger: Ledger) -> Callable[[], Any]:
        return lambda: ledger.claim("requests/r-1/restoring")

    results = run_concurrently([take(ledger) for ledger in ledgers])
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(r, DuplicateInFlight) for r in results if r not in won)
    stale.release()  # the old holder's release must not free the claim
    with pytest.raises(DuplicateInFlight):
        ledgers[0].claim("requests/r-1/restoring")
    won[0].release()
    ledgers[0].claim("requests/r-1/restoring").release()  # free again once its holder is done
