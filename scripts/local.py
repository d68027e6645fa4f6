"""The package running locally: emulators, the Google functions under functions-framework, and an
event collector, all on loopback ports picked at run time.

``python -m scripts.local serve`` (``make serve``) keeps everything up until Ctrl-C and prints
where each part listens; ``python -m scripts.local send FILE`` signs a request body with the
local webhook secret and posts it. ``scripts.demo`` drives the same stack for ``make demo``.

The functions run as real ``functions-framework`` processes with the same environment variables a
deployment sets; their completion events go through the HTTP sink (HMAC-signed) to the collector
here, which checks each signature before it accepts the event.

Delayed re-checks go the deployed way too: the functions that start COS restores schedule them
on a Cloud Tasks emulator (``RESTORE_RECHECK_SCHEDULER=cloudtasks``), whose dispatcher delivers
each task, signed, to the ``restore_recheck`` function when it is due. The COS and Cloud Tasks
emulators run ``clock_factor`` times faster than real time from one epoch, and the functions get
the same epoch and factor (``RESTORE_EMULATED_CLOCK_*``, for emulators only: see
``shared.emulated_clock``), so a re-check planned 60 s after an Expedited restore started comes
two real seconds later at the default factor of 30, exactly when the emulated restore is done.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from emulators._http import RunningEmulator, VirtualClock, serve
from emulators.cloudtasks import CloudTasksEmulator
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, CosEmulator
from emulators.gcs import GcsEmulator
from shared import auth

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = ROOT / "build" / "local"  # the secret and the URLs of what `serve` started
FUNCTIONS = ("restore_http", "restore_pubsub", "restore_recheck")
PUBSUB_TOPIC_SOURCE = "//pubsub.googleapis.com/projects/local/topics/restore-requests"
RECHECK_QUEUE = "projects/local/locations/us-central1/queues/restore-rechecks"
RECHECK_INVOKER = "restorefn-recheck@local.iam.gserviceaccount.com"
DISPATCH_INTERVAL = 0.05  # real seconds between the Cloud Tasks emulator's dispatch rounds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(proc: subprocess.Popen[Any], port: int, timeout: float = 60.0) -> None:
    """Return once ``port`` accepts connections; fail early if ``proc`` died on start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        try:  # waits a little, and notices a server that died on start
            code = proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"functions-framework exited with {code}")
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g}s")


