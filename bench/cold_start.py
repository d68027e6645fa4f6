"""Cold start: a fresh process until the first request is answered, ours against a hand-written
minimal function (``bench/baselines/``) served the same way, runs alternating.

- Google (``restore_http``, ``restore_pubsub``): the ``functions-framework`` command, as Google's
  Python buildpack starts a function (gunicorn: the master imports the source, a worker answers).
  The clock starts just before the process is spawned and stops when the answer to the first
  request has been read; the driver keeps trying to connect (every 2 ms) until the port is bound.
- Tencent SCF (``main_handler``): ``bench/hosts/scf_host.py``, a stand-in for the SCF Python
  runtime (imports ``index`` from the code directory, calls ``main_handler``); the clock stops
  when the host has printed the handler's answer.

Each entry point gets the request that loads its provider SDK: the webhook restores a
soft-deleted GCS object (google-cloud-storage), the queue function and SCF (API Gateway POST,
the event of ``tests/events/scf_apigw_post.json``) restore an archived COS object (qcloud_cos).
Every run restores an object of its own (seeded beforehand), and each result is checked on the
emulator outside the timed region: a refused request cannot pass for a fast one.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core import BenchContext, Row, Target, median, paired_ratio, section, spread
from bench.stack import (
    COS_BUCKET,
    COS_REGION,
    FUNCTIONS_FRAMEWORK,
    GCS_BUCKET,
    PYTHON,
    ROOT,
    WEBHOOK_SECRET,
    Stack,
    clean_environ,
    emulator_stack,
    free_port,
    http,
    stop,
)

TARGET_RATIO = 1.2
SCF_HOST = ROOT / "bench" / "hosts" / "scf_host.py"
MARKER = "@@bench@@ "
GCP_SOURCE = "functions/gcp/main.py"
PUBSUB_SOURCE = "//pubsub.googleapis.com/projects/bench/topics/restore-requests"


def _sign(body: bytes) -> dict[str, str]:
    from pydantic import SecretStr

    from shared import auth

    return auth.sign(SecretStr(WEBHOOK_SECRET), body)


# -- requests ----------------------------------------------------------------------------------
@dataclass
class Prepared:
    """One first request, ready to send; ``check`` confirms on the emulator that it worked."""

    body: bytes = b""
    headers: dict[str, str] | None = None
    events: list[dict[str, Any]] | None = None  # SCF
    check: Callable[[], bool] = lambda: True


def cos_request(key: str) -> dict[str, Any]:
    return {"provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "key": key,
            "days": 1, "tier": "Expedited"}


def webhook_gcs(stack: Stack, name: str) -> Prepared:
    generation = stack.seed_gcs_soft_deleted([name])[name]
    body = json.dumps({"bucket": GCS_BUCKET, "object": name, "generation": str(generation)})
    raw = body.encode()
    return Prepared(raw, {"Content-Type": "application/json", **_sign(raw)},
                    check=lambda: stack.gcs_live(name))


def pubsub_message(payload: Any, message_id: str) -> tuple[bytes, dict[str, str]]:
    """A Pub/Sub ``messagePublished`` CloudEvent in binary mode, as Eventarc delivers it."""
    message = {"data": base64.b64encode(json.dumps(payload).encode()).decode(),
               "messageId": message_id, "publishTime": "2026-11-20T10:00:00Z", "attributes": {}}
    body = json.dumps({"message": message,
                       "subscription": "projects/bench/subscriptions/restore-fn"}).encode()
    headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": message_id,
               "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
               "ce-source": PUBSUB_SOURCE}
    return body, headers


def _cos_check(stack: Stack, key: str) -> Callable[[], bool]:
    return lambda: stack.cos_accepted().get(key) == 1


def queue_cos(stack: Stack, key: str) -> Prepared:
    stack.seed_cos([key])
    body, headers = pubsub_message(cos_request(key), message_id=key)
    return Prepared(body, headers, check=_cos_check(stack, key))


def apigw_event(payload: Any) -> dict[str, Any]:
    """``tests/events/scf_apigw_post.json`` carrying ``payload``, signed like a caller signs."""
    event: dict[str, Any] = json.loads(
        (ROOT / "tests" / "events" / "scf_apigw_post.json").read_text())
    body = json.dumps(payload)
    event["body"] = body
    event["headers"].update({k.lower(): v for k, v in _sign(body.encode()).items()})
    return event


def scf_cos(stack: Stack, key: str) -> Prepared:
    stack.seed_cos([key])
    return Prepared(events=[apigw_event(cos_request(key))], check=_cos_check(stack, key))


# -- what is started ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Side:
    """How one side (ours or the baseline) of an entry point is started."""

    source: str  # functions-framework --source, or the SCF code directory
    target: str = ""  # functions-framework --target; empty for SCF
    ours: bool = True


@dataclass(frozen=True)
class Entry:
    key: str
    name: str
    ours: Side
    baseline: Side
    prepare: Callable[[Stack, str], Prepared]
    expect: Callable[[bool, int, Any], bool]  # (ours?, status, answer) -> answered as expected

    @property
    def scf(self) -> bool:
        return not self.ours.target


def _webhook_answered(ours: bool, status: int, answer: Any) -> bool:
    return status == 200 and (not ours or answer.get("outcome", {}).get("status") == "completed")


def _queue_answered(ours: bool, status: int, answer: Any) -> bool:
    return status == 200


def _scf_answered(ours: bool, status: int, answer: Any) -> bool:
    first = answer["answers"][0]
    return isinstance(first, dict) and first.get("statusCode") == 202


ENTRIES = (
    Entry("gcp_webhook", "Google restore_http (webhook, GCS restore)",
          Side(GCP_SOURCE, "restore_http"),
          Side("bench/baselines/gcp_webhook_gcs.py", "restore", ours=False),
          webhook_gcs, _webhook_answered),
    Entry("gcp_queue", "Google restore_pubsub (Pub/Sub CloudEvent, COS restore)",
          Side(GCP_SOURCE, "restore_pubsub"),
          Side("bench/baselines/gcp_queue_cos.py", "restore", ours=False),
          queue_cos, _queue_answered),
    Entry("scf_apigw", "Tencent SCF main_handler (API Gateway, COS restore)",
          Side("functions/tencent"), Side("bench/baselines/scf", ours=False),
          scf_cos, _scf_answered),
)


def _environment(stack: Stack, side: Side) -> dict[str, str]:
    own = stack.ours_env() if side.ours else stack.baseline_env()
    # Both sides get the repository on sys.path (ours needs `shared`), so both pay the same
    # path lookups.
    return {**clean_environ(), **own, "PYTHONPATH": str(ROOT)}


# -- one cold start ----------------------------------------------------------------------------
class ColdStartFailed(RuntimeError):
    pass


def _run_functions_framework(
    side: Side, env: dict[str, str], request: Prepared, logs: Path
) -> tuple[float, int, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    argv = [FUNCTIONS_FRAMEWORK, "--target", side.target, "--source", side.source,
            "--host", "127.0.0.1", "--port", str(port)]
    with logs.open("w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            while True:
                try:
                    status, raw = http("POST", url, request.body, request.headers or {},
                                       timeout=60)
                    break
                except urllib.error.URLError as exc:
                    if not isinstance(exc.reason, ConnectionRefusedError):
                        raise
                except ConnectionRefusedError:
                    pass
                if process.poll() is not None:
                    raise ColdStartFailed(f"{side.source} exited with {process.returncode}")
                time.sleep(0.002)
            elapsed = time.perf_counter() - started
        finally:
            stop(process)
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        answer = raw[:200]
    return elapsed, status, answer


def _run_scf(side: Side, env: dict[str, str], request: Prepared, workdir: Path) -> tuple[
        float, int, Any]:
    events = workdir / "events.json"
    events.write_text(json.dumps(request.events))
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [PYTHON, str(SCF_HOST), str(ROOT / side.source), str(events)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(MARKER):
                elapsed = time.perf_counter() - started
                return elapsed, 0, json.loads(line[len(MARKER):])
        raise ColdStartFailed(f"{side.source}: the host printed no answer")
    finally:
        stop(process)


def cold_start_once(stack: Stack, entry: Entry, side: Side, tag: str, workdir: Path) -> float:
    """Seconds from spawn to the first answer; raises unless the request really worked."""
    request = entry.prepare(stack, f"cold/{entry.key}/{tag}")
    env = _environment(stack, side)
    if entry.scf:
        elapsed, status, answer = _run_scf(side, env, request, workdir)
    else:
        elapsed, status, answer = _run_functions_framework(
            side, env, request, workdir / "stderr.log")
    if not entry.expect(side.ours, status, answer) or not request.check():
        who = "ours" if side.ours else "baseline"
        stderr = (workdir / "stderr.log")
        tail = stderr.read_text()[-2000:] if stderr.exists() else ""
        raise ColdStartFailed(
            f"{entry.key} ({who}) answered {status} {str(answer)[:300]}; stderr: {tail}")
    return elapsed


def measure_entry(ctx: BenchContext, stack: Stack, entry: Entry, runs: int) -> Row:
    ours: list[float] = []
    base: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        workdir = Path(tmp)
        # One untimed start of each first: page cache and byte-compiled files, for both.
        cold_start_once(stack, entry, entry.ours, "warmup-ours", workdir)
        cold_start_once(stack, entry, entry.baseline, "warmup-base", workdir)
        for i in range(runs):
            # ABBA: which side goes first alternates, so a drift in load favours neither.
            order = [(entry.ours, ours), (entry.baseline, base)]
            if i % 2:
                order.reverse()
            for side, samples in order:
                tag = f"{'ours' if side.ours else 'base'}-{i}"
                samples.append(cold_start_once(stack, entry, side, tag, workdir) * 1000)
    row = Row("cold_start", entry.name, median(ours), median(base), "ms",
              Target.ratio_at_most(TARGET_RATIO), samples=runs,
              detail={"entry": entry.key, "paired_ratio": round(paired_ratio(ours, base), 3),
                      "ours_spread": spread(ours), "baseline_spread": spread(base)})
    ctx.log(f"{entry.key}: ours {row.ours:.0f} ms, baseline {row.baseline:.0f} ms, "
            f"ratio {row.ratio:.2f}")
    return row


@section("cold_start", order=10,
         help="fresh process until the first answer, ours vs a minimal function (ratio)")
def cold_start(ctx: BenchContext) -> list[Row]:
    with emulator_stack() as stack:
        return [measure_entry(ctx, stack, entry, ctx.cold_runs) for entry in ENTRIES]
