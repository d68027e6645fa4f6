"""Fault soak: many restore requests through the real queue entry points while every emulator
misbehaves, then a reconciliation of each request against the events that came out.

Why this shape:

- **Real entry points, real SDKs, real HTTP.** Pub/Sub messages go to the Google queue function
  (``restore_pubsub`` in ``functions/gcp/main.py``) through functions-framework's test client;
  CMQ and CKafka events, and the COS restore notifications that finish COS restores, go to the
  SCF handler ``main_handler`` (``functions/tencent/index.py``). Both build their service from
  the environment, exactly as deployed: a shared ``gs://`` ledger (the configuration for more
  than one instance) and the HTTP event sink.
- **The platform is simulated, not mocked.** Messages are published at a steady rate onto an
  in-test queue; several worker threads are the concurrent invocations. A message whose
  invocation asks for a retry (a 500 from the Google function, an exception from the SCF
  handler) comes back as the platform would send it again (time scaled by 1/30): CMQ events and
  COS notifications 1 and 2 minutes later and then never (SCF's asynchronous retries), Pub/Sub
  with backoff from 10 s up to 10 deliveries (a dead-letter policy), CKafka until it succeeds.
- **Faults everywhere they occur in production.** COS and GCS answer 500/503 (GCS also 429),
  reset connections before handling a request and after handling it (the provider acted, the
  answer was lost), and stall for latency spikes; COS's restore rate limit throttles with 503
  SlowDown; the event collector fails too (500/503, resets), before it records anything. The
  ledger bucket is exempt by default: its store does not retry, so with ~20 ledger calls per
  request the same fault rates there fail most invocations (``--ledger-faults`` shows it).
- **COS restores are carried to their end.** The COS emulator's clock stands still while the
  requests are delivered, so no restore completes early; then it is stepped to the end of each
  restore duration in turn and the emulator's ``cos:ObjectRestore:*`` notifications go to the
  SCF handler (through the same faulty queue), which publishes each request's ``completed``.
- **Reconciliation from the outside.** Every request carries ``context.soak`` = its index, which
  every event echoes. Each request must end in exactly one terminal event (``completed``,
  ``already_restored``, ``rejected``, ``failed`` that is not retryable) of the expected kind, a
  COS restore also in exactly one accepted event (``initiated`` / ``in_progress``); every event
  of a request carries one request id. Provider calls come from the emulators' request logs: a
  request refused before the provider never reaches it, and a permanently failing object gets
  exactly one real answer (injected faults before it are fine) and nothing after it. A request
  whose event the sink lost is redone whole when its message comes back; its second answer is
  counted apart (``permanent_redone_after_lost_event``), not as a retry.

Run ``python -m tests.reliability.soak --requests 10000`` (``make soak``) for the full size; the
test (``test_fault_soak.py``) runs a smaller one with the latency spikes scaled down.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import heapq
import io
import itertools
import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from emulators._http import (
    FaultPlan,
    LoggedRequest,
    Request,
    Response,
    RunningEmulator,
    VirtualClock,
    serve,
)
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, CosEmulator
from emulators.gcs import GcsEmulator

ROOT = Path(__file__).resolve().parents[2]
GCP_SOURCE = ROOT / "functions" / "gcp" / "main.py"
SCF_DIR = ROOT / "functions" / "tencent"

COS_BUCKET = "archive-1250000000"
COS_REGION = "ap-guangzhou"
COS_REFUSED_BUCKET = "vault-1250000000"  # not in the allowlist
GCS_BUCKET = "restore-soak"
GCS_NO_SOFT_DELETE_BUCKET = "restore-nosd"
GCS_REFUSED_BUCKET = "private-data"
LEDGER_BUCKET = "soak-ledger"
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
DAY = 86_400.0

TERMINAL = {"completed", "already_restored", "rejected", "failed"}
ACCEPTED = {"initiated", "in_progress"}


# -- configuration -------------------------------------------------------------------------------
@dataclass
class SoakConfig:
    """One run. The defaults are the issue's figures; the test scales the latency spike down."""

    requests: int = 10_000
    seed: int = 7
    workers: int = 8
    error_rate: float = 0.05  # 500/503 (GCS: also 429, see throttle_share)
    throttle_share: float = 0.2  # of GCS's injected errors, answered 429
    reset_rate: float = 0.005  # connection reset before the request is handled
    lost_response_rate: float = 0.005  # handled, then reset: the answer never arrives
    latency_ms: float = 2000.0
    latency_rate: float = 0.002
    # Messages are published at a steady rate (about 30 requests, 11 COS restore POSTs a second)
    # under COS's restore rate limit: its SlowDowns come from bursts, as throttling does, not
    # from a backlog pushed through at whatever speed the machine has (that would be an
    # overload test, and one whose outcome depended on the machine).
    arrival_per_second: float = 12.0
    cos_restore_rate_limit: float = 15.0  # restore POSTs per second before 503 SlowDown
    sink_error_rate: float = 0.05
    sink_reset_rate: float = 0.01
    sink_attempts: int = 2  # RESTORE_EVENT_HTTP_ATTEMPTS: low, so lost events happen
    ledger_faults: bool = False
    provider_timeout_seconds: float = 5.0  # above the 2 s spike: a spike must be survivable
    retry_base_seconds: float = 0.5  # the production defaults: patient enough for SlowDown
    retry_max_seconds: float = 8.0
    # The platforms' redelivery timing, scaled down: SCF retries an asynchronous invocation (CMQ
    # topic, COS trigger) 1 min and then 2 min after a failure, Pub/Sub backs off from 10 s up
    # (capped here at redelivery_max_seconds). Even scaled, both stay above the 1 s window of
    # COS's rate limit: a redelivery inside the same throttled second would be throttled again.
    platform_time_scale: float = 1 / 30
    redelivery_max_seconds: float = 8.0
    pubsub_max_deliveries: int = 10  # the dead-letter policy's maximum delivery attempts
    scf_max_deliveries: int = 3  # an asynchronous invocation plus SCF's two retries
    ckafka_max_deliveries: int = 10_000  # the CKafka trigger's default retry count
    batch_share: float = 0.25  # of messages: a {"requests": [...]} batch of 2-5
    derived_id_share: float = 0.2  # of restorable requests: no request_id (the queue derives it)
    deadline_seconds: float = 1800.0