# -- the event collector ---------------------------------------------------------------------
@dataclass
class EventCollector:
    """Receives the functions' CloudEvents (HTTP sink, structured mode) and checks signatures."""

    secret: SecretStr
    on_event: Callable[[dict[str, Any]], None] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    def __post_init__(self) -> None:
        self._changed = threading.Condition()

    def accept(self, headers: dict[str, str], body: bytes) -> int:
        try:
            auth.verify((self.secret,), headers, body)
            event = json.loads(body)
        except (auth.AuthenticationError, ValueError):
            with self._changed:
                self.refused += 1
            return 401
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()
        if self.on_event is not None:
            self.on_event(event)
        return 204

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """The first ``count`` events, waiting (on a condition, not a sleep) until they came."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.events) >= count, timeout=timeout)
            return list(self.events)

    @contextmanager
    def serving(self) -> Iterator[str]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status = collector.accept(dict(self.headers.items()), self.rfile.read(length))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/events"
        finally:
            server.shutdown()
            server.server_close()


# -- the functions ---------------------------------------------------------------------------
def function_environment(
    cos_url: str, gcs_url: str, *, events_url: str, secret: SecretStr,
) -> dict[str, str]:
    """What a deployment would set, pointed at the local emulators and collector."""
    return {
        "RESTORE_COS_ALLOWED_BUCKETS": "demo-*",
        "RESTORE_GCS_ALLOWED_BUCKETS": "demo-*",
        "GOOGLE_CLOUD_PROJECT": "local",
        "GCS_ENDPOINT": gcs_url,
        "COS_ENDPOINT": cos_url,
        "COS_SCHEME": "http",
        "COS_SECRET_ID": DEFAULT_SECRET_ID,
        "COS_SECRET_KEY": DEFAULT_SECRET_KEY,
        "RESTORE_WEBHOOK_AUTH": "hmac",
        "RESTORE_WEBHOOK_SECRETS": secret.get_secret_value(),
        "RESTORE_EVENT_SINK": "http",
        "RESTORE_EVENT_HTTP_URL": events_url,
        "RESTORE_EVENT_HTTP_SECRET": secret.get_secret_value(),
    }


def recheck_environment(
    tasks_url: str, recheck_url: str, *, epoch: float, clock_factor: float
) -> dict[str, str]:
    """Re-checks through the Cloud Tasks emulator to ``restore_recheck``, on the emulators' clock.

    ``RESTORE_EMULATED_CLOCK_*`` exist for emulators only: a deployment never sets them.
    """
    return {
        "RESTORE_RECHECK_SCHEDULER": "cloudtasks",
        "RESTORE_RECHECK_CLOUDTASKS_QUEUE": RECHECK_QUEUE,
        "RESTORE_RECHECK_URL": recheck_url,
        "RESTORE_RECHECK_SERVICE_ACCOUNT": RECHECK_INVOKER,  # an (unsigned) OIDC token, as deployed
        "CLOUD_TASKS_EMULATOR_HOST": tasks_url,
        "RESTORE_EMULATED_CLOCK_EPOCH": repr(epoch),
        "RESTORE_EMULATED_CLOCK_FACTOR": repr(clock_factor),
    }


@dataclass
class RunningFunction:
    target: str
    url: str
    process: subprocess.Popen[str]


def _start_function(
    target: str, env: dict[str, str], echo: Callable[[str, str], None] | None,
    port: int | None = None,
) -> RunningFunction:
    port = free_port() if port is None else port
    # The developer's own restore configuration must not leak into the local functions.
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("RESTORE_", "COS_", "GCS_", "TENCENTCLOUD_", "STORAGE_EMULATOR",
                                 "CLOUD_TASKS_", "PUBSUB_EMULATOR", "TDMQ_"))}
    full_env = {**base, **env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    executable = Path(sys.executable).with_name("functions-framework")
    process = subprocess.Popen(  # noqa: S603 - fixed argv, our own entry module
        [str(executable), "--target", target, "--source", "functions/gcp/main.py",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if echo is not None:
                echo(target, line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    wait_for_port(process, port)
    return RunningFunction(target, f"http://127.0.0.1:{port}/", process)


def _stop(function: RunningFunction) -> None:
    function.process.terminate()
    try:
        function.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        function.process.kill()
        function.process.wait()


@dataclass
class LocalStack:
    cos: RunningEmulator
    gcs: RunningEmulator
    collector: EventCollector
    events_url: str
    secret: SecretStr
    functions: dict[str, RunningFunction]
    tasks: RunningEmulator
    clock_epoch: float
    clock_factor: float

    @property
    def cos_emulator(self) -> CosEmulator:
        return self.cos.emulator  # type: ignore[return-value]

    @property
    def gcs_emulator(self) -> GcsEmulator:
        return self.gcs.emulator  # type: ignore[return-value]

    @property
    def tasks_emulator(self) -> CloudTasksEmulator:
        return self.tasks.emulator  # type: ignore[return-value]

    def recheck_attempts(self) -> list[dict[str, Any]]:
        """The Cloud Tasks emulator's deliveries to ``restore_recheck``, oldest first."""
        url = self.functions["restore_recheck"].url
        return [a for a in self.tasks_emulator.attempts() if a["url"] == url]

    def post_webhook(self, payload: Any) -> tuple[int, Any]:
        """POST a restore request to the HTTP function, signed as a caller must sign it."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **auth.sign(self.secret, body)}
        return _post(self.functions["restore_http"].url, body, headers)

    def publish_to_queue_function(self, payload: Any, message_id: str) -> tuple[int, Any]:
        """POST a Pub/Sub ``messagePublished`` CloudEvent (binary mode), as Eventarc delivers it."""
        message = {
            "data": base64.b64encode(json.dumps(payload).encode()).decode(),
            "messageId": message_id, "publishTime": "2026-11-20T10:00:00Z", "attributes": {},
        }
        body = json.dumps(
            {"message": message, "subscription": "projects/local/subscriptions/restore-fn"}
        ).encode()
        headers = {
            "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": message_id,
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "ce-source": PUBSUB_TOPIC_SOURCE,
        }
        return _post(self.functions["restore_pubsub"].url, body, headers)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


@contextmanager
def local_stack(
    *,
    clock_factor: float = 30.0,
    secret: SecretStr | None = None,
    echo: Callable[[str, str], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    cos_port: int = 0,
    gcs_port: int = 0,
    tasks_port: int = 0,
) -> Iterator[LocalStack]:
    """Everything up on loopback; torn down on exit, whatever happened inside."""
    secret = secret if secret is not None else SecretStr(secrets.token_hex(16))
    collector = EventCollector(secret, on_event=on_event)
    # One accelerated time for the emulators and the functions (shared.emulated_clock).
    epoch = time.time()
    cos_emulator = CosEmulator(clock_factor=clock_factor)
    cos_emulator.clock = VirtualClock(clock_factor, epoch=epoch)
    with ExitStack() as stack:
        cos = stack.enter_context(serve(cos_emulator, port=cos_port))
        gcs = stack.enter_context(serve(GcsEmulator(), port=gcs_port))
        tasks_emulator = stack.enter_context(CloudTasksEmulator(
            [RECHECK_QUEUE], clock_factor=clock_factor, clock_epoch=epoch,
        ))
        tasks = stack.enter_context(serve(tasks_emulator, port=tasks_port))
        events_url = stack.enter_context(collector.serving())
        ports = {target: free_port() for target in FUNCTIONS}
        env = {
            **function_environment(cos.url, gcs.url, events_url=events_url, secret=secret),
            **recheck_environment(tasks.url, f"http://127.0.0.1:{ports['restore_recheck']}/",
                                  epoch=epoch, clock_factor=clock_factor),
        }
        functions: dict[str, RunningFunction] = {}
        try:
            for target in FUNCTIONS:
                functions[target] = _start_function(target, env, echo, ports[target])
            # Deliver due tasks only once every function listens (then every 50 ms).
            tasks_emulator.start_dispatcher(DISPATCH_INTERVAL)
            yield LocalStack(cos, gcs, collector, events_url, secret, functions, tasks, epoch,
                             clock_factor)
        finally:
            tasks_emulator.close()  # no delivery to a function being stopped
            for function in functions.values():
                _stop(function)


# -- command line ----------------------------------------------------------------------------
def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C: no orphaned function processes


def _serve(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    def echo(target: str, line: str) -> None:
        print(f"[{target}] {line}", flush=True)

    def show(event: dict[str, Any]) -> None:
        print(f"[events] {json.dumps(event)}", flush=True)

    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    secret_file, urls_file = state / "webhook-secret", state / "urls.json"
    with local_stack(clock_factor=args.clock_factor, echo=echo, on_event=show,
                     cos_port=args.cos_port, gcs_port=args.gcs_port,
                     tasks_port=args.tasks_port) as stack:
        # The secret goes to a private file, never to the terminal or a log.
        secret_file.touch(mode=0o600)
        secret_file.chmod(0o600)
        secret_file.write_text(stack.secret.get_secret_value())
        urls = {
            "webhook": stack.functions["restore_http"].url,
            "queue_function": stack.functions["restore_pubsub"].url,
            "recheck_function": stack.functions["restore_recheck"].url,
            "cos_emulator": stack.cos.url, "gcs_emulator": stack.gcs.url,
            "cloud_tasks_emulator": stack.tasks.url,
            "events": stack.events_url,
        }
        urls_file.write_text(json.dumps(urls, indent=2))
        for name, url in urls.items():
            print(f"{name:>20}: {url}")
        print(f"\nemulated clock x{stack.clock_factor:g} (COS, Cloud Tasks and the re-check "
              f"schedule); Cloud Tasks queue {RECHECK_QUEUE}")
        print(f"\nwebhook secret in {secret_file} (HMAC, X-Restore-Signature)")
        print("seed objects through the emulators' /_emulator/ API, then for example:")
        print("  .venv/bin/python -m scripts.local send request.json\nCtrl-C stops everything.")
        try:
            while all(f.process.poll() is None for f in stack.functions.values()):
                time.sleep(1)
        except KeyboardInterrupt:
            print("\nstopping")
            return 0
    print("a function process exited", file=sys.stderr)
    return 1


def _send(args: argparse.Namespace) -> int:
    try:
        state = Path(args.state_dir)
        secret = SecretStr((state / "webhook-secret").read_text().strip())
        urls = json.loads((state / "urls.json").read_text())
    except OSError:
        print("nothing is being served: run `make serve` first", file=sys.stderr)
        return 2
    body = Path(args.file).read_bytes() if args.file != "-" else sys.stdin.buffer.read()
    headers = {"Content-Type": "application/json", **auth.sign(secret, body)}
    status, answer = _post(args.url or urls["webhook"], body, headers)
    print(json.dumps({"status": status, "body": answer}, indent=2))
    return 0 if status < 400 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve",
                                    help="emulators + the Google functions, until Ctrl-C")
    serve_cmd.add_argument("--clock-factor", type=float, default=30.0,
                           help="emulated seconds per real second in the COS and Cloud Tasks "
                                "emulators and the re-check schedule")
    serve_cmd.add_argument("--cos-port", type=int, default=0)
    serve_cmd.add_argument("--gcs-port", type=int, default=0)
    serve_cmd.add_argument("--tasks-port", type=int, default=0, help="Cloud Tasks emulator")
    send_cmd = commands.add_parser("send", help="sign a JSON body and POST it to the webhook")
    send_cmd.add_argument("file", help="a JSON restore request or batch; - for stdin")
    send_cmd.add_argument("--url", help="default: the webhook that `serve` started")
    for command in (serve_cmd, send_cmd):
        command.add_argument("--state-dir", default=str(STATE_DIR),
                             help="where serve writes the webhook secret and URLs (default: "
                                  "build/local)")
    args = parser.parse_args(argv)
    if args.command == "serve" and not args.clock_factor > 0:
        parser.error("--clock-factor must be positive")
    return _serve(args) if args.command == "serve" else _send(args)


if __name__ == "__main__":
    raise SystemExit(main())
