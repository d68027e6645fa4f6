"""The Cloud Tasks emulator on a loopback port, a frozen clock, and a tiny HTTP worker."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
import requests

from emulators._http import RunningEmulator, serve
from emulators.cloudtasks import CloudTasksEmulator

PROJECT = "restorefn-test"
LOCATION = "europe-west1"
QUEUE_ID = "restore-rechecks"
QUEUE = f"projects/{PROJECT}/locations/{LOCATION}/queues/{QUEUE_ID}"
SERVICE_ACCOUNT = "recheck-invoker@restorefn-test.iam.gserviceaccount.com"


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


@dataclass
class Receiver:
    """A worker: records every request and answers the next scripted status (then 200)."""

    server: ThreadingHTTPServer
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def _start_receiver() -> tuple[Receiver, threading.Thread]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with receiver.lock:
                receiver.received.append(
                    Received(self.command, self.path, list(self.headers.items()), body)
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            receiver.arrived.set()

        do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return receiver, thread


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    worker, thread = _start_receiver()
    try:
        yield worker
    finally:
        worker.server.shutdown()
        worker.server.server_close()
        thread.join(timeout=5)


@dataclass
class Tasks:
    running: RunningEmulator

    @property
    def emulator(self) -> CloudTasksEmulator:
        return cast(CloudTasksEmulator, self.running.emulator)

    @property
    def url(self) -> str:
        return self.running.url

    def call(self, method: str, path: str, payload: Any = None, **params: str) -> requests.Response:
        return requests.request(
            method, f"{self.url}{path}", json=payload, params=params or None, timeout=10
        )

    def create(self, task: dict[str, Any], queue: str = QUEUE, **extra: Any) -> requests.Response:
        return self.call("POST", f"/v2/{queue}/tasks", {"task": task, **extra})

    def creates(self) -> list[Any]:
        """Request-log entries of CreateTask calls (injected faults included)."""
        return [
            e for e in self.running.log.entries()
            if e.method == "POST" and e.path.endswith("/tasks")
        ]


@pytest.fixture
def tasks() -> Iterator[Tasks]:
    # clock_factor=0: emulated time stands still unless a test advances it.
    with CloudTasksEmulator([QUEUE], clock_factor=0.0) as emulator, serve(emulator) as running:
        # Start on a whole second: "now + 0.1" then lands on the same microsecond whichever
        # side (scheduler or emulator) rounds it.
        now = emulator.clock.now()
        emulator.clock.advance(math.ceil(now) - now)
        assert emulator.clock.now() == math.ceil(now)
        yield Tasks(running)