# -- the workload -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    """One request of the run and what must become of it."""

    index: int
    kind: str
    provider: str
    bucket: str
    key: str
    payload: dict[str, Any]
    expect: frozenset[str]  # acceptable terminal events: "completed", "failed:not_found", ...
    accepted: bool = False  # a COS restore: one initiated/in_progress event first
    calls: str = "any"  # "none": refused before the provider; "one": one answer, never retried

    @property
    def request_id(self) -> str | None:
        value = self.payload.get("request_id")
        return value if isinstance(value, str) else None


# kind -> weight; the permanent kinds share about a quarter of the requests.
KINDS: dict[str, float] = {
    "cos_archived": 0.36, "gcs_soft_deleted": 0.36,
    "cos_missing": 0.04, "cos_not_archived": 0.04, "cos_deep_expedited": 0.03,
    "gcs_missing": 0.04, "gcs_wrong_generation": 0.03, "gcs_live": 0.03,
    "gcs_no_soft_delete": 0.03, "not_allowed": 0.02, "invalid": 0.02,
}


class Workload:
    """Seeds the emulators and writes the requests, each of its own object."""

    def __init__(self, config: SoakConfig, cos: CosEmulator, gcs: GcsEmulator) -> None:
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - replayable, not secret
        self.cos = cos
        self.gcs = gcs

    def build(self) -> list[Planned]:
        kinds = list(KINDS)
        weights = [KINDS[k] for k in kinds]
        return [self._plan(i, self.rng.choices(kinds, weights)[0])
                for i in range(self.config.requests)]

    def _plan(self, index: int, kind: str) -> Planned:
        rng = self.rng
        rid: str | None = f"soak-{self.config.seed}-{index:05d}"
        context = {"soak": index}
        key = f"soak/{kind}/{index:05d}.bin"
        data = f"object {index}".encode()
        if kind == "cos_archived":
            storage_class = rng.choice(["ARCHIVE", "ARCHIVE", "DEEP_ARCHIVE"])
            tiers = ["Expedited", "Standard", "Bulk"] if storage_class == "ARCHIVE" else [
                "Standard", "Bulk"]
            self.cos.put_object(COS_BUCKET, key, data, storage_class)
            if rng.random() < self.config.derived_id_share:
                rid = None
            payload = _cos(key, rid, context, days=rng.randint(1, 7), tier=rng.choice(tiers))
            return Planned(index, kind, "cos", COS_BUCKET, key, payload,
                           frozenset({"completed"}), accepted=True)
        if kind == "cos_missing":
            return Planned(index, kind, "cos", COS_BUCKET, key, _cos(key, rid, context),
                           frozenset({"failed:not_found"}), calls="one")
        if kind == "cos_not_archived":
            self.cos.put_object(COS_BUCKET, key, data, "STANDARD")
            return Planned(index, kind, "cos", COS_BUCKET, key, _cos(key, rid, context),
                           frozenset({"rejected:not_archived"}), calls="one")
        if kind == "cos_deep_expedited":
            self.cos.put_object(COS_BUCKET, key, data, "DEEP_ARCHIVE")
            return Planned(index, kind, "cos", COS_BUCKET, key,
                           _cos(key, rid, context, tier="Expedited"),
                           frozenset({"rejected:tier_not_supported"}), calls="one")
        if kind == "gcs_soft_deleted":
            generation = self.gcs.put_object(GCS_BUCKET, key, data)
            self.gcs.delete_object(GCS_BUCKET, key)
            if rng.random() < self.config.derived_id_share:
                rid = None
            extra = {"generation": str(generation)} if rng.random() < 0.5 else {}
            return Planned(index, kind, "gcs", GCS_BUCKET, key,
                           _gcs(GCS_BUCKET, key, rid, context, **extra),
                           frozenset({"completed", "already_restored"}))
        if kind == "gcs_missing":
            return Planned(index, kind, "gcs", GCS_BUCKET, key, _gcs(GCS_BUCKET, key, rid, context),
                           frozenset({"failed:not_found"}), calls="one")
        if kind == "gcs_wrong_generation":
            generation = int(self.gcs.put_object(GCS_BUCKET, key, data))
            self.gcs.delete_object(GCS_BUCKET, key)
            payload = _gcs(GCS_BUCKET, key, rid, context, generation=str(generation + 1))
            return Planned(index, kind, "gcs", GCS_BUCKET, key, payload,
                           frozenset({"failed:not_found"}), calls="one")
        if kind == "gcs_live":
            generation = self.gcs.put_object(GCS_BUCKET, key, data)
            payload = _gcs(GCS_BUCKET, key, rid, context, generation=str(generation))
            return Planned(index, kind, "gcs", GCS_BUCKET, key, payload,
                           frozenset({"failed:object_not_soft_deleted"}), calls="one")
        if kind == "gcs_no_soft_delete":
            generation = self.gcs.put_object(GCS_NO_SOFT_DELETE_BUCKET, key, data)
            self.gcs.delete_object(GCS_NO_SOFT_DELETE_BUCKET, key)
            payload = _gcs(GCS_NO_SOFT_DELETE_BUCKET, key, rid, context,
                           generation=str(generation))
            return Planned(index, kind, "gcs", GCS_NO_SOFT_DELETE_BUCKET, key, payload,
                           frozenset({"failed:soft_delete_not_enabled"}), calls="one")
        if kind == "not_allowed":
            if rng.random() < 0.5:
                return Planned(index, kind, "cos", COS_REFUSED_BUCKET, key,
                               _cos(key, rid, context, bucket=COS_REFUSED_BUCKET),
                               frozenset({"rejected:bucket_not_allowed"}), calls="none")
            return Planned(index, kind, "gcs", GCS_REFUSED_BUCKET, key,
                           _gcs(GCS_REFUSED_BUCKET, key, rid, context),
                           frozenset({"rejected:bucket_not_allowed"}), calls="none")
        assert kind == "invalid"
        payload = rng.choice([
            _cos(key, rid, context, days=0),
            _cos(key, rid, context, tier="Fastest"),
            {**_gcs(GCS_BUCKET, key, rid, context), "colour": "blue"},
        ])
        return Planned(index, kind, payload["provider"], str(payload["bucket"]), key, payload,
                       frozenset({"rejected:validation_failed"}), calls="none")


