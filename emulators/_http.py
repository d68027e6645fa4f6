"""The HTTP plumbing every emulator shares: a loopback server, a request log, fault injection and
an accelerated, steerable clock.

An emulator is a plain object with ``handle(request) -> Response`` plus ``fault_response(status)``
(how that provider spells a server error). Everything provider-neutral lives here so the COS and
GCS emulators stay about their wire protocols. The control API under ``/_emulator/`` lets a test
or a person steer a standalone emulator (``python -m emulators.cos``) exactly as a fixture steers
an in-process one.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

CONTROL_PREFIX = "/_emulator/"
REDACTED_HEADERS = frozenset({"authorization", "x-cos-security-token", "x-tc-token"})


@dataclass
class Request:
    method: str
    target: str  # raw request target after proxy-form normalisation: path plus query
    path: str  # percent-decoded path
    raw_path: str  # path as sent, still percent-encoded
    query: dict[str, str]
    query_list: list[tuple[str, str]]
    headers: Message
    body: bytes
    host: str

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else str(value)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # HEAD answers carry the Content-Length of the body they do not send.
    content_length: int | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        body = json.dumps(payload).encode()
        merged = {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
        return cls(status, body, merged)


class Emulator(Protocol):
    clock: VirtualClock

    def handle(self, request: Request) -> Response: ...

    def fault_response(self, status: int, request: Request) -> Response: ...

    def control(self, verb: str, request: Request) -> Response | None:
        """Emulator-specific ``/_emulator/<verb>`` calls (seeding, inspection); None if unknown."""
        ...


class VirtualClock:
    """Emulated wall-clock time: real time times ``factor`` plus whatever tests advanced by hand.

    A factor of 3600 makes a five-hour Standard restore finish in five real seconds; ``advance``
    moves time without waiting at all, which is how tests avoid sleeping.

    ``epoch`` (unix seconds) anchors the clock so that it reads ``epoch + (real now - epoch) *
    factor``: clocks built with the same epoch and factor, in any process, agree (that is how a
    local stack's emulators and functions share one accelerated time, see
    ``shared.emulated_clock``). Without it the clock starts at the real time of its creation.
    """

    def __init__(self, factor: float = 1.0, *, epoch: float | None = None) -> None:
        self._lock = threading.Lock()
        self._factor = factor
        wall = time.time()
        self._base_wall = wall if epoch is None else epoch + (wall - epoch) * factor
        self._base_mono = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        with self._lock:
            elapsed = time.monotonic() - self._base_mono
            return self._base_wall + elapsed * self._factor + self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
        return self.now()

    @property
    def factor(self) -> float:
        return self._factor

    def set_factor(self, factor: float) -> None:
        # Re-anchor so that changing the speed never makes time jump.
        current = self.now()
        with self._lock:
            self._factor = factor
            self._base_wall = current
            self._base_mono = time.monotonic()
            self._offset = 0.0


@dataclass
class FaultPlan:
    """What to do to requests, decided per request.

    ``script`` is consumed first and is deterministic (``[503, 200]`` means: answer the next
    matching request with a 503, let the one after through). The rates then apply at random with
    a seeded generator so a soak run can be replayed.

    ``error_statuses``, when set, replaces ``error_status``: each injected error picks one of them
    at random (repeat a status to weight it), so one plan can mix 500s, 503s and 429s.
    ``reset_rate`` resets the connection before the emulator sees the request (nothing happened);
    ``lost_response_rate`` lets the emulator act and then resets instead of answering, the fault
    that makes a client retry something that already happened. ``skip_path`` exempts requests
    whose target contains it (e.g. a bucket used as a ledger rather than as the provider).
    """

    error_rate: float = 0.0
    error_status: int = 503
    error_statuses: list[int] = field(default_factory=list)
    reset_rate: float = 0.0
    lost_response_rate: float = 0.0
    latency_ms: float = 0.0
    latency_rate: float = 1.0
    match_method: str | None = None
    match_path: str | None = None  # substring of the raw request target
    skip_path: str | None = None  # substring of the raw request target: never faulted
    script: list[int] = field(default_factory=list)
    seed: int = 0

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> FaultPlan:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(payload) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**payload)


RESET = 0  # a script entry of 0 means "reset the connection"
LOST = -1  # a script entry of -1 means "handle the request, then reset instead of answering"


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._rng = random.Random(0)

    def set(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)

    def clear(self) -> None:
        self.set(FaultPlan())

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def decide(self, request: Request) -> tuple[float, int | None]:
        """Return (delay in seconds, status to fail with: None for no fault, RESET for a reset,
        LOST for a response handled and then lost)."""
        with self._lock:
            plan = self._plan
            if plan.match_method and request.method != plan.match_method:
                return 0.0, None
            if plan.match_path and plan.match_path not in request.target:
                return 0.0, None
            if plan.skip_path and plan.skip_path in request.target:
                return 0.0, None
            delay = 0.0
            if plan.latency_ms and self._rng.random() < plan.latency_rate:
                delay = plan.latency_ms / 1000.0
            if plan.script:
                status = plan.script.pop(0)
                return delay, (None if status == 200 else status)
            if plan.reset_rate and self._rng.random() < plan.reset_rate:
                return delay, RESET
            if plan.lost_response_rate and self._rng.random() < plan.lost_response_rate:
                return delay, LOST
            if plan.error_rate and self._rng.random() < plan.error_rate:
                if plan.error_statuses:
                    return delay, self._rng.choice(plan.error_statuses)
                return delay, plan.error_status
            return delay, None


@dataclass
class LoggedRequest:
    seq: int
    time: float
    method: str
    host: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int  # what the emulator answered (0: reset before it saw the request)
    fault: str | None  # None, "injected", "reset" or "lost_response" (answered, then reset)
    body_size: int
    delay_ms: float = 0.0  # injected latency before the request was handled


class RequestLog:
    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []
        self._seq = 0
        self._limit = limit

    def add(
        self, request: Request, status: int, fault: str | None, delay_ms: float = 0.0
    ) -> None:
        headers = {
            k.lower(): ("<redacted>" if k.lower() in REDACTED_HEADERS else v)
            for k, v in request.headers.items()
        }
        with self._lock:
            self._seq += 1
            self._entries.append(
                LoggedRequest(
                    self._seq, time.time(), request.method, request.host, request.path,
                    dict(request.query), headers, status, fault, len(request.body), delay_ms,
                )
            )
            if len(self._entries) > self._limit:
                del self._entries[: len(self._entries) - self._limit]

    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def drain(self) -> list[LoggedRequest]:
        """Every entry so far, removed from the log in the same step: a long run reads its log
        in slices and never loses an entry between reading and clearing."""
        with self._lock:
            drained, self._entries = self._entries, []
            return drained

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def parse_target(raw_target: str, host_header: str) -> tuple[str, str, str]:
    """Split a request target into (host, raw path, raw query).

    Tencent's coscmd can only reach a local server as an HTTP proxy, so the target may be in
    absolute form (``http://bucket.cos.region.myqcloud.com/key?restore``).
    """
    if raw_target.startswith(("http://", "https://")):
        parts = urlsplit(raw_target)
        return host_header or parts.netloc, parts.path or "/", parts.query
    path, _, query = raw_target.partition("?")
    return host_header, path or "/", query


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus delayed ACKs
    # add ~40 ms to every request.
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # the request log replaces stderr noise

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host_header = str(self.headers.get("Host") or "")
        host, raw_path, raw_query = parse_target(self.path, host_header)
        host = host.split(":")[0].lower()
        query_list = parse_qsl(raw_query, keep_blank_values=True)
        request = Request(
            method=self.command,
            target=f"{raw_path}?{raw_query}" if raw_query else raw_path,
            path=unquote(raw_path),
            raw_path=raw_path,
            query=dict(query_list),
            query_list=query_list,
            headers=self.headers,
            body=body,
            host=host,
        )
        emulator = self.server.emulator
        if raw_path.startswith(CONTROL_PREFIX):
            self._send(self.server.control(request))
            return
        delay, fault = self.server.faults.decide(request)
        if delay:
            time.sleep(delay)
        delay_ms = delay * 1000.0
        if fault == RESET:
            self.server.log.add(request, 0, "reset", delay_ms)
            self._reset()
            return
        if fault is not None and fault != LOST:
            response = emulator.fault_response(fault, request)
            self.server.log.add(request, response.status, "injected", delay_ms)
        else:
            try:
                response = emulator.handle(request)
            except Exception as exc:  # an emulator bug must surface as a 500, not a hang
                response = Response.json(500, {"emulator_error": repr(exc)})
            if fault == LOST:
                self.server.log.add(request, response.status, "lost_response", delay_ms)
                self._reset()
                return
            self.server.log.add(request, response.status, None, delay_ms)
        self._send(response, head=self.command == "HEAD")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _dispatch

    def _send(self, response: Response, head: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        length = response.content_length if response.content_length is not None else len(
            response.body
        )
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if not head and response.body:
            self.wfile.write(response.body)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: the client sees a reset
        # connection, not a clean end of stream.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a fan-out opening dozens of connections at once
    # overflowed it, and each dropped SYN stalled its client for a second.
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, emulator: Emulator, port: int = 0, host: str = "127.0.0.1") -> None:
        self.emulator = emulator
        self.faults = FaultInjector()
        self.log = RequestLog()
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def control(self, request: Request) -> Response:
        """The ``/_emulator/`` API: request log, faults, clock, plus emulator-specific verbs."""
        verb = request.raw_path[len(CONTROL_PREFIX):].strip("/")
        try:
            if verb == "health":
                return Response.json(200, {"ok": True})
            if verb == "requests" and request.method == "GET":
                return Response.json(200, [asdict(e) for e in self.log.entries()])
            if verb == "requests" and request.method == "DELETE":
                self.log.clear()
                return Response.json(200, {"cleared": True})
            if verb == "faults" and request.method in ("POST", "PUT"):
                self.faults.set(FaultPlan.from_json(request.json() or {}))
                return Response.json(200, asdict(self.faults.plan))
            if verb == "faults" and request.method == "DELETE":
                self.faults.clear()
                return Response.json(200, asdict(self.faults.plan))
            if verb == "clock" and request.method == "GET":
                clock = self.emulator.clock
                return Response.json(200, {"now": clock.now(), "factor": clock.factor})
            if verb == "clock" and request.method == "POST":
                payload = request.json() or {}
                clock = self.emulator.clock
                if "factor" in payload:
                    clock.set_factor(float(payload["factor"]))
                if "advance" in payload:
                    clock.advance(float(payload["advance"]))
                return Response.json(200, {"now": clock.now(), "factor": clock.factor})
            answer = self.emulator.control(verb, request)
            if answer is not None:
                return answer
        except (ValueError, TypeError) as exc:
            return Response.json(400, {"error": str(exc)})
        return Response.json(404, {"error": f"unknown control verb {request.method} {verb!r}"})


class RunningEmulator:
    """An emulator serving on a background thread; stops when the context ends."""

    def __init__(self, emulator: Emulator, port: int = 0) -> None:
        self.emulator = emulator
        self.server = EmulatorHTTPServer(emulator, port)
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            args=(0.05,),  # poll interval: fixtures stop in 50 ms, not the default 500
            name=f"{type(emulator).__name__}-server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def faults(self) -> FaultInjector:
        return self.server.faults

    @property
    def log(self) -> RequestLog:
        return self.server.log

    def start(self) -> RunningEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serve(emulator: Emulator, port: int = 0) -> Iterator[RunningEmulator]:
    running = RunningEmulator(emulator, port).start()
    try:
        yield running
    finally:
        running.stop()


def add_fault_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--faults",
        type=lambda text: FaultPlan.from_json(json.loads(text)),
        default=None,
        help='fault plan as JSON, e.g. \'{"error_rate": 0.05, "error_statuses": [500, 503], '
        '"reset_rate": 0.005, "lost_response_rate": 0.005, "latency_ms": 2000, '
        '"latency_rate": 0.02, "seed": 7}\'; '
        "change it later with POST /_emulator/faults",
    )


def serve_forever_cli(
    emulator: Emulator, port: int, name: str, faults: FaultPlan | None = None
) -> None:
    """Run standalone until interrupted; prints the URL so scripts can wait for it."""
    server = EmulatorHTTPServer(emulator, port)
    if faults is not None:
        server.faults.set(faults)
    print(f"{name} emulator listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
