"""Per-request callbacks: each phase's CloudEvent is POSTed to the request's callback_url,
signed, retried, and refused at admission when the URL is not safe to call."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from shared import auth
from shared.callbacks import Callbacks
from shared.outcome import OutcomeStatus
from shared.retry import RetryPolicy
from shared.service import RestoreService
from tests.conftest import (
    COS_BUCKET,
    GCS_BUCKET,
    CollectingSink,
    cos_request,
    gcs_request,
    make_settings,
)

SECRET = "callback-test-secret"


class Receiver:
    """A loopback HTTP endpoint that answers from a script and keeps what it accepted."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.script = list(script or [])
        self.accepted: list[tuple[dict[str, str], dict]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                status = receiver.script.pop(0) if receiver.script else 204
                if status < 300:
                    receiver.accepted.append((dict(self.headers.items()), json.loads(body)))
                    receiver.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.bodies: list[bytes] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _service(cos_emulator, gcs_emulator, sink, **overrides) -> RestoreService:
    settings = make_settings(cos_emulator, gcs_emulator, callback_secret=SecretStr(SECRET),
                             retry_base_seconds=0.0, **overrides)
    return RestoreService(settings, sink=sink, retry=RetryPolicy.from_settings(settings))


def test_each_phase_reaches_the_callback_signed_with_the_context_untouched(
    cos_emulator, gcs_emulator, receiver
):
    cos_emulator.emulator.put_object(COS_BUCKET, "cb/a.bin", b"x", "ARCHIVE")
    sink = CollectingSink()
    service = _service(cos_emulator, gcs_emulator, sink)
    context = {"workflow": "nightly", "nested": {"n": [1, 2]}}
    request = cos_request("cb/a.bin", request_id="cb-1", callback_url=receiver.url,
                          context=context)
    assert service.restore(request).status is OutcomeStatus.INITIATED
    cos_emulator.emulator.clock.advance(3600)
    assert service.check(request).status is OutcomeStatus.COMPLETED
    phases = [body["data"]["outcome"] for _, body in receiver.accepted]
    assert phases == ["initiated", "completed"]
    assert [e.id for e in sink.events] == [body["id"] for _, body in receiver.accepted]
    for (headers, body), raw in zip(receiver.accepted, receiver.bodies, strict=True):
        auth.verify((SecretStr(SECRET),), headers, raw)  # raises if not signed by us
        assert body["data"]["context"] == context
        assert "callback_url" not in body["data"]


def test_a_failing_callback_is_retried_then_delivered(cos_emulator, gcs_emulator):
    receiver = Receiver(script=[500, 503])
    try:
        gcs_emulator.emulator.put_object(GCS_BUCKET, "cb.txt", b"x")
        gcs_emulator.emulator.delete_object(GCS_BUCKET, "cb.txt")
        service = _service(cos_emulator, gcs_emulator, CollectingSink())
        service.callbacks = Callbacks(secret=SecretStr(SECRET), attempts=3)
        service.restore(gcs_request("cb.txt", callback_url=receiver.url))
    finally:
        receiver.close()
    assert receiver.attempts == 3
    assert [body["data"]["outcome"] for _, body in receiver.accepted] == ["completed"]


def test_a_callback_that_never_answers_does_not_fail_the_restore(cos_emulator, gcs_emulator):
    receiver = Receiver(script=[500] * 10)
    try:
        gcs_emulator.emulator.put_object(GCS_BUCKET, "cb2.txt", b"x")
        gcs_emulator.emulator.delete_object(GCS_BUCKET, "cb2.txt")
        sink = CollectingSink()
        service = _service(cos_emulator, gcs_emulator, sink, callback_attempts=2)
        outcome = service.restore(gcs_request("cb2.txt", callback_url=receiver.url))
    finally:
        receiver.close()
    assert outcome.status is OutcomeStatus.COMPLETED
    assert sink.types() == ["completed"]  # the event itself went out
    assert receiver.attempts == 2  # bounded


@pytest.mark.parametrize(("url", "why"), [
    ("http://example.com/hook", "https"),
    ("http://169.254.169.254/computeMetadata/v1/", "metadata"),
    ("https://metadata.google.internal/x", "metadata"),
    ("https://user:pw@example.com/hook", "credentials"),
    ("ftp://example.com/hook", "http(s)"),
])
def test_unsafe_callback_urls_are_refused_at_admission(cos_emulator, gcs_emulator, url, why):
    sink = CollectingSink()
    service = _service(cos_emulator, gcs_emulator, sink)
    outcome = service.handle(gcs_request("x.txt", callback_url=url)).outcome
    assert outcome.status is OutcomeStatus.REJECTED
    assert outcome.error is not None
    problems = [(p.field, p.type) for p in outcome.error.fields or []]
    if why != "http(s)":  # pydantic refuses non-http schemes before our check
        assert problems == [("callback_url", "callback_url_refused")]
        assert why in outcome.error.fields[0].reason
    else:
        assert [f for f, _ in problems] == ["callback_url"]
    assert not [e for e in gcs_emulator.log.entries() if e.path.endswith("/restore")]


def test_allowed_hosts_and_plain_http_opt_in():
    strict = Callbacks(allowed_hosts=("*.example.com",))
    assert strict.refusal("https://hooks.example.com/x") is None
    assert strict.refusal("https://evil.test/x") is not None
    assert Callbacks(allow_http=True).refusal("http://intranet.local/x") is None
    assert Callbacks().refusal("http://127.0.0.1:9/x") is None
    assert Callbacks().refusal("http://[::1]:9/x") is None


def test_workflows_callbacks_need_google_credentials():
    def no_credentials() -> str:
        raise RuntimeError("no ADC here")

    from datetime import datetime, timezone

    from shared.events import build_event
    from shared.outcome import Outcome

    event = build_event(Outcome(status=OutcomeStatus.COMPLETED, request_id="wf-1"),
                        now=datetime(2026, 11, 20, tzinfo=timezone.utc))
    callbacks = Callbacks(google_token=no_credentials)
    url = "https://workflowexecutions.googleapis.com/v1/projects/p/locations/l/workflows/w/" \
          "executions/e/callbacks/c"
    assert callbacks.deliver(event, url) is False