def _cos(key: str, rid: str | None, context: dict[str, Any], *, days: int = 2,
         tier: str = "Standard", bucket: str = COS_BUCKET) -> dict[str, Any]:
    payload: dict[str, Any] = {"provider": "cos", "bucket": bucket, "region": COS_REGION,
                               "key": key, "days": days, "tier": tier, "context": context}
    if rid is not None:
        payload["request_id"] = rid
    return payload


def _gcs(bucket: str, name: str, rid: str | None, context: dict[str, Any],
         **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"provider": "gcs", "bucket": bucket, "object": name,
                               "context": context, **extra}
    if rid is not None:
        payload["request_id"] = rid
    return payload


# -- messages and the platform's redelivery ------------------------------------------------------
@dataclass
class Delivery:
    """One message (or SCF event) in flight; ``attempt`` counts its deliveries so far."""

    route: str  # "pubsub", "cmq", "ckafka" or "cos_notice"
    body: dict[str, Any]
    max_attempts: int
    attempt: int = 0
    requests: tuple[int, ...] = ()
    last_failure: str = ""  # why the last delivery was not acknowledged


def messages_for(plan: list[Planned], config: SoakConfig) -> list[Delivery]:
    """Group the requests into messages (some batches) and the messages into deliveries over
    the three queue routes: Pub/Sub (one message each), CMQ and CKafka (1-3 records an event)."""
    rng = random.Random(config.seed + 1)  # noqa: S311 - replayable, not secret
    order = list(plan)
    rng.shuffle(order)
    bodies: list[tuple[str, tuple[int, ...]]] = []
    at = 0
    while at < len(order):
        size = rng.randint(2, 5) if rng.random() < config.batch_share else 1
        group = order[at:at + size]
        at += size
        body = group[0].payload if size == 1 else {"requests": [p.payload for p in group]}
        bodies.append((json.dumps(body), tuple(p.index for p in group)))
    deliveries: list[Delivery] = []
    ids = itertools.count(1)
    at = 0
    while at < len(bodies):
        route = rng.choices(["pubsub", "cmq", "ckafka"], [0.5, 0.3, 0.2])[0]
        if route == "pubsub":
            text, indexes = bodies[at]
            at += 1
            deliveries.append(Delivery(route, pubsub_event(text, f"ps-{next(ids)}"),
                                       config.pubsub_max_deliveries, requests=indexes))
            continue
        records = bodies[at:at + rng.randint(1, 3)]
        at += len(records)
        make = cmq_record if route == "cmq" else ckafka_record
        event = {"Records": [make(text, next(ids)) for text, _ in records]}
        limit = config.scf_max_deliveries if route == "cmq" else config.ckafka_max_deliveries
        deliveries.append(Delivery(route, event, limit,
                                   requests=tuple(i for _, idx in records for i in idx)))
    return deliveries


