"""Warm overhead: our entry points against the hand-written baselines in one process, against
the same emulators (their own processes), iterations interleaved.

Both sides are called the same way, with inputs built before the clock starts: the Google
functions with a ``flask.Request`` (``restore_http``) or a ``cloudevents`` CloudEvent
(``restore_pubsub``), SCF with the API Gateway event dict. Ours therefore includes everything
it adds to a request: the HMAC check, envelope parsing, validation, the allowlist, the ledger,
dispatch, the outcome, and the CloudEvent published through the default log sink (stdout, sent
to /dev/null here) plus its log line. Both make the same provider calls (COS: HEAD then POST
?restore; GCS: one objects.restore with the generation given), each on an object of its own.
The figure that matters is ``added``: the median of the per-pair differences, in ms.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from bench.cold_start import apigw_event, cos_request, pubsub_message
from bench.core import BenchContext, Row, Target, median, paired_added, section, spread
from bench.stack import GCS_BUCKET, ROOT, Stack, clean_environ, emulator_stack, http

TARGET_ADDED_MS = 1.0
WARMUP = 20


def load_module(path: str, name: str) -> ModuleType:
    """Import a function's source file under a name of our choosing (both SCF modules are
    called ``index``; the Google one ``main``)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({**clean_environ(), **values})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Events (stdout) and log lines (stderr) are still formatted and written, to /dev/null."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
            contextlib.redirect_stderr(null):
        yield


# -- inputs --------------------------------------------------------------------------------------
def flask_request(body: bytes, headers: dict[str, str]) -> Any:
    from flask import Request
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path="/", method="POST", data=body, headers=list(headers.items()))
    try:
        return Request(builder.get_environ())
    finally:
        builder.close()


def cloud_event(payload: Any, message_id: str) -> Any:
    from cloudevents.http import CloudEvent

    body, headers = pubsub_message(payload, message_id)
    attributes = {"specversion": "1.0", "id": message_id, "type": headers["ce-type"],
                  "source": headers["ce-source"]}
    return CloudEvent(attributes, json.loads(body))


def _signed(body: bytes) -> dict[str, str]:
    from bench.cold_start import _sign

    return {"Content-Type": "application/json", **_sign(body)}


@dataclass
class Case:
    """One entry point: a call of ours and of the baseline for iteration i, and a check."""

    key: str
    name: str
    ours: Callable[[int], Callable[[], Any]]  # i -> a ready call (inputs built)
    baseline: Callable[[int], Callable[[], Any]]
    expect_ours: Callable[[Any], bool]
    expect_baseline: Callable[[Any], bool]
    verify: Callable[[], str | None]  # after the loop: None, or what went wrong


def webhook_case(stack: Stack, total: int) -> Case:
    ours_mod = load_module("functions/gcp/main.py", "bench_ours_gcp_main")
    base_mod = load_module("bench/baselines/gcp_webhook_gcs.py", "bench_base_gcp_webhook")
    ours_mod.reset_service()
    names = {side: [f"warm/webhook/{side}/{i}" for i in range(total)] for side in ("o", "b")}
    generations = stack.seed_gcs_soft_deleted(names["o"] + names["b"])

    def body(side: str, i: int) -> bytes:
        name = names[side][i]
        return json.dumps({"bucket": GCS_BUCKET, "object": name,
                           "generation": str(generations[name])}).encode()

    def ours(i: int) -> Callable[[], Any]:
        raw = body("o", i)
        request = flask_request(raw, _signed(raw))
        return lambda: ours_mod.restore_http(request)

    def baseline(i: int) -> Callable[[], Any]:
        request = flask_request(body("b", i), {"Content-Type": "application/json"})
        return lambda: base_mod.restore(request)

    def verify() -> str | None:
        _, raw = http("GET", f"{stack.gcs.url}/_emulator/objects?bucket={GCS_BUCKET}")
        live = {g["name"] for g in json.loads(raw) if g["state"] == "live"}
        missing = [n for n in names["o"] + names["b"] if n not in live]
        return f"{len(missing)} objects not restored, e.g. {missing[:3]}" if missing else None

    return Case("gcp_webhook", "Google restore_http (webhook, GCS restore)", ours, baseline,
                lambda answer: answer[1] == 200, lambda answer: answer[1] == 200, verify)


def _cos_keys(stack: Stack, entry: str, total: int) -> dict[str, list[str]]:
    keys = {side: [f"warm/{entry}/{side}/{i}" for i in range(total)] for side in ("o", "b")}
    stack.seed_cos(keys["o"] + keys["b"])
    return keys


