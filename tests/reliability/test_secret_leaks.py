"""Issue 7 §4: a demo-sized run with known secret values leaks none of them anywhere.

``make demo``'s own flow (``scripts.demo.main``) runs with a known webhook secret (which the local
stack also uses for the HTTP event sink and the re-check task signatures) and the COS emulator's
known key pair: webhook, Pub/Sub, Cloud Tasks re-check, SCF API Gateway / CMQ / COS trigger, a
bulk job with its report. Before the stack stops, the test adds the failures a secret is most
likely to leak through: refused signatures, validation errors, a bucket outside the allowlist, a
missing object, the COS API refusing with 403 and failing with 500, and signed status reads.
Then every function log line (the three functions-framework processes), everything this process
printed (the SCF handler logs in-process), every event, every error body, every report object
and every queued Cloud Tasks task is searched for each secret: zero hits.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import SecretStr

from emulators._http import FaultPlan
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from scripts import demo
from scripts.local import LocalStack
from shared import auth

WEBHOOK_SECRET = "canary-webhook-secret-5c1f0e9a7d"
SECRETS = {
    "webhook / event sink / task signing secret": WEBHOOK_SECRET,
    "COS SecretKey": DEFAULT_SECRET_KEY,
    "COS SecretId": DEFAULT_SECRET_ID,  # not a secret by Tencent's model, kept out all the same
}
# A logged Authorization header or signing material would show up as these.
SIGNING_MARKERS = ("q-signature=", "q-sign-algorithm", "Authorization")


def _call(url: str, body: bytes | None, headers: dict[str, str],
          method: str = "POST") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class HostileCalls:
    """What the test adds to the demo before its stack stops: the error paths."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, int, str]] = []

    def __call__(self, stack: LocalStack) -> None:
        url = stack.functions["restore_http"].url
        cos = {"Bucket": demo.COS_BUCKET, "Region": "ap-guangzhou", "Key": "leak/x.bin",
               "RestoreRequest": {"Days": 1, "CASJobParameters": {"Tier": "Standard"}}}
        stack.cos_emulator.put_object(demo.COS_BUCKET, "leak/x.bin", b"x", "ARCHIVE")
        stack.cos_emulator.put_object(demo.COS_BUCKET, "leak/y.bin", b"y", "ARCHIVE")

        def post(name: str, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            sent = {"Content-Type": "application/json",
                    **(auth.sign(stack.secret, body) if headers is None else headers)}
            self.answers.append((name, *_call(url, body, sent)))

        post("wrong secret", cos, auth.sign(SecretStr("guess"), b"{}"))
        post("unsigned", cos, {})
        post("validation", {"bucket": demo.GCS_BUCKET, "object": "", "generation": "x"})
        post("not allowed", {**cos, "Bucket": "other-1250000000"})
        post("missing object", {"bucket": demo.GCS_BUCKET, "object": "no/such.csv"})
        stack.cos.faults.set(FaultPlan(script=[403], match_method="POST"))
        post("COS 403", {**cos, "request_id": "leak-403"})
        stack.cos.faults.set(FaultPlan(error_rate=1.0, error_status=500, match_method="POST"))
        post("COS 500", {**cos, "Key": "leak/y.bin", "request_id": "leak-500"})
        stack.cos.faults.clear()
        for query in ({"provider": "cos", "bucket": demo.COS_BUCKET, "region": "ap-guangzhou",
                       "key": "leak/x.bin"},
                      {"bucket": demo.GCS_BUCKET, "object": demo.GCS_OBJECT}):
            target = f"{url}status?{auth.canonical_query(query).decode()}"
            self.answers.append(("status", *_call(target, None, auth.sign_query(stack.secret,
                                                                               query), "GET")))
        self.events = list(stack.collector.events)
        self.reports = {
            obj["key"]: stack.cos_emulator.object_body(demo.REPORT_BUCKET, obj["key"]).decode()
            for obj in stack.cos_emulator.objects(demo.REPORT_BUCKET)
        }
        self.tasks = stack.tasks_emulator.tasks()
        self.secret_in_use = stack.secret.get_secret_value()
        self.refused_events = stack.collector.refused


def test_a_demo_sized_run_with_known_secrets_leaks_none_of_them(capfd: Any) -> None:
    logs = demo.FunctionLogs()
    hostile = HostileCalls()
    status = demo.main(secret=SecretStr(WEBHOOK_SECRET), logs=logs, before_teardown=hostile)
    printed = capfd.readouterr()
    assert status == 0, printed.out[-3000:]

    # The secrets were really in play: the functions signed every event with the known secret
    # (the collector verified each one) and the error paths answered as designed.
    assert hostile.secret_in_use == WEBHOOK_SECRET
    assert len(hostile.events) >= 9 and hostile.refused_events == 0
    codes = {name: code for name, code, _ in hostile.answers}
    assert codes == {"wrong secret": 401, "unsigned": 401, "validation": 422,
                     "not allowed": 403, "missing object": 404, "COS 403": 502,
                     "COS 500": 503, "status": 200}
    assert any(key.endswith("report.csv") for key in hostile.reports)

    corpus = {
        "function logs": "\n".join(line for _, line in logs.lines),
        "demo and SCF handler output": printed.out + printed.err,
        "events": json.dumps(hostile.events),
        "error and status bodies": json.dumps(hostile.answers),
        "bulk report objects": json.dumps(hostile.reports),
        "Cloud Tasks tasks": json.dumps(hostile.tasks),
    }
    assert len(logs.lines) >= 12 and all(corpus.values())  # nothing scanned is empty
    hits = [(secret, where) for secret, value in SECRETS.items()
            for where, text in corpus.items() if value in text]
    assert hits == []
    markers = [(marker, where) for marker in SIGNING_MARKERS
               for where, text in corpus.items() if where != "Cloud Tasks tasks"
               and marker in text]
    assert markers == []