def pubsub_event(text: str, message_id: str) -> dict[str, Any]:
    """A structured-mode ``messagePublished`` CloudEvent, as Eventarc delivers it."""
    return {
        "specversion": "1.0", "type": PUBSUB_TYPE, "id": message_id,
        "source": "//pubsub.googleapis.com/projects/soak/topics/restore-requests",
        "time": "2026-11-20T10:00:00Z", "datacontenttype": "application/json",
        "data": {"message": {"data": base64.b64encode(text.encode()).decode(),
                             "messageId": message_id, "publishTime": "2026-11-20T10:00:00Z"},
                 "subscription": "projects/soak/subscriptions/restorefn"},
    }


def cmq_record(text: str, number: int) -> dict[str, Any]:
    return {"CMQ": {"type": "topic", "topicOwner": 1250000000, "topicName": "restore-requests",
                    "subscriptionName": "restorefn", "publishTime": "2026-11-20T10:00:00.000Z",
                    "msgId": str(900_000 + number), "requestId": str(number),
                    "msgBody": text, "msgTag": "restore"}}


def ckafka_record(text: str, number: int) -> dict[str, Any]:
    return {"Ckafka": {"topic": "restore-requests", "partition": number % 4, "offset": number,
                       "msgKey": f"m{number}", "msgBody": text}}


class RedeliveryQueue:
    """The platform's queue: deliveries due at a time, handed to whichever worker asks first.

    A delivery asking for a retry comes back after the platform's backoff until it has been
    delivered ``max_attempts`` times; then it is dead-lettered (kept for the report). A message
    due again goes before the backlog of new ones (it is the oldest message), so redeliveries
    run among new traffic instead of after all of it.
    """

    def __init__(self, config: SoakConfig) -> None:
        self._config = config
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Delivery]] = []
        self._again: list[tuple[float, int, Delivery]] = []  # redeliveries
        self._seq = itertools.count()
        self._in_flight = 0
        self._closed = False
        self._rng = random.Random(config.seed + 2)  # noqa: S311 - replayable, not secret
        self.dead_letters: list[Delivery] = []
        self.deliveries: Counter[str] = Counter()
        self.redeliveries: Counter[str] = Counter()

    def put(self, delivery: Delivery, delay: float = 0.0) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))
            self._cond.notify()

    def get(self) -> Delivery | None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                ready = next((h for h in (self._again, self._heap) if h and h[0][0] <= now), None)
                if ready is not None:
                    delivery = heapq.heappop(ready)[2]
                    self._in_flight += 1
                    delivery.attempt += 1
                    self.deliveries[delivery.route] += 1
                    if delivery.attempt > 1:
                        self.redeliveries[delivery.route] += 1
                    return delivery
                due = [h[0][0] for h in (self._again, self._heap) if h]
                self._cond.wait(min(due) - now if due else None)
            return None

    def finish(self, delivery: Delivery, acked: bool) -> None:
        with self._cond:
            self._in_flight -= 1
            if not acked:
                if delivery.attempt >= delivery.max_attempts:
                    self.dead_letters.append(delivery)
                else:
                    pause = self._pause(delivery) * (0.75 + 0.5 * self._rng.random())
                    heapq.heappush(self._again,
                                   (time.monotonic() + pause, next(self._seq), delivery))
            self._cond.notify_all()

    def _pause(self, delivery: Delivery) -> float:
        """How long the platform waits before delivering this message again."""
        config = self._config
        if delivery.route in ("cmq", "cos_notice"):  # SCF asynchronous: 1 min, then 2 min
            seconds = 60.0 * delivery.attempt
        else:  # Pub/Sub (and the CKafka consumer): exponential from 10 s
            seconds = 10.0 * 2 ** (delivery.attempt - 1)
        return min(config.redelivery_max_seconds, seconds * config.platform_time_scale)

    def wait_idle(self, deadline: float, tick: Callable[[], None], every: float = 0.25) -> bool:
        """Until nothing is queued or in flight (True), or the deadline passes (False);
        ``tick`` runs between looks (draining request logs, delivering notifications)."""
        while True:
            tick()
            with self._cond:
                if not self._heap and not self._again and not self._in_flight:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(every, remaining))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# -- the functions under test ----------------------------------------------------------------------
class Functions:
    """The two deployments: the Google queue function and the SCF handler, each one instance
    whose service is built from the environment on its first invocation."""

    def __init__(self) -> None:
        import functions_framework

        if str(SCF_DIR) not in sys.path:
            sys.path.insert(0, str(SCF_DIR))
        import index  # type: ignore[import-not-found]  # functions/tencent, as SCF loads it

        self.scf: ModuleType = index
        self._app = functions_framework.create_app(  # type: ignore[no-untyped-call]
            "restore_pubsub", source=str(GCP_SOURCE))
        self._local = threading.local()
        self.reset()

    def reset(self) -> None:
        self.scf.reset_service()
        main = sys.modules.get("main")
        if main is not None and hasattr(main, "reset_service"):
            main.reset_service()

    def deliver(self, delivery: Delivery) -> bool:
        """One invocation; True when the platform would acknowledge it."""
        if delivery.route == "pubsub":
            client = getattr(self._local, "client", None)
            if client is None:
                client = self._local.client = self._app.test_client()
            response = client.post("/", data=json.dumps(delivery.body),
                                   headers={"Content-Type": "application/cloudevents+json"})
            delivery.last_failure = f"HTTP {response.status_code}"
            return 200 <= int(response.status_code) < 300
        try:
            self.scf.main_handler(delivery.body, {"request_id": f"inv-{delivery.attempt}"})
        except Exception as exc:  # RetryRequested, or anything else: SCF retries the event
            delivery.last_failure = type(exc).__name__
            return False
        return True


