"""CloudEvents built from outcomes, and the log and HTTP sinks delivering them."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from shared import auth
from shared.events import build_event, event_id
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.sinks import LogSink, SinkError
from shared.sinks.http import HttpSink


def gcs_outcome(**overrides) -> Outcome:
    fields = dict(
        status=OutcomeStatus.COMPLETED, request_id="req-1", provider="gcs", bucket="my-bucket",
        key="dir/file name.txt", generation=11, restored_generation=22,
        context={"workflow": "wf", "n": [1, 2]},
    )
    fields.update(overrides)
    return Outcome(**fields)


def test_event_is_structured_cloudevent_with_source_subject_and_data():
    event = json.loads(build_event(gcs_outcome()).to_json())
    assert event["specversion"] == "1.0"
    assert event["type"].endswith(".completed")
    assert event["source"] == "//storage.googleapis.com/projects/_/buckets/my-bucket"
    assert event["subject"] == "objects/dir/file%20name.txt"
    assert event["datacontenttype"] == "application/json"
    data = event["data"]
    assert (data["outcome"], data["generation"], data["restored_generation"]) == (
        "completed", 11, 22,
    )
    assert data["context"] == {"workflow": "wf", "n": [1, 2]}


def test_cos_source_names_region_and_bucket():
    outcome = gcs_outcome(provider="cos", bucket="b-1250000000", region="ap-chengdu",
                          status=OutcomeStatus.INITIATED)
    assert build_event(outcome).source == "//cos.ap-chengdu.myqcloud.com/buckets/b-1250000000"


def test_event_id_is_deterministic_per_request_and_phase():
    first = build_event(gcs_outcome())
    again = build_event(gcs_outcome())
    failed = build_event(gcs_outcome(status=OutcomeStatus.FAILED))
    other = build_event(gcs_outcome(request_id="req-2"))
    assert first.id == again.id == event_id("req-1", OutcomeStatus.COMPLETED)
    assert len({first.id, failed.id, other.id}) == 3


def test_each_status_has_its_own_type():
    types = {build_event(gcs_outcome(status=s)).type for s in OutcomeStatus}
    assert len(types) == len(OutcomeStatus)


def test_log_sink_writes_one_json_line_per_event():
    stream = io.StringIO()
    sink = LogSink(stream)
    sink.publish(build_event(gcs_outcome()))
    sink.publish(build_event(gcs_outcome(status=OutcomeStatus.FAILED, error=ErrorInfo(
        code=ErrorCode.NOT_FOUND, message="gone", http_status=404))))
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["data"]["outcome"] for line in lines] == ["completed", "failed"]


class _Receiver(BaseHTTPRequestHandler):
    statuses: list[int] = []
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        status = type(self).statuses.pop(0) if type(self).statuses else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        return


@pytest.fixture
def receiver():
    handler = type("Receiver", (_Receiver,), {"statuses": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/events"
    server.shutdown()
    server.server_close()


def test_http_sink_posts_signed_structured_event(receiver):
    handler, url = receiver
    secret = SecretStr("sink-secret")
    event = build_event(gcs_outcome())
    HttpSink(url, secret=secret, sleep=lambda s: None).publish(event)
    [(headers, body)] = handler.received
    assert headers["Content-Type"].startswith("application/cloudevents+json")
    assert json.loads(body)["id"] == event.id
    auth.verify([secret], headers, body)


def test_http_sink_retries_server_errors_then_succeeds(receiver):
    handler, url = receiver
    handler.statuses.extend([503, 500])
    pauses: list[float] = []
    HttpSink(url, attempts=3, sleep=pauses.append).publish(build_event(gcs_outcome()))
    assert len(handler.received) == 3
    assert len(pauses) == 2 and pauses[1] > pauses[0] * 0.5


def test_http_sink_does_not_retry_client_errors_and_raises(receiver):
    handler, url = receiver
    handler.statuses.extend([400])
    with pytest.raises(SinkError, match="HTTP 400"):
        HttpSink(url, attempts=3, sleep=lambda s: None).publish(build_event(gcs_outcome()))
    assert len(handler.received) == 1


def test_http_sink_gives_up_after_bounded_attempts_on_network_errors():
    # A port nothing listens on: bind, note the port, close.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pauses: list[float] = []
    with pytest.raises(SinkError):
        HttpSink(f"http://127.0.0.1:{port}/", attempts=2, sleep=pauses.append).publish(
            build_event(gcs_outcome())
        )
    assert len(pauses) == 1
