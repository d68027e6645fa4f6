"""Memory: the peak RSS of one function instance while it works through 1,000 restores.

The tools: a function instance is a child process we start; its peak RSS is the kernel's
high-water mark (``VmHWM`` in ``/proc/PID/status``), read after the work and before the process
is stopped, or reported by the process itself (the SCF host; ``ru_maxrss`` would not do: Linux
carries the parent's high-water mark at fork into the child's); for an instance of several
processes, ``PssSampler`` keeps the peak of their summed PSS. The driver's own
``RUSAGE_CHILDREN`` is not used: it mixes in every other child (emulators, earlier instances).

Workloads (``WORKLOADS``; each returns a Row or None when it cannot run yet):

- ``gcp_queue_batch``: ``restore_pubsub`` under ``functions-framework`` receiving 1,000 COS
  restore requests as Pub/Sub messages of 100-request batches (the batch limit). The instance
  is two processes, gunicorn's master (it imported the source) and the worker it forked, which
  share most of their pages: the row's figure is the largest summed PSS of the two sampled
  while they work (shared pages counted once, as a container's memory limit counts them); each
  one's own VmHWM is in the row's detail.
- ``scf_queue_batch``: SCF ``main_handler`` (``bench/hosts/scf_host.py``) invoked with CMQ
  events, one record of 100 requests each, 1,000 requests in all; its own VmHWM.
- ``bulk_chunk``: SCF ``main_handler`` invoked with one CMQ record carrying one bulk chunk of
  1,000 objects (``shared/bulk/``, planned beforehand by our planner), which it restores, reports
  and finishes the job with; its own VmHWM.

Each is measured against the same work done by the hand-written baseline, for scale; the target
is absolute (128 MiB).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cold_start import MARKER, SCF_HOST, cos_request, pubsub_message
from bench.core import BenchContext, Row, Target, section
from bench.stack import (
    COS_BUCKET,
    COS_REGION,
    FUNCTIONS_FRAMEWORK,
    PYTHON,
    ROOT,
    Stack,
    children_of,
    clean_environ,
    emulator_stack,
    free_port,
    http,
    status_kib,
    stop,
    wait_until,
)

TARGET_MIB = 128.0
BATCH = 100  # requests per message: the batch limit of the request schema


@dataclass
class RssReport:
    """Peak RSS of an instance (KiB), and what else was seen."""

    peak_kib: int
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


# -- the measuring tools -----------------------------------------------------------------------
def pss_kib(pid: int) -> int | None:
    """Proportional set size now (shared pages divided among the processes sharing them)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PssSampler:
    """Samples the summed PSS of a process tree every ``interval`` seconds on a thread and keeps
    the largest sum: the peak of what the tree holds with shared pages counted once (what a
    container's memory limit sees), which no kernel counter records for a group of processes."""

    def __init__(self, root: int, interval: float = 0.02) -> None:
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)

    def sample(self) -> None:
        total = 0
        for pid in (self.root, *children_of(self.root)):
            total += pss_kib(pid) or 0
        self.peak_kib = max(self.peak_kib, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def functions_framework_rss(
    source: str, target: str, env: dict[str, str], work: Callable[[str], None],
) -> RssReport:
    """Start ``functions-framework`` for ``source``/``target``, run ``work(url)`` against it,
    and report the instance's peak: the largest summed PSS of gunicorn's master and worker
    seen while it worked (each process's own VmHWM in the detail)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [FUNCTIONS_FRAMEWORK, "--target", target, "--source", source, "--host", "127.0.0.1",
         "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_until(lambda: bool(children_of(process.pid)) or process.poll() is not None,
                          timeout=60):
            raise RuntimeError(f"{source}: no worker after 60 s")
        if process.poll() is not None:
            raise RuntimeError(f"{source} exited with {process.returncode}")
        with PssSampler(process.pid) as sampler:
            work(url)
        workers = children_of(process.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {workers}")
        worker_hwm = status_kib(workers[0], "VmHWM")
        master_hwm = status_kib(process.pid, "VmHWM")
        if worker_hwm is None or master_hwm is None:
            raise RuntimeError("the instance went away before its RSS was read")
        detail: dict[str, Any] = {
            "instance_peak_pss_mib": round(sampler.peak_kib / 1024, 1),
            "pss_samples": sampler.samples,
            "worker_peak_rss_mib": round(worker_hwm / 1024, 1),
            "master_peak_rss_mib": round(master_hwm / 1024, 1),
        }
        return RssReport(sampler.peak_kib, detail)
    finally:
        stop(process)


def scf_host_rss(code_dir: str, events: list[dict[str, Any]], env: dict[str, str]) -> tuple[
        RssReport, Any]:
    """Run the SCF host over ``events`` (one invocation each); its own peak RSS and answers."""
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        path = Path(tmp) / "events.json"
        path.write_text(json.dumps(events))
        done = subprocess.run(  # noqa: S603 - fixed argv
            [PYTHON, str(SCF_HOST), str(ROOT / code_dir), str(path)], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=600, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            result = json.loads(line[len(MARKER):])
            return RssReport(int(result["maxrss_kib"])), result["answers"]
    raise RuntimeError(f"{code_dir}: the host printed no answer; stderr: {done.stderr[-1000:]}")


# -- workloads -----------------------------------------------------------------------------------
def _env(stack: Stack, ours: bool) -> dict[str, str]:
    own = stack.ours_env() if ours else stack.baseline_env()
    return {**clean_environ(), **own, "PYTHONPATH": str(ROOT)}


def _seed_batches(stack: Stack, tag: str, total: int) -> list[list[str]]:
    keys = [f"mem/{tag}/{i}" for i in range(total)]
    stack.seed_cos(keys)
    return [keys[i:i + BATCH] for i in range(0, total, BATCH)]


def _check_restored(stack: Stack, batches: list[list[str]], who: str) -> None:
    accepted = stack.cos_accepted()
    wrong = [k for batch in batches for k in batch if accepted.get(k) != 1]
    if wrong:
        raise RuntimeError(f"{who}: {len(wrong)} objects not restored once, e.g. {wrong[:3]}")


def _batch_payload(keys: list[str]) -> dict[str, Any]:
    return {"requests": [cos_request(key) for key in keys]}


def gcp_queue_batch(ctx: BenchContext, stack: Stack) -> Row | None:
    reports: dict[str, RssReport] = {}
    for side, source, target in (("ours", "functions/gcp/main.py", "restore_pubsub"),
                                 ("baseline", "bench/baselines/gcp_queue_cos.py", "restore")):
        batches = _seed_batches(stack, f"gcp-{side}", ctx.memory_requests)

        def work(url: str, batches: list[list[str]] = batches, side: str = side) -> None:
            for n, keys in enumerate(batches):
                body, headers = pubsub_message(_batch_payload(keys), f"mem-{side}-{n}")
                status, raw = http("POST", url, body, headers, timeout=300)
                if status != 200:
                    raise RuntimeError(f"{side} message {n}: {status} {raw[:300]!r}")

        started = time.perf_counter()
        reports[side] = functions_framework_rss(source, target, _env(stack, side == "ours"), work)
        reports[side].detail["seconds"] = round(time.perf_counter() - started, 1)
        _check_restored(stack, batches, side)
    return _row(f"Google restore_pubsub: {_count(ctx)} COS restores in 100-request messages",
                reports, "gcp_queue_batch")


def scf_queue_batch(ctx: BenchContext, stack: Stack) -> Row | None:
    reports: dict[str, RssReport] = {}
    for side, code_dir in (("ours", "functions/tencent"), ("baseline", "bench/baselines/scf")):
        batches = _seed_batches(stack, f"scf-{side}", ctx.memory_requests)
        template = json.loads((ROOT / "tests" / "events" / "scf_cmq_topic.json").read_text())
        record = template["Records"][0]
        events = [{"Records": [{"CMQ": {**record["CMQ"], "msgId": f"mem-{side}-{n}",
                                        "msgBody": json.dumps(_batch_payload(keys))}}]}
                  for n, keys in enumerate(batches)]
        started = time.perf_counter()
        report, answers = scf_host_rss(code_dir, events, _env(stack, side == "ours"))
        report.detail["seconds"] = round(time.perf_counter() - started, 1)
        last = answers.get("last") if isinstance(answers, dict) else answers[-1]
        if isinstance(last, dict) and "raised" in last:
            raise RuntimeError(f"SCF {side} raised {last['raised']}")
        _check_restored(stack, batches, f"SCF {side}")
        reports[side] = report
    return _row(f"Tencent SCF main_handler: {_count(ctx)} COS restores in CMQ records of 100",
                reports, "scf_queue_batch")


BULK_REPORT_BUCKET = "bench-reports-1250000000"


class CapturedChunks:
    """A chunk queue that keeps the planner's chunk messages (JSON) instead of sending them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def send(self, chunk: Any) -> None:
        self.messages.append(chunk.model_dump_json())


def plan_one_chunk(stack: Stack, prefix: str, objects: int, job_id: str) -> str:
    """Plan a job over ``prefix`` with our planner (in this process, outside what is measured)
    so that it makes exactly one chunk; the chunk message, as the platform would deliver it.

    The plan (``plan.json``) goes to the report bucket as in a deployment, so the instance that
    works the chunk also finishes the job (report and completion event). One instance and a
    rate of 10,000/s: the chunk is not paced, all its threads are busy at once (the peak)."""
    from shared.bulk.service import BulkService
    from shared.config import Settings
    from shared.service import RestoreService

    env = {**stack.ours_env(), "RESTORE_COS_RESTORE_RATE": "10000",
           "RESTORE_BULK_MAX_INSTANCES": "1"}
    queue = CapturedChunks()
    service = RestoreService(Settings.from_env(env), sink=_NoSink())
    BulkService(service, queue).submit({
        "kind": "restorefn.bulk.v1", "job_id": job_id, "provider": "cos", "bucket": COS_BUCKET,
        "region": COS_REGION, "days": 1, "tier": "Standard", "selection": {"prefix": prefix},
        "report": {"bucket": BULK_REPORT_BUCKET, "prefix": "reports"},
        "limits": {"chunk_size": objects}})
    if len(queue.messages) != 1:
        raise RuntimeError(f"expected one chunk, the planner made {len(queue.messages)}")
    return queue.messages[0]


class _NoSink:
    def publish(self, event: Any) -> None:
        raise RuntimeError(f"the planner published {event.type}")


def bulk_chunk(ctx: BenchContext, stack: Stack) -> Row | None:
    """One SCF instance (``bench/hosts/scf_host.py``, ``main_handler`` of ``functions/tencent``)
    invoked once with a CMQ record carrying one bulk chunk of up to 1,000 objects: it restores
    them (8 threads), writes its report part, and, the job's only chunk, assembles the report
    and publishes the job's completion event. Its own VmHWM. Baseline: the same host and the
    same record, ``bench/baselines/scf_bulk`` restoring the chunk's keys in a plain SDK loop."""
    objects = min(ctx.memory_requests, 1000)  # a chunk holds 1,000 objects at most
    http("POST", f"{stack.cos.url}/_emulator/objects",
         {"bucket": BULK_REPORT_BUCKET, "key": "created", "storage_class": "STANDARD"})
    template = json.loads((ROOT / "tests" / "events" / "scf_cmq_topic.json").read_text())
    record = template["Records"][0]
    reports: dict[str, RssReport] = {}
    for side, code_dir in (("ours", "functions/tencent"), ("baseline", "bench/baselines/scf_bulk")):
        prefix = f"mem/bulk-{side}/"
        keys = [f"{prefix}{i:06d}" for i in range(objects)]
        stack.seed_cos(keys)
        job_id = f"bench-mem-{side}"
        message = plan_one_chunk(stack, prefix, objects, job_id)
        event = {"Records": [{"CMQ": {**record["CMQ"], "msgId": f"mem-bulk-{side}",
                                      "msgBody": message}}]}
        started = time.perf_counter()
        report, answers = scf_host_rss(code_dir, [event], _env(stack, side == "ours"))
        report.detail["seconds"] = round(time.perf_counter() - started, 1)
        if any(isinstance(a, dict) and "raised" in a for a in answers):
            raise RuntimeError(f"bulk chunk ({side}) raised: {answers}")
        _check_restored(stack, [keys], f"bulk chunk ({side})")
        if side == "ours":
            _check_report(stack, job_id)
        reports[side] = report
    return _row(f"Tencent SCF main_handler: one bulk chunk of {objects:,} COS objects",
                reports, "bulk_chunk")


def _check_report(stack: Stack, job_id: str) -> None:
    """The instance finished the job: its assembled report is in the report bucket."""
    query = urllib.parse.urlencode({"bucket": BULK_REPORT_BUCKET,
                                    "prefix": f"reports/{job_id}/"})
    _, raw = http("GET", f"{stack.cos.url}/_emulator/objects?{query}")
    names = {entry["key"].rsplit("/", 1)[-1] for entry in json.loads(raw)}
    if not {"report.csv", "summary.json"} <= names:
        raise RuntimeError(f"bulk chunk (ours): the job's report is missing; found {names}")


WORKLOADS: dict[str, Callable[[BenchContext, Stack], Row | None]] = {
    "gcp_queue_batch": gcp_queue_batch,
    "scf_queue_batch": scf_queue_batch,
    "bulk_chunk": bulk_chunk,
}


def _count(ctx: BenchContext) -> str:
    return f"{ctx.memory_requests:,}"


def _row(name: str, reports: dict[str, RssReport], key: str) -> Row:
    ours, base = reports["ours"], reports["baseline"]
    return Row("memory", name, ours.peak_mib, base.peak_mib, "MiB",
               Target.ours_at_most(TARGET_MIB, "MiB"), samples=1,
               detail={"workload": key, "ours": ours.detail, "baseline": base.detail})


@section("memory", order=40,
         help="peak RSS of one instance through 1,000 restores (absolute, 128 MiB)")
def memory(ctx: BenchContext) -> list[Row]:
    rows: list[Row] = []
    with emulator_stack() as stack:
        for key, workload in WORKLOADS.items():
            row = workload(ctx, stack)
            if row is None:
                ctx.notes.append(f"memory/{key}: not measured yet (hook in bench/memory.py)")
                continue
            ctx.log(f"{key}: ours {row.ours:.1f} MiB, baseline {row.baseline:.1f} MiB")
            rows.append(row)
    return rows