def worker(queue: RedeliveryQueue, functions: Functions) -> None:
    while (delivery := queue.get()) is not None:
        acked = False
        try:
            acked = functions.deliver(delivery)
        except Exception as exc:  # the platform's own plumbing failed: the message comes back
            delivery.last_failure = f"harness: {type(exc).__name__}"
        finally:
            queue.finish(delivery, acked)


# -- the event sink's far end ---------------------------------------------------------------------
class EventCollector:
    """Where the HTTP sink posts CloudEvents; served like an emulator so a FaultPlan can fail it
    (every injected fault happens before an event is recorded)."""

    def __init__(self) -> None:
        self.clock = VirtualClock()
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []

    def handle(self, request: Request) -> Response:
        event = request.json()
        with self._lock:
            self.events.append(event)
        return Response(204)

    def fault_response(self, status: int, request: Request) -> Response:
        return Response.json(status, {"error": "injected"})

    def control(self, verb: str, request: Request) -> Response | None:
        return None

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)


# -- request logs ----------------------------------------------------------------------------------
@dataclass
class Call:
    seq: int
    method: str
    status: int
    fault: str | None
    restore: bool  # the restore call itself (COS POST ?restore, GCS .../restore)


@dataclass
class LogTally:
    """The emulators' request logs, drained as the run goes (a 10,000-request run makes far more
    entries than a log keeps), reduced to fault counts and the calls made for each object."""

    faults: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    calls: Counter[str] = field(default_factory=Counter)
    ledger_methods: Counter[str] = field(default_factory=Counter)
    per_object: dict[tuple[str, str, str], list[Call]] = field(
        default_factory=lambda: defaultdict(list))

    def drain(self, name: str, running: RunningEmulator) -> None:
        for entry in running.log.drain():
            self._count(name, entry)

    def _count(self, name: str, entry: LoggedRequest) -> None:
        target = name
        obj: tuple[str, str, str] | None = None
        restore = False
        if name == "cos":
            obj = ("cos", entry.host.split(".cos.", 1)[0], entry.path.lstrip("/"))
            restore = entry.method == "POST" and "restore" in entry.query
        elif name == "gcs":
            bucket, obj_name, restore = _gcs_target(entry)
            if bucket == LEDGER_BUCKET:
                target = "ledger"
                self.ledger_methods[entry.method] += 1
            elif bucket is not None and obj_name is not None:
                obj = ("gcs", bucket, obj_name)
        self.calls[target] += 1
        kinds = self.faults[target]
        if entry.delay_ms:
            kinds["latency"] += 1
        if entry.fault == "injected":
            kinds[str(entry.status)] += 1
        elif entry.fault in ("reset", "lost_response"):
            kinds[entry.fault] += 1
        elif name == "cos" and restore and entry.status == 503:
            kinds["slowdown"] += 1  # the restore rate limit's 503 SlowDown
        if obj is not None:
            self.per_object[obj].append(
                Call(entry.seq, entry.method, entry.status, entry.fault, restore))


def _gcs_target(entry: LoggedRequest) -> tuple[str | None, str | None, bool]:
    """(bucket, object name, is the restore call) of a JSON API request, from its path."""
    path = entry.path
    for prefix in ("/upload/storage/v1/b/", "/download/storage/v1/b/", "/storage/v1/b/"):
        if path.startswith(prefix):
            rest = path[len(prefix):]
            break
    else:
        return None, None, False
    bucket, _, tail = rest.partition("/")
    if tail == "o":  # a listing: the object is the prefix asked for
        return bucket, entry.query.get("prefix") or entry.query.get("name"), False
    if not tail.startswith("o/"):
        return bucket, None, False
    name = tail[2:]
    if name.endswith("/restore"):
        return bucket, name[: -len("/restore")], True
    return bucket, name, False


