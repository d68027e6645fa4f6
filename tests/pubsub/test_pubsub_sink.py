"""PubSubSink: REST publishing against the real Pub/Sub emulator, retries, import rules."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from shared.events import CloudEvent, build_event
from shared.outcome import Outcome, OutcomeStatus
from shared.sinks import SinkError
from shared.sinks.pubsub import (
    MAX_ORDERING_KEY_BYTES,
    STRUCTURED_CONTENT_TYPE,
    PubSubSink,
    message_for,
    ordering_key,
)
from tests.pubsub.conftest import PubSubEmulator

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "restorefn-test"


def make_event(key: str = "reports/q3 final.csv", **overrides: object) -> CloudEvent:
    fields: dict[str, object] = dict(
        status=OutcomeStatus.COMPLETED, request_id=f"req-{uuid.uuid4()}", provider="gcs",
        bucket="my-bucket", key=key, generation=11, restored_generation=22,
        context={"ticket": "OPS-1"},
    )
    fields.update(overrides)
    return build_event(Outcome(**fields))  # type: ignore[arg-type]


@pytest.fixture
def topic_and_subscription(pubsub_emulator: PubSubEmulator) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    topic = f"projects/{PROJECT}/topics/restore-events-{suffix}"
    subscription = f"projects/{PROJECT}/subscriptions/restore-sub-{suffix}"
    base = pubsub_emulator.url
    response = requests.put(f"{base}/v1/{topic}", json={}, timeout=10)
    assert response.status_code == 200, response.text
    response = requests.put(
        f"{base}/v1/{subscription}",
        json={"topic": topic, "enableMessageOrdering": True, "ackDeadlineSeconds": 10},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return topic, subscription


def pull(emulator: PubSubEmulator, subscription: str, expected: int) -> list[dict[str, object]]:
    received: list[dict[str, object]] = []
    for _ in range(20):  # the emulator may hand out messages in more than one pull
        response = requests.post(
            f"{emulator.url}/v1/{subscription}:pull",
            json={"maxMessages": 10, "returnImmediately": True},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        batch = response.json().get("receivedMessages", [])
        if batch:
            requests.post(
                f"{emulator.url}/v1/{subscription}:acknowledge",
                json={"ackIds": [m["ackId"] for m in batch]},
                timeout=10,
            ).raise_for_status()
        received.extend(m["message"] for m in batch)
        if len(received) >= expected:
            break
    return received


def test_publish_reaches_a_subscription_with_binding_attributes_and_ordering_key(
    pubsub_emulator: PubSubEmulator, topic_and_subscription: tuple[str, str]
) -> None:
    topic, subscription = topic_and_subscription
    sink = PubSubSink(topic, endpoint=pubsub_emulator.host)
    event = make_event()
    sink.publish(event)

    [message] = pull(pubsub_emulator, subscription, 1)
    data = json.loads(base64.b64decode(message["data"]))  # type: ignore[arg-type]
    assert data == json.loads(event.to_json())
    assert data["id"] == event.id
    assert data["data"]["context"] == {"ticket": "OPS-1"}
    attributes = message["attributes"]
    assert attributes == {
        "Content-Type": STRUCTURED_CONTENT_TYPE,
        "ce-specversion": "1.0",
        "ce-id": event.id,
        "ce-source": "//storage.googleapis.com/projects/_/buckets/my-bucket",
        "ce-type": "restorefn.object.restore.v1.completed",
        "ce-subject": "objects/reports/q3%20final.csv",
        "ce-time": data["time"],
    }
    assert message["orderingKey"] == "my-bucket/reports/q3 final.csv"


def test_events_of_one_object_arrive_in_publish_order(
    pubsub_emulator: PubSubEmulator, topic_and_subscription: tuple[str, str]
) -> None:
    topic, subscription = topic_and_subscription
    sink = PubSubSink(topic, endpoint=f"http://{pubsub_emulator.host}/")
    request_id = f"req-{uuid.uuid4()}"
    statuses = [OutcomeStatus.INITIATED, OutcomeStatus.IN_PROGRESS, OutcomeStatus.COMPLETED]
    events = [make_event(status=s, request_id=request_id, provider="cos",
                         bucket="archive-1250000000", region="ap-guangzhou") for s in statuses]
    for event in events:
        sink.publish(event)
    messages = pull(pubsub_emulator, subscription, 3)
    assert [m["attributes"]["ce-id"] for m in messages] == [e.id for e in events]  # type: ignore[index]
    assert {m["orderingKey"] for m in messages} == {"archive-1250000000/reports/q3 final.csv"}


def test_missing_topic_is_final_without_retries(pubsub_emulator: PubSubEmulator) -> None:
    sleeps: list[float] = []
    sink = PubSubSink(f"projects/{PROJECT}/topics/does-not-exist", endpoint=pubsub_emulator.host,
                      attempts=4, sleep=sleeps.append)
    event = make_event()
    with pytest.raises(SinkError, match=r"HTTP 404 NOT_FOUND") as info:
        sink.publish(event)
    assert sleeps == []  # no second attempt was even scheduled
    assert event.id in str(info.value)


class _Scripted(BaseHTTPRequestHandler):
    statuses: list[int] = []
    seen: list[dict[str, object]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append({"path": self.path, "body": body,
                          "authorization": self.headers.get("Authorization")})
        status = self.statuses.pop(0) if self.statuses else 200
        payload = json.dumps({"messageIds": ["1"]} if status == 200 else
                             {"error": {"code": status, "message": "secret-ish detail",
                                        "status": "UNAVAILABLE" if status >= 500 else "X"}})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"statuses": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_retries_429_and_5xx_then_succeeds(scripted: tuple[str, type[_Scripted]]) -> None:
    host, handler = scripted
    handler.statuses.extend([503, 429, 500])
    sleeps: list[float] = []
    sink = PubSubSink("projects/p1/topics/events", endpoint=host, attempts=4, sleep=sleeps.append)
    sink.publish(make_event())
    assert len(handler.seen) == 4
    assert len(sleeps) == 3
    assert all(0 < s <= 4.0 * 1.5 for s in sleeps)
    assert handler.seen[0]["path"] == "/v1/projects/p1/topics/events:publish"
    assert handler.seen[0]["authorization"] is None  # emulator endpoint: anonymous


def test_gives_up_after_bounded_attempts_without_echoing_the_body(
    scripted: tuple[str, type[_Scripted]],
) -> None:
    host, handler = scripted
    handler.statuses.extend([503] * 10)
    sink = PubSubSink("projects/p1/topics/events", endpoint=host, attempts=3,
                      sleep=lambda _s: None)
    with pytest.raises(SinkError) as info:
        sink.publish(make_event())
    assert len(handler.seen) == 3
    assert "HTTP 503 UNAVAILABLE" in str(info.value)
    assert "secret-ish" not in str(info.value)


def test_client_error_is_final(scripted: tuple[str, type[_Scripted]]) -> None:
    host, handler = scripted
    handler.statuses.extend([403])
    sink = PubSubSink("projects/p1/topics/events", endpoint=host, sleep=lambda _s: None)
    with pytest.raises(SinkError, match="HTTP 403"):
        sink.publish(make_event())
    assert len(handler.seen) == 1


def test_connection_errors_are_retried_then_reported() -> None:
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    sleeps: list[float] = []
    sink = PubSubSink("projects/p1/topics/events", endpoint=f"127.0.0.1:{port}", attempts=3,
                      timeout=2, sleep=sleeps.append)
    with pytest.raises(SinkError, match="ConnectionError"):
        sink.publish(make_event())
    assert len(sleeps) == 2


def test_production_path_uses_authorized_session_with_default_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession

    scopes_seen: list[object] = []

    def fake_default(scopes: object = None, **_: object) -> tuple[object, str]:
        scopes_seen.append(scopes)
        return AnonymousCredentials(), "proj"  # type: ignore[no-untyped-call]

    monkeypatch.setattr(google.auth, "default", fake_default)
    sink = PubSubSink("projects/p1/topics/events")
    assert sink.url == "https://pubsub.googleapis.com/v1/projects/p1/topics/events:publish"
    session = sink._get_session()
    assert isinstance(session, AuthorizedSession)
    assert sink._get_session() is session  # built once, reused
    assert scopes_seen == [["https://www.googleapis.com/auth/pubsub"]]


def test_missing_credentials_become_a_sink_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_credentials(**_: object) -> None:
        raise DefaultCredentialsError("File /secret/path/key.json was not found")  # type: ignore[no-untyped-call]

    monkeypatch.setattr(google.auth, "default", no_credentials)
    sink = PubSubSink("projects/p1/topics/events")
    with pytest.raises(SinkError, match="no usable Google credentials") as info:
        sink.publish(make_event())
    assert "/secret/path" not in str(info.value)


def test_topic_must_be_a_full_resource_name() -> None:
    for bad in ("events", "projects/p/topics/", "projects/p/subscriptions/s", "topics/t"):
        with pytest.raises(ValueError, match="projects/PROJECT/topics/TOPIC"):
            PubSubSink(bad)


def test_ordering_key_is_bounded_and_distinct_for_long_names() -> None:
    long_a = "a" * 1100 + "x"
    long_b = "a" * 1100 + "y"
    key_a, key_b = ordering_key("bkt", long_a), ordering_key("bkt", long_b)
    assert key_a is not None and key_b is not None
    assert len(key_a.encode()) <= MAX_ORDERING_KEY_BYTES
    assert key_a != key_b
    assert ordering_key("bkt", "é" * 600) is not None  # multi-byte names are cut on a boundary
    assert len(ordering_key("bkt", "é" * 600).encode()) <= MAX_ORDERING_KEY_BYTES  # type: ignore[union-attr]
    assert ordering_key(None, "k") is None


def test_rejected_event_without_object_has_no_ordering_key_and_oversized_attributes_drop() -> None:
    rejected = build_event(Outcome(status=OutcomeStatus.REJECTED, request_id="r-1"))
    message = message_for(rejected)
    assert "orderingKey" not in message
    assert "ce-subject" not in message["attributes"]
    long_key = make_event(key="k" * 1020)  # subject "objects/" + 1020 bytes > 1024
    attributes = message_for(long_key)["attributes"]
    assert "ce-subject" not in attributes
    assert attributes["ce-id"] == long_key.id


def test_importing_the_sink_loads_neither_google_auth_transport_nor_grpc() -> None:
    code = (
        "import sys, shared.sinks.pubsub\n"
        "heavy = [m for m in ('google.auth.transport.requests', 'grpc', 'requests',"
        " 'google.cloud.pubsub_v1', 'google.auth') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""
