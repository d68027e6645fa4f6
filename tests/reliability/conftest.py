"""Reliability fixtures: several function instances sharing one ledger, and deliveries of every
message several times (interleaved, or concurrently through a barrier), redelivered until they
settle, with what the emulators saw counted afterwards.

"Instances" are what separate function containers would be: separate ``RestoreService``
objects (or separately loaded entry modules, each building its own service) that share nothing
but the ledger, a bucket in the GCS emulator (``RESTORE_LEDGER=gs://...``), as deployments that
run more than one instance are told to configure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import unquote

import pytest

from emulators._http import RunningEmulator
from shared.events import event_id
from shared.ledger import phase_of
from shared.outcome import Outcome, OutcomeStatus
from shared.retry import RetryPolicy
from shared.service import RestoreService
from tests.conftest import CollectingSink, make_settings
from tests.gcp.conftest import function_env

ROOT = Path(__file__).resolve().parents[2]
GCP_SOURCE = ROOT / "functions" / "gcp" / "main.py"
SCF_SOURCE = ROOT / "functions" / "tencent" / "index.py"
LEDGER_BUCKET = "restore-ledger"
LEDGER = f"gs://{LEDGER_BUCKET}/restorefn"
WEBHOOK_SECRET = "reliability-webhook-secret"

M = TypeVar("M")
Mode = Literal["interleaved", "concurrent"]
MODES: tuple[Mode, ...] = ("interleaved", "concurrent")


# -- delivering copies ---------------------------------------------------------------------------
def run_concurrently(calls: Sequence[Callable[[], Any]], *, timeout: float = 30.0) -> list[Any]:
    """Run every call on its own thread, all released at once by a barrier; each call's return
    value, or the exception it raised, in call order."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(index: int) -> None:
        barrier.wait(timeout=timeout)
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # reported to the caller, never lost with the thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a delivery did not finish in time"
    return results


def interleaved_order(count: int, copies: int) -> list[tuple[int, int]]:
    """(message, copy) pairs staggered so copies of neighbouring messages alternate:
    A1 A2 B1 A3 B2 C1 B3 C2 C3 for three messages of three copies."""
    slots = sorted((m + c, c, m) for m in range(count) for c in range(copies))
    return [(m, c) for _, c, m in slots]


@dataclass
class Delivery(Generic[M]):
    """One delivery of one copy of a message to one instance."""

    message: M
    copy: int
    attempt: int
    instance: int
    result: Any = None


@dataclass
class Deliveries(Generic[M]):
    """Delivers each message ``copies`` times to ``instances`` instances and redelivers every
    copy that asks for it (``asks_retry``) until all settle, at most ``max_rounds`` times.

    ``deliver(message, instance)`` is the entry point of one instance; copy ``c`` of a message
    goes to instance ``c % instances``, a redelivery to the next instance (the platform does not
    promise the same one).
    """

    deliver: Callable[[M, int], Any]
    asks_retry: Callable[[Any], bool]
    instances: int = 3
    copies: int = 3
    max_rounds: int = 8
    log: list[Delivery[M]] = field(default_factory=list)

    def run(self, messages: Sequence[M], mode: Mode) -> list[Delivery[M]]:
        """Every copy of every message, settled; returns each copy's last delivery."""
        if mode == "interleaved":
            pending = [self._once(messages[m], c, 0, c % self.instances)
                       for m, c in interleaved_order(len(messages), self.copies)]
        else:
            pending = []
            for message in messages:
                pending += self._together([(message, c, 0, c % self.instances)
                                           for c in range(self.copies)])
        return self._settle(pending, mode)

    def _once(self, message: M, copy: int, attempt: int, instance: int) -> Delivery[M]:
        delivery = Delivery(message, copy, attempt, instance)
        try:
            delivery.result = self.deliver(message, instance)
        except Exception as exc:  # an entry point that raises asks for redelivery
            delivery.result = exc
        self.log.append(delivery)
        return delivery

    def _together(self, copies: list[tuple[M, int, int, int]]) -> list[Delivery[M]]:
        deliveries = [Delivery(m, c, a, i) for m, c, a, i in copies]

        def call(delivery: Delivery[M]) -> Callable[[], Any]:
            return lambda: self.deliver(delivery.message, delivery.instance)

        for delivery, result in zip(deliveries, run_concurrently([call(d) for d in deliveries]),
                                    strict=True):
            delivery.result = result
        self.log.extend(deliveries)
        return deliveries

    def _settle(self, settled: list[Delivery[M]], mode: Mode) -> list[Delivery[M]]:
        for _ in range(self.max_rounds):
            again = [d for d in settled if self.asks_retry(d.result)]
            if not again:
                return settled
            rest = [d for d in settled if not self.asks_retry(d.result)]
            nxt = [(d.message, d.copy, d.attempt + 1, (d.instance + 1) % self.instances)
                   for d in again]
            if mode == "concurrent" and len(nxt) > 1:
                settled = rest + self._together(nxt)
            else:
                settled = rest + [self._once(*args) for args in nxt]
        stuck = [d for d in settled if self.asks_retry(d.result)]
        raise AssertionError(f"{len(stuck)} copies still ask for a retry: {stuck[:3]}")

    @property
    def redeliveries(self) -> int:
        return sum(1 for d in self.log if d.attempt > 0)


