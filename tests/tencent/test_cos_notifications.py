"""The COS emulator's restore notifications: timing on the virtual clock, the record shape
(the same as the golden SCF COS-trigger events), delivery to a callable, a URL, a background
thread and the standalone ``--notify-url`` flag."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from qcloud_cos import CosConfig, CosS3Client

from emulators._http import serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, CosEmulator
from emulators.cos.notify import cos_record
from shared.envelopes import CosRestoreNotice, parse_cos_record
from tests.conftest import COS_BUCKET, COS_REGION
from tests.tencent.conftest import ROOT, golden

EXPEDITED = 60


def client(url: str) -> CosS3Client:
    port = int(url.rsplit(":", 1)[1])
    config = CosConfig(Region=COS_REGION, SecretId=DEFAULT_SECRET_ID, SecretKey=DEFAULT_SECRET_KEY,
                       Scheme="http", IP="127.0.0.1", Port=port)
    return CosS3Client(config, retry=0)


def restore(url: str, key: str, *, days: int = 1, tier: str = "Expedited") -> None:
    client(url).restore_object(
        Bucket=COS_BUCKET, Key=key,
        RestoreRequest={"Days": days, "CASJobParameters": {"Tier": tier}},
    )


@pytest.fixture
def notified() -> Iterator[tuple[Any, list[dict]]]:
    received: list[dict] = []
    with serve(CosEmulator(restore_notify=received.append)) as running:
        yield running, received


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value types, maps of headers left opaque."""
    if isinstance(value, dict):
        return {k: "map" if k in ("meta", "requestHeaders") else shape(v) for k, v in value.items()}
    return type(value).__name__


def test_post_is_due_at_once_and_completed_when_the_job_finishes(notified):
    running, received = notified
    emulator = running.emulator
    emulator.put_object(COS_BUCKET, "a/b c.bin", b"12345", "ARCHIVE")
    restore(running.url, "a/b c.bin")
    (post,) = emulator.deliver_due_notifications()
    assert post["Records"][0]["event"]["eventName"] == "cos:ObjectRestore:Post"
    emulator.clock.advance(EXPEDITED - 1)
    assert emulator.deliver_due_notifications() == []  # not finished yet
    emulator.clock.advance(2)
    (completed,) = emulator.deliver_due_notifications()
    assert emulator.deliver_due_notifications() == []  # each is sent once
    assert received == [post, completed]
    record = completed["Records"][0]
    assert record["event"]["eventName"] == "cos:ObjectRestore:Completed"
    state = emulator.restore_state(COS_BUCKET, "a/b c.bin")
    assert record["event"]["eventTime"] == int(state["completes_at"])
    assert record["cos"]["cosObject"]["key"] == "/1250000000/archive/a/b%20c.bin"
    assert record["cos"]["cosObject"]["size"] == 5
    assert record["cos"]["cosBucket"] == {
        "region": "gz", "name": "archive", "appid": "1250000000", "s3Region": COS_REGION,
        "cosRegion": COS_REGION,
    }


@pytest.mark.parametrize(
    ("golden_name", "event_name"),
    [("scf_cos_restore_completed.json", "cos:ObjectRestore:Completed"),
     ("scf_cos_restore_post.json", "cos:ObjectRestore:Post")],
)
def test_emulator_records_have_the_golden_shape_and_decode_alike(notified, golden_name,
                                                                 event_name):
    running, _ = notified
    emulator = running.emulator
    key = "golden/logs 2026-11-19.tar.gz"
    emulator.put_object(COS_BUCKET, key, b"x" * 1029, "ARCHIVE")
    restore(running.url, key)
    emulator.clock.advance(EXPEDITED + 1)
    events = emulator.deliver_due_notifications()
    (made,) = [e["Records"][0] for e in events if e["Records"][0]["event"]["eventName"] ==
               event_name]
    expected = golden(golden_name)["Records"][0]
    assert shape(made) == shape(expected)
    ours, theirs = parse_cos_record(made, 0), parse_cos_record(expected, 0)
    assert isinstance(ours, CosRestoreNotice) and isinstance(theirs, CosRestoreNotice)
    assert (ours.bucket, ours.region, ours.key, ours.phase) == (
        theirs.bucket, theirs.region, theirs.key, theirs.phase
    )


def test_batch_puts_every_due_record_in_one_event(notified):
    running, received = notified
    for key in ("x.bin", "y.bin"):
        running.emulator.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
        restore(running.url, key)
    running.emulator.clock.advance(EXPEDITED + 1)
    (event,) = running.emulator.deliver_due_notifications(batch=True)
    assert [(r["event"]["eventName"].rsplit(":", 1)[-1], r["cos"]["cosObject"]["key"])
            for r in event["Records"]] == [
        ("Post", "/1250000000/archive/x.bin"), ("Post", "/1250000000/archive/y.bin"),
        ("Completed", "/1250000000/archive/x.bin"), ("Completed", "/1250000000/archive/y.bin"),
    ]
    assert received == [event]