# -- the run --------------------------------------------------------------------------------------
@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Exactly these settings for the functions (anything of ours already set is put aside)."""
    ours = ("RESTORE_", "COS_", "TENCENTCLOUD_", "TDMQ_", "GCS_", "GOOGLE_", "GCLOUD_")
    saved = {k: v for k, v in os.environ.items()
             if k.startswith(ours) or k in ("STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")}
    for name in saved:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name in values:
            os.environ.pop(name, None)
        os.environ.update(saved)


def function_env(config: SoakConfig, cos_url: str, gcs_url: str, sink_url: str) -> dict[str, str]:
    return {
        "RESTORE_COS_ALLOWED_BUCKETS": "archive-*",
        "RESTORE_GCS_ALLOWED_BUCKETS": "restore-*",
        "GOOGLE_CLOUD_PROJECT": "soak-project",
        "GCS_ENDPOINT": gcs_url,
        "COS_ENDPOINT": cos_url,
        "COS_SCHEME": "http",
        "COS_SECRET_ID": DEFAULT_SECRET_ID,
        "COS_SECRET_KEY": DEFAULT_SECRET_KEY,
        "COS_POOL_SIZE": str(max(10, config.workers * 2)),
        "RESTORE_WEBHOOK_SECRETS": "soak-webhook-secret",
        "RESTORE_PROVIDER_TIMEOUT_SECONDS": str(config.provider_timeout_seconds),
        "RESTORE_RETRY_BASE_SECONDS": str(config.retry_base_seconds),
        "RESTORE_RETRY_MAX_SECONDS": str(config.retry_max_seconds),
        "RESTORE_LEDGER": f"gs://{LEDGER_BUCKET}/restorefn",
        "RESTORE_EVENT_SINK": "http",
        "RESTORE_EVENT_HTTP_URL": sink_url,
        "RESTORE_EVENT_HTTP_ATTEMPTS": str(config.sink_attempts),
    }


class StderrTap(io.TextIOBase):
    """The functions' operational output: their stderr (a JSON line per invocation, tracebacks
    of nacked Pub/Sub messages) and the ``restorefn`` loggers (which pytest captures apart from
    stderr). Counted, not printed; what only a bug writes is kept, and the request ids of events
    the sink could not deliver (the code logs each one) are collected."""

    BUG_MARKERS = ("unexpected error in", "restore raised")
    UNDELIVERED = re.compile(r"event for request (\S+) not delivered")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lines = 0
        self.bugs: list[str] = []
        self.undelivered: set[str] = set()

    def write(self, text: str) -> int:
        with self._lock:
            self.lines += text.count("\n")
        self._inspect(text)
        return len(text)

    def _inspect(self, text: str) -> None:
        with self._lock:
            if any(marker in text for marker in self.BUG_MARKERS) and len(self.bugs) < 20:
                self.bugs.append(text[:2000])
            self.undelivered.update(self.UNDELIVERED.findall(text))

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Stderr redirected here, and the ``restorefn`` loggers' records inspected too."""
        tap = self

        class Records(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                tap._inspect(record.getMessage())

        handler = Records(logging.WARNING)
        logger = logging.getLogger("restorefn")
        logger.addHandler(handler)
        try:
            with contextlib.redirect_stderr(self):
                yield
        finally:
            logger.removeHandler(handler)


def fault_plans(config: SoakConfig) -> tuple[FaultPlan, FaultPlan, FaultPlan]:
    """(COS, GCS, collector) plans, each with its own seed so the run can be replayed."""
    provider = FaultPlan(error_rate=config.error_rate, reset_rate=config.reset_rate,
                         lost_response_rate=config.lost_response_rate,
                         latency_ms=config.latency_ms, latency_rate=config.latency_rate)
    cos = replace(provider, error_statuses=[500, 503], seed=config.seed * 10 + 1)
    # The GCS share of 429 as a weight: ten statuses, throttle_share of them 429.
    throttled = round(10 * config.throttle_share)
    gcs = replace(provider, error_statuses=[429] * throttled + [500, 503] * ((10 - throttled) // 2),
                  seed=config.seed * 10 + 2,
                  skip_path=None if config.ledger_faults else f"/b/{LEDGER_BUCKET}")
    sink = FaultPlan(error_rate=config.sink_error_rate, error_statuses=[500, 503],
                     reset_rate=config.sink_reset_rate, seed=config.seed * 10 + 3)
    return cos, gcs, sink


def run_soak(
    config: SoakConfig, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the soak and return its summary (see ``reconcile``); ``progress`` is told how far
    the run is every ten seconds."""
    started = time.monotonic()
    reported = [started]
    deadline = started + config.deadline_seconds
    queue = RedeliveryQueue(config)
    notices = Counter[str]()

    def notified(event: dict[str, Any]) -> None:
        notices[event["Records"][0]["event"]["eventName"]] += 1
        queue.put(Delivery("cos_notice", event, config.scf_max_deliveries))

    # The COS clock stands still until every request has been delivered (see the module doc).
    cos_emulator = CosEmulator(clock_factor=0.0, restore_rate_limit=config.cos_restore_rate_limit,
                               restore_notify=notified)
    gcs_emulator = GcsEmulator()
    collector = EventCollector()
    tally = LogTally()
    tap = StderrTap()
    with contextlib.ExitStack() as stack:
        cos = stack.enter_context(serve(cos_emulator))
        gcs = stack.enter_context(serve(gcs_emulator))
        sink = stack.enter_context(serve(collector))
        gcs_emulator.create_bucket(GCS_BUCKET)
        gcs_emulator.create_bucket(GCS_NO_SOFT_DELETE_BUCKET, soft_delete_seconds=0)
        gcs_emulator.create_bucket(LEDGER_BUCKET)
        cos_emulator.create_bucket(COS_BUCKET)
        plan = Workload(config, cos_emulator, gcs_emulator).build()
        deliveries = messages_for(plan, config)
        cos_plan, gcs_plan, sink_plan = fault_plans(config)
        cos.faults.set(cos_plan)
        gcs.faults.set(gcs_plan)
        sink.faults.set(sink_plan)

        def tick() -> None:
            cos_emulator.deliver_due_notifications()
            for name, running in (("cos", cos), ("gcs", gcs), ("sink", sink)):
                tally.drain(name, running)
            now = time.monotonic()
            if progress is not None and now - reported[0] >= 10.0:
                reported[0] = now
                progress(f"{now - started:6.0f} s: {sum(queue.deliveries.values())} deliveries "
                         f"({sum(queue.redeliveries.values())} redelivered), "
                         f"{len(collector.events)} events, {dict(notices)}")

        stack.enter_context(environment(function_env(config, cos.url, gcs.url, sink.url)))
        stack.enter_context(tap.listening())
        functions = Functions()
        stack.callback(functions.reset)
        threads = [threading.Thread(target=worker, args=(queue, functions), daemon=True,
                                    name=f"soak-worker-{n}") for n in range(config.workers)]
        for thread in threads:
            thread.start()
        for n, delivery in enumerate(deliveries):
            queue.put(delivery, delay=n / config.arrival_per_second)
        settled = queue.wait_idle(deadline, tick)
        delivered_at = time.monotonic()
        # Every restore was requested at the same (frozen) emulated instant: step the clock to
        # each restore duration in turn, so each Completed notification is handled while its
        # copy is readable (the shortest copy stays readable for a day after it completes).
        start = cos_emulator.clock.now()
        for duration in sorted(set(cos_emulator.restore_durations.values())):
            if not settled:
                break
            cos_emulator.clock.advance(start + duration + 1.0 - cos_emulator.clock.now())
            settled = queue.wait_idle(deadline, tick)
        queue.close()
        for thread in threads:
            thread.join(timeout=30)
        for running in (cos, gcs, sink):
            running.faults.clear()
        tick()
        report = reconcile(plan, collector.received(), tally,
                           cos_emulator.restore_requests(), tap.undelivered)
    report.update(
        requests=len(plan),
        messages=len(deliveries),
        kinds=dict(sorted(Counter(p.kind for p in plan).items())),
        deliveries=dict(queue.deliveries),
        redeliveries=dict(queue.redeliveries),
        dead_lettered=len(queue.dead_letters),
        dead_letters=[{"route": d.route, "attempts": d.attempt, "failure": d.last_failure,
                       "requests": list(d.requests)} for d in queue.dead_letters[:10]],
        cos_notifications=dict(notices),
        settled=settled,
        function_log_lines=tap.lines,
        undelivered_events=len(tap.undelivered),
        cos_restore_rate=cos_emulator.restore_rate_stats(),
        bug_logs=len(tap.bugs),
        bug_log_examples=tap.bugs[:3],
        config=asdict(config),
        seconds_delivering=round(delivered_at - started, 1),
        wall_seconds=round(time.monotonic() - started, 1),
    )
    return report


# -- reconciliation ------------------------------------------------------------------------------
def label(event: dict[str, Any]) -> str:
    """``status`` or ``status:error code`` of one event, e.g. ``failed:not_found``."""
    data = event.get("data") or {}
    status = str(event["type"]).rsplit(".", 1)[-1]
    error = data.get("error") or {}
    return f"{status}:{error['code']}" if error.get("code") else status


def is_terminal(event: dict[str, Any]) -> bool:
    data = event.get("data") or {}
    status = str(event["type"]).rsplit(".", 1)[-1]
    return status in TERMINAL and not (data.get("error") or {}).get("retryable", False)


def reconcile(plan: list[Planned], events: list[dict[str, Any]], tally: LogTally,
              cos_restores: list[dict[str, Any]], undelivered: set[str]) -> dict[str, Any]:
    """Every request against its events and its object's provider calls. ``undelivered``:
    request ids whose event the sink lost at least once (the whole request was then redone)."""
    by_request: dict[int, list[dict[str, Any]]] = defaultdict(list)
    foreign = 0
    for event in events:
        soak = ((event.get("data") or {}).get("context") or {}).get("soak")
        if isinstance(soak, int):
            by_request[soak].append(event)
        else:
            foreign += 1
    problems: dict[str, list[str]] = defaultdict(list)
    outcomes: Counter[str] = Counter()
    accepted_cos = {(r["bucket"], r["key"]): r["accepted"] for r in cos_restores}
    terminal_total = accepted_total = retryable_total = 0
    for planned in plan:
        evs = by_request.get(planned.index, [])
        terminal = [e for e in evs if is_terminal(e)]
        accepted = [e for e in evs if label(e) in ACCEPTED]
        retryable = [e for e in evs if label(e).startswith("failed") and not is_terminal(e)]
        terminal_total += len(terminal)
        accepted_total += len(accepted)
        retryable_total += len(retryable)
        tag = f"{planned.index}:{planned.kind}"
        if not terminal:
            problems["lost"].append(tag)
        elif len(terminal) > 1:
            ids = len({e["id"] for e in terminal})
            problems["doubled"].append(f"{tag} {[label(e) for e in terminal]} ids={ids}")
        if terminal:
            outcomes[label(terminal[0])] += 1
            if label(terminal[0]) not in planned.expect:
                problems["wrong_outcome"].append(f"{tag} {label(terminal[0])}")
        if planned.accepted and len(accepted) != 1:
            problems["accepted_not_once"].append(f"{tag} {[label(e) for e in accepted]}")
        request_ids = {(e.get("data") or {}).get("request_id") for e in evs}
        wanted = planned.request_id
        if len(request_ids) > 1 or (wanted is not None and request_ids - {wanted}) or (
            wanted is None and any(not str(r).startswith("msg-") for r in request_ids)
        ):
            problems["request_id_mismatch"].append(f"{tag} {sorted(map(str, request_ids))}")
        _check_calls(planned, tally, accepted_cos, problems, tag,
                     redone=bool(request_ids & undelivered))
    permanent = [p for p in plan if p.calls != "any"]
    return {
        "events_received": len(events),
        "terminal_events": terminal_total,
        "accepted_events": accepted_total,
        "retryable_failure_events": retryable_total,
        "foreign_events": foreign,
        "outcomes": dict(sorted(outcomes.items())),
        "lost": len(problems["lost"]),
        "doubled": len(problems["doubled"]),
        "accepted_not_once": len(problems["accepted_not_once"]),
        "wrong_outcome": len(problems["wrong_outcome"]),
        "request_id_mismatch": len(problems["request_id_mismatch"]),
        "permanent_requests": len(permanent),
        "permanent_errors_retried": len(problems["permanent_retried"]),
        "permanent_redone_after_lost_event": len(problems["redone_after_lost_event"]),
        "refused_but_called": len(problems["refused_but_called"]),
        "extra_restores": len(problems["extra_restores"]),
        "faults": {name: dict(sorted(kinds.items())) for name, kinds in tally.faults.items()},
        "faults_total": _totals(tally),
        "provider_calls": dict(tally.calls),
        "ledger_calls_by_method": dict(tally.ledger_methods),
        "examples": {name: found[:5] for name, found in problems.items() if found},
    }


def _totals(tally: LogTally) -> dict[str, int]:
    """Faults of each kind over every server; ``throttle`` is GCS's 429s plus the 503 SlowDowns
    of COS's restore rate limit (COS's injected 503s are SlowDowns too, counted under 503)."""
    total: Counter[str] = Counter()
    for kinds in tally.faults.values():
        total.update(kinds)
    total["throttle"] = total["429"] + total["slowdown"]
    return dict(sorted(total.items()))


def _check_calls(planned: Planned, tally: LogTally, accepted_cos: dict[tuple[str, str], int],
                 problems: dict[str, list[str]], tag: str, *, redone: bool) -> None:
    calls = sorted(tally.per_object.get((planned.provider, planned.bucket, planned.key), []),
                   key=lambda c: c.seq)
    if planned.calls == "none":
        if calls:
            problems["refused_but_called"].append(f"{tag} {len(calls)} calls")
        return
    if planned.calls == "one":
        # Injected faults before the real answer are retried, as they must be; the one real
        # answer (a permanent error) must be the last call ever made for the object.
        # A request whose event the sink lost is redone from the start when the message comes
        # back: that second answer is counted apart, it is no retry of the permanent error.
        answered = [n for n, c in enumerate(calls) if c.fault is None]
        if len(answered) != 1 or answered[0] != len(calls) - 1:
            shown = [(c.method, c.status, c.fault) for c in calls]
            name = "redone_after_lost_event" if redone else "permanent_retried"
            problems[name].append(f"{tag} {shown}")
        return
    if planned.provider == "cos":
        restores = accepted_cos.get((planned.bucket, planned.key), 0)
    else:  # a restore that happened: answered 200, whether or not the answer arrived
        restores = sum(1 for c in calls if c.restore and c.status == 200 and c.fault in (
            None, "lost_response"))
    if restores != 1:
        problems["extra_restores"].append(f"{tag} {restores} restores")


VIOLATIONS = ("lost", "doubled", "accepted_not_once", "wrong_outcome", "request_id_mismatch",
              "permanent_errors_retried", "refused_but_called", "extra_restores",
              "foreign_events", "retryable_failure_events", "dead_lettered", "bug_logs")


def violations(report: dict[str, Any]) -> dict[str, Any]:
    """The counters that must be zero, with those that are not."""
    found = {name: report[name] for name in VIOLATIONS if report.get(name)}
    if not report.get("settled"):
        found["settled"] = False
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=SoakConfig.requests)
    parser.add_argument("--seed", type=int, default=SoakConfig.seed)
    parser.add_argument("--workers", type=int, default=SoakConfig.workers)
    parser.add_argument("--latency-ms", type=float, default=SoakConfig.latency_ms)
    parser.add_argument("--ledger-faults", action="store_true",
                        help="inject faults on the ledger bucket too")
    args = parser.parse_args(argv)
    config = SoakConfig(requests=args.requests, seed=args.seed, workers=args.workers,
                        latency_ms=args.latency_ms, ledger_faults=args.ledger_faults)
    stderr = sys.stderr  # the functions' own stderr is tapped during the run
    report = run_soak(config, progress=lambda line: print(line, file=stderr, flush=True))
    report["violations"] = violations(report)
    print(json.dumps(report, indent=2))
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