# -- what the providers saw ----------------------------------------------------------------------
def cos_restore_posts(cos: RunningEmulator) -> dict[str, int]:
    """Restore POSTs the COS emulator received, per key (faulted answers included)."""
    return {p["key"]: p["received"] for p in cos.emulator.restore_requests()}


def gcs_restore_calls(gcs: RunningEmulator) -> Counter[str]:
    """objects.restore calls the GCS emulator received, per object name."""
    calls: Counter[str] = Counter()
    for entry in gcs.log.entries():
        if entry.method == "POST" and entry.path.endswith("/restore") and "/o/" in entry.path:
            calls[unquote(entry.path.split("/o/", 1)[1].removesuffix("/restore"))] += 1
    return calls


def live_generations(gcs: RunningEmulator, bucket: str, name: str) -> list[int]:
    return [int(g["generation"]) for g in gcs.emulator.generations(bucket, name)
            if g["state"] == "live"]


# -- what was published --------------------------------------------------------------------------
def phase_name(status: str) -> str:
    return phase_of(OutcomeStatus(status))


def published_once(events: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The event id of each (request id, phase); fails if any phase went out twice."""
    seen: Counter[tuple[str, str]] = Counter()
    ids: dict[tuple[str, str], str] = {}
    for event in events:
        key = (event["data"]["request_id"], phase_name(event["data"]["outcome"]))
        seen[key] += 1
        ids[key] = event["id"]
    twice = {k: n for k, n in seen.items() if n > 1}
    assert not twice, f"published more than once: {twice}"
    return ids


def reported_id(outcome: Outcome) -> str:
    """The event id a copy's outcome stands for (the id its phase's event carries)."""
    return event_id(outcome.request_id, outcome.status)


def assert_reports_match(outcomes: Sequence[Outcome], ids: dict[tuple[str, str], str]) -> int:
    """Every settled copy's outcome names the event that went out for its phase; returns how
    many were compared."""
    compared = 0
    for outcome in outcomes:
        key = (outcome.request_id, phase_of(outcome.status))
        assert key in ids, f"no event published for {key}"
        assert reported_id(outcome) == ids[key], key
        compared += 1
    return compared


def sink_events(sink: CollectingSink) -> list[dict[str, Any]]:
    return [json.loads(event.to_json()) for event in sink.events]


def file_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- instances -----------------------------------------------------------------------------------
@pytest.fixture
def ledger_bucket(gcs_emulator: RunningEmulator) -> str:
    gcs_emulator.emulator.create_bucket(LEDGER_BUCKET)
    return LEDGER_BUCKET


@dataclass
class Instance:
    service: RestoreService
    sink: CollectingSink


@pytest.fixture
def service_instances(cos_emulator: RunningEmulator, gcs_emulator: RunningEmulator,
                      ledger_bucket: str) -> Callable[..., list[Instance]]:
    """``make(n, **settings)``: n services sharing the GCS-bucket ledger, each with its sink."""

    def make(count: int = 3, **overrides: Any) -> list[Instance]:
        settings = make_settings(cos_emulator, gcs_emulator, ledger=LEDGER, **overrides)
        instances = []
        for _ in range(count):
            sink = CollectingSink()
            service = RestoreService(settings, sink=sink, retry=RetryPolicy.from_settings(settings))
            instances.append(Instance(service, sink))
        return instances

    return make


_CLEARED_PREFIXES = ("RESTORE_", "COS_", "TENCENTCLOUD_", "TDMQ_", "GCS_", "GOOGLE_", "GCLOUD_",
                     "CLOUD_TASKS_")
_CLEARED = ("STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "ENTRY_POINT")


def entry_env_vars(cos_url: str, gcs_url: str) -> dict[str, str]:
    """What a deployed function of either platform is configured with, pointed at the emulators,
    with the shared ledger and a file sink (each instance gets its own file)."""
    return {
        **function_env(cos_url, gcs_url),
        "RESTORE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "RESTORE_LEDGER": LEDGER,
        "RESTORE_EVENT_SINK": "file",
    }


@pytest.fixture
def entry_env(monkeypatch: pytest.MonkeyPatch, cos_emulator: RunningEmulator,
              gcs_emulator: RunningEmulator, ledger_bucket: str) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name)
    env = entry_env_vars(cos_emulator.url, gcs_emulator.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@dataclass
class EntryInstance:
    """One loaded copy of an entry module: its own globals, so its own service."""

    module: ModuleType
    events_file: Path
    client: Any = None  # functions-framework test client (Google)

    @property
    def service(self) -> RestoreService:
        service: RestoreService = self.module.get_service()
        return service

    def events(self) -> list[dict[str, Any]]:
        return file_events(self.events_file)


def _build(monkeypatch: pytest.MonkeyPatch, events_file: Path,
           load: Callable[[], tuple[ModuleType, Any]]) -> EntryInstance:
    # The service reads the environment once, when it is built: build it now, with this
    # instance's own event file, before any other instance changes the variable.
    monkeypatch.setenv("RESTORE_EVENT_FILE", str(events_file))
    module, client = load()
    instance = EntryInstance(module, events_file, client)
    _ = instance.service
    return instance


@pytest.fixture
def gcp_instances(entry_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> Iterator[Callable[..., list[EntryInstance]]]:
    """``make(target, n, **env)``: n functions-framework apps of ``functions/gcp/main.py``,
    each loaded as its own module (functions-framework loads the source anew per app)."""
    import functions_framework

    built: list[EntryInstance] = []

    def make(target: str, count: int = 3, **env: str) -> list[EntryInstance]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        def load() -> tuple[ModuleType, Any]:
            app = functions_framework.create_app(target, source=str(GCP_SOURCE))
            return sys.modules["main"], app.test_client()

        made = [_build(monkeypatch, tmp_path / f"{target}-{i}.jsonl", load)
                for i in range(count)]
        built.extend(made)
        return made

    yield make
    for instance in built:
        instance.module.reset_service()


@pytest.fixture
def scf_instances(entry_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> Iterator[Callable[..., list[EntryInstance]]]:
    """``make(n, **env)``: n copies of ``functions/tencent/index.py``, each loaded as SCF loads
    the package into a container of its own."""
    built: list[EntryInstance] = []

    def make(count: int = 3, **env: str) -> list[EntryInstance]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        start = len(built)

        def loader(number: int) -> Callable[[], tuple[ModuleType, Any]]:
            def load() -> tuple[ModuleType, Any]:
                spec = importlib.util.spec_from_file_location(f"scf_instance_{number}",
                                                              SCF_SOURCE)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module, None
            return load

        made = [_build(monkeypatch, tmp_path / f"scf-{start + i}.jsonl", loader(start + i))
                for i in range(count)]
        built.extend(made)
        return made

    yield make
    for instance in built:
        instance.module.reset_service()