def test_only_accepted_restores_notify_and_deleted_objects_do_not(notified):
    running, _ = notified
    emulator = running.emulator
    emulator.put_object(COS_BUCKET, "gone.bin", b"x", "ARCHIVE")
    emulator.put_object(COS_BUCKET, "twice.bin", b"x", "ARCHIVE")
    restore(running.url, "gone.bin")
    restore(running.url, "twice.bin")
    emulator.clock.advance(EXPEDITED + 1)
    restore(running.url, "twice.bin", days=5)  # 200: the expiry moves, no new job
    client(running.url).delete_object(Bucket=COS_BUCKET, Key="gone.bin")  # before delivery
    events = emulator.deliver_due_notifications()
    assert [(e["Records"][0]["event"]["eventName"], e["Records"][0]["cos"]["cosObject"]["key"])
            for e in events] == [
        ("cos:ObjectRestore:Post", "/1250000000/archive/twice.bin"),
        ("cos:ObjectRestore:Completed", "/1250000000/archive/twice.bin"),
    ]


def test_nothing_is_queued_without_a_target():
    with serve(CosEmulator()) as running:
        running.emulator.put_object(COS_BUCKET, "quiet.bin", b"x", "ARCHIVE")
        restore(running.url, "quiet.bin")
        running.emulator.clock.advance(EXPEDITED + 1)
        assert running.emulator.notifications.state()["pending"] == []
        assert running.emulator.deliver_due_notifications() == []


class Receiver:
    """A loopback HTTP server recording the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                with receiver.arrived:
                    receiver.bodies.append(body)
                    receiver.arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/scf"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout)
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_notify_url_receives_the_events_and_a_failing_target_does_not_stop_them(receiver):
    def broken(event: dict) -> None:
        raise RuntimeError("the function failed")

    with serve(CosEmulator(restore_notify=broken, notify_url=receiver.url)) as running:
        running.emulator.put_object(COS_BUCKET, "u.bin", b"x", "ARCHIVE")
        restore(running.url, "u.bin")
        running.emulator.clock.advance(EXPEDITED + 1)
        sent = running.emulator.deliver_due_notifications()
        assert receiver.wait_for(2) == sent
        failures = running.emulator.notifications.failures()
        assert [f["errors"] for f in failures] == [["target raised RuntimeError"]] * 2


def test_background_notifier_delivers_without_being_asked(receiver):
    with serve(CosEmulator(notify_url=receiver.url)) as running:
        running.emulator.start_notifier(0.02)
        try:
            running.emulator.put_object(COS_BUCKET, "bg.bin", b"x", "ARCHIVE")
            restore(running.url, "bg.bin")
            assert receiver.wait_for(1)[0]["Records"][0]["event"]["eventName"].endswith("Post")
            running.emulator.clock.advance(EXPEDITED + 1)
            names = [b["Records"][0]["event"]["eventName"] for b in receiver.wait_for(2)]
            assert names == ["cos:ObjectRestore:Post", "cos:ObjectRestore:Completed"]
        finally:
            running.emulator.stop_notifier()


def control(url: str, method: str, verb: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{url}/_emulator/{verb}", data=data, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


def test_control_api_lists_and_delivers_notifications():
    received: list[dict] = []
    with serve(CosEmulator(restore_notify=received.append)) as running:
        running.emulator.put_object(COS_BUCKET, "c.bin", b"x", "ARCHIVE")
        restore(running.url, "c.bin")
        state = control(running.url, "GET", "notifications")
        assert [p["event_name"] for p in state["pending"]] == [
            "cos:ObjectRestore:Post", "cos:ObjectRestore:Completed"
        ]
        control(running.url, "POST", "clock", {"advance": EXPEDITED + 1})
        delivered = control(running.url, "POST", "notifications", {"batch": True})["delivered"]
        assert len(delivered) == 1 and len(delivered[0]["Records"]) == 2
        assert received == delivered
        assert control(running.url, "GET", "notifications")["pending"] == []


def test_standalone_notify_url_flag(receiver):
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.cos", "--port", "0", "--no-verify-signatures",
         "--notify-url", receiver.url, "--notify-interval", "0.05"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        assert control(url, "GET", "settings")["notify_url"] == receiver.url
        control(url, "POST", "objects", {"bucket": COS_BUCKET, "key": "s.bin"})
        restore(url, "s.bin")
        control(url, "POST", "clock", {"advance": EXPEDITED + 1})
        names = [b["Records"][0]["event"]["eventName"] for b in receiver.wait_for(2)]
        assert names == ["cos:ObjectRestore:Post", "cos:ObjectRestore:Completed"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_record_builder_keeps_a_version_id():
    from emulators.cos.notify import PendingNotification

    notice = PendingNotification(
        due=1.0, seq=1, event_name="cos:ObjectRestore:Completed", bucket=COS_BUCKET,
        region="ap-chengdu", key="k", version_id="v1", size=1, content_type="text/plain",
        request_id="rid", object_version="v1",
    )
    record = cos_record(notice, 7)
    assert record["cos"]["cosObject"]["vid"] == "v1"
    assert record["cos"]["cosBucket"]["region"] == "cd"
    assert record["event"]["reqid"] == 7
    parsed = parse_cos_record(record, 0)
    assert isinstance(parsed, CosRestoreNotice)
    assert (parsed.version_id, parsed.region) == ("v1", "ap-chengdu")