def _verify_cos(stack: Stack, keys: dict[str, list[str]]) -> Callable[[], str | None]:
    def verify() -> str | None:
        accepted = stack.cos_accepted()
        wrong = [k for k in keys["o"] + keys["b"] if accepted.get(k) != 1]
        return f"{len(wrong)} objects not restored once, e.g. {wrong[:3]}" if wrong else None

    return verify


def queue_case(stack: Stack, total: int) -> Case:
    ours_mod = load_module("functions/gcp/main.py", "bench_ours_gcp_main")
    base_mod = load_module("bench/baselines/gcp_queue_cos.py", "bench_base_gcp_queue")
    ours_mod.reset_service()
    keys = _cos_keys(stack, "queue", total)

    def ours(i: int) -> Callable[[], Any]:
        event = cloud_event(cos_request(keys["o"][i]), f"bench-o-{i}")
        return lambda: ours_mod.restore_pubsub(event)

    def baseline(i: int) -> Callable[[], Any]:
        event = cloud_event(cos_request(keys["b"][i]), f"bench-b-{i}")
        return lambda: base_mod.restore(event)

    return Case("gcp_queue", "Google restore_pubsub (Pub/Sub CloudEvent, COS restore)", ours,
                baseline, lambda answer: answer is None, lambda answer: answer is None,
                _verify_cos(stack, keys))


def scf_case(stack: Stack, total: int) -> Case:
    ours_mod = load_module("functions/tencent/index.py", "bench_ours_scf_index")
    base_mod = load_module("bench/baselines/scf/index.py", "bench_base_scf_index")
    ours_mod.reset_service()
    keys = _cos_keys(stack, "scf", total)
    context = {"request_id": "bench-invocation"}

    def ours(i: int) -> Callable[[], Any]:
        event = apigw_event(cos_request(keys["o"][i]))
        return lambda: ours_mod.main_handler(event, context)

    def baseline(i: int) -> Callable[[], Any]:
        event = apigw_event(cos_request(keys["b"][i]))
        return lambda: base_mod.main_handler(event, context)

    def accepted(answer: Any) -> bool:
        return isinstance(answer, dict) and answer.get("statusCode") == 202

    return Case("scf_apigw", "Tencent SCF main_handler (API Gateway, COS restore)", ours,
                baseline, accepted, accepted, _verify_cos(stack, keys))


CASES = (webhook_case, queue_case, scf_case)


# -- the loop ------------------------------------------------------------------------------------
class WarmCheckFailed(RuntimeError):
    pass


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter_ns()
    answer = call()
    return (time.perf_counter_ns() - started) / 1e6, answer


def measure_case(ctx: BenchContext, case: Case, iterations: int) -> Row:
    ours: list[float] = []
    base: list[float] = []
    with silenced():
        for i in range(WARMUP + iterations):
            # Alternate which side goes first: neither always follows the other's traffic.
            order = [("o", case.ours, case.expect_ours, ours),
                     ("b", case.baseline, case.expect_baseline, base)]
            if i % 2:
                order.reverse()
            for side, make, expect, samples in order:
                call = make(i)
                elapsed, answer = _timed(call)
                if not expect(answer):
                    raise WarmCheckFailed(f"{case.key} ({side}) iteration {i}: {answer!r:.300}")
                if i >= WARMUP:
                    samples.append(elapsed)
    problem = case.verify()
    if problem is not None:
        raise WarmCheckFailed(f"{case.key}: {problem}")
    row = Row("warm", case.name, median(ours), median(base), "ms",
              Target.added_at_most(TARGET_ADDED_MS, "ms"), added=paired_added(ours, base),
              samples=iterations,
              detail={"entry": case.key, "ours_spread": spread(ours),
                      "baseline_spread": spread(base)})
    ctx.log(f"{case.key}: ours {row.ours:.2f} ms, baseline {row.baseline:.2f} ms, "
            f"added {row.added:+.2f} ms")
    return row


@section("warm", order=20,
         help="in-process: our handler vs a direct SDK call, same provider calls (added ms)")
def warm(ctx: BenchContext) -> list[Row]:
    iterations = ctx.warm_iterations
    rows = []
    with emulator_stack() as stack, environment(stack.ours_env()):
        for build in CASES:
            case = build(stack, WARMUP + iterations)
            rows.append(measure_case(ctx, case, iterations))
    return rows
