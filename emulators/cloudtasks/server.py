"""A Cloud Tasks v2 REST emulator: queues, HTTP-target tasks, scheduled dispatch with retries.

Routes (JSON, Google's error body ``{"error": {"code", "message", "status"}}``):

* ``POST /v2/projects/P/locations/L/queues/Q/tasks`` (CreateTask), ``GET .../tasks`` (ListTasks:
  ``responseView``, ``pageSize``, ``pageToken``), ``GET``/``DELETE .../tasks/T``,
  ``POST .../tasks/T:run``;
* ``POST /v2/projects/P/locations/L/queues`` (CreateQueue), ``GET .../queues`` (ListQueues),
  ``GET .../queues/Q``, ``POST .../queues/Q:pause`` / ``:resume`` / ``:purge``.

What it does as documented (googleapis ``google/cloud/tasks/v2`` protos and REST reference):

* A task carries an ``httpRequest`` (``url``, ``httpMethod`` default POST, ``headers``, ``body``
  base64, ``oidcToken`` or ``oauthToken``). ``scheduleTime`` absent or in the past means now; more
  than 720 h ahead is ``INVALID_ARGUMENT``. A body needs POST, PUT or PATCH. Tasks are at most
  100 KB. Unknown JSON fields are refused as Google's front end refuses them.
* An explicit task ``name`` (``<queue>/tasks/<id>``, id: letters, digits, ``-``, ``_``, <= 500)
  makes creation idempotent: the same name again is ``409 ALREADY_EXISTS`` while the task exists
  *and* for ``dedup_window_seconds`` (default 3600 emulated seconds, the documented "~1 hour")
  after it was executed or deleted. Without a name the emulator picks a random numeric id.
* Responses use the BASIC view unless ``responseView=FULL``: BASIC leaves out the body. As in
  Google's proto3 JSON, zero counters and empty fields are omitted.
* Unknown queue: ``404 NOT_FOUND``. Queues come from the constructor, :meth:`create_queue`, the
  REST CreateQueue call or ``POST /_emulator/queues``.

Dispatch: a task whose ``scheduleTime`` has been reached on the emulator's
:class:`~emulators._http.VirtualClock` is sent to its URL by :meth:`deliver_due` (synchronous,
returns a record per attempt) or by the optional background dispatcher (``dispatch_interval``,
a daemon thread stopped by :meth:`close`). The request carries the task's headers minus those
Cloud Tasks replaces (``Host``, ``Content-Length``, ``User-Agent``, ``X-Google-*``,
``X-AppEngine-*``, ``X-CloudTasks-*``), ``User-Agent: Google-Cloud-Tasks`` and the documented
``X-CloudTasks-QueueName`` (queue id), ``X-CloudTasks-TaskName`` (task id),
``X-CloudTasks-TaskRetryCount`` (earlier attempts), ``X-CloudTasks-TaskExecutionCount`` (earlier
attempts answered by the handler with a non-5xx status), ``X-CloudTasks-TaskETA`` (scheduleTime
in epoch seconds) and, on a retry that got an answer, ``X-CloudTasks-TaskPreviousResponse``.
``Content-Type`` is only what the task set (Cloud Tasks adds none for HTTP targets).

A 2xx answer completes the task (it disappears). Anything else (another status, a refused
connection, no answer within ``min(dispatchDeadline, dispatch_timeout)`` real seconds) is
retried after the queue's ``RetryConfig`` backoff: ``minBackoff`` (default 0.1 s) doubling
``maxDoublings`` times (default 16), then growing linearly, capped at ``maxBackoff`` (3600 s);
after ``maxAttempts`` attempts (default 100; -1 unlimited; with ``maxRetryDuration`` > 0 both
limits must be reached) the task is dropped as failed. Every attempt is recorded
(:meth:`attempts`, ``GET /_emulator/attempts``).

Choices and simplifications (documented behaviour that is not modelled, or unconfirmed):

* ``oidcToken`` becomes ``Authorization: Bearer <JWT>`` with an **unsigned** token
  (``{"alg": "none"}``, empty signature): ``iss`` ``https://accounts.google.com``, ``aud`` the
  configured audience or else the task URL, ``email`` the service account, ``email_verified``,
  ``sub``/``azp`` a stable fake numeric id, ``iat``/``exp`` (1 h) in real wall-clock time so a
  receiver's own clock accepts them. Real Google-signed tokens cannot be emulated: a receiver
  that verifies signatures must be told to skip that against the emulator.
  :func:`decode_unverified_jwt` reads the claims. ``oauthToken`` yields an opaque fake token.
* No rate limits, ramp-up or ``Retry-After`` handling; redirects are not followed (a 3xx is a
  failed attempt); ``:run`` makes a task due now (dispatched by the next delivery, even on a
  paused queue) rather than dispatching inside the call.
* No authentication of API callers; ``Authorization`` headers are ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from emulators._http import Request, Response, VirtualClock

API_PREFIX = "/v2/"
USER_AGENT = "Google-Cloud-Tasks"
OIDC_ISSUER = "https://accounts.google.com"
MAX_SCHEDULE_AHEAD_SECONDS = 720 * 3600  # "Schedule time must be no more than 720h in the future"
DEFAULT_DEDUP_WINDOW_SECONDS = 3600.0  # "can't be created for ~1hour after ... deleted or executed"
MAX_TASK_BYTES = 100 * 1024
MAX_URL_LENGTH = 2083
MAX_HEADER_BYTES = 80 * 1024
DEFAULT_DISPATCH_DEADLINE = 600.0
MIN_DISPATCH_DEADLINE = 15.0
MAX_DISPATCH_DEADLINE = 1800.0
MAX_PAGE_SIZE = 1000
MAX_KEPT = 10_000  # attempt records and finished tasks kept for inspection

_PROJECT_ID = r"[A-Za-z0-9:.\-]+"
_LOCATION_ID = r"[A-Za-z0-9\-]+"
_QUEUE_ID = r"[A-Za-z0-9\-]{1,100}"
_TASK_ID = r"[A-Za-z0-9_\-]{1,500}"
QUEUE_NAME = re.compile(
    rf"projects/({_PROJECT_ID})/locations/({_LOCATION_ID})/queues/({_QUEUE_ID})"
)
TASK_ID = re.compile(_TASK_ID)

_LOCATION_PATH = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+)/queues$")
_QUEUE_PATH = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/queues/[^/:]+)(?::([a-z]+))?$")
_TASKS_PATH = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/queues/[^/:]+)/tasks$")
_TASK_PATH = re.compile(
    r"^/v2/(projects/[^/]+/locations/[^/]+/queues/[^/:]+)/tasks/([^/:]+)(?::([a-z]+))?$"
)

HTTP_METHODS = ("POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_REPLACED_HEADERS = frozenset({"host", "content-length", "user-agent"})
_REPLACED_PREFIXES = ("x-google-", "x-appengine-", "x-cloudtasks-")

# google.rpc.Code: name -> (number, HTTP status)
_CODES: dict[str, tuple[int, int]] = {
    "CANCELLED": (1, 499),
    "UNKNOWN": (2, 500),
    "INVALID_ARGUMENT": (3, 400),
    "DEADLINE_EXCEEDED": (4, 504),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "PERMISSION_DENIED": (7, 403),
    "RESOURCE_EXHAUSTED": (8, 429),
    "FAILED_PRECONDITION": (9, 400),
    "ABORTED": (10, 409),
    "UNIMPLEMENTED": (12, 501),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
    "UNAUTHENTICATED": (16, 401),
}
# How a worker's HTTP answer reads as a google.rpc.Status in Task.lastAttempt.responseStatus.
_HTTP_TO_CODE = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
    500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
# Injected faults: (status, message) as Google's front end words them.
_FAULTS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "The service is currently unavailable."),
    504: ("DEADLINE_EXCEEDED", "The request timed out."),
}
QUEUE_NOT_FOUND = (
    "Queue does not exist. If you just created the queue, wait at least a minute for the queue "
    "to initialize."
)


class ApiError(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: str, message: str) -> Response:
    code = _CODES.get(status, (2, 500))[1]
    return Response.json(code, {"error": {"code": code, "message": message, "status": status}})


def _invalid(message: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", message)


# ------------------------------------------------------------------------------------- time


def _us(seconds: float) -> int:
    """Emulated seconds -> integer microseconds (Cloud Tasks truncates timestamps to µs).

    Rounding rather than truncating keeps ``t + 0.1`` and ``advance(0.1)`` on the same
    microsecond, so a test that advances by exactly the backoff finds the task due.
    """
    return round(seconds * 1_000_000)


def format_timestamp(us: int) -> str:
    """RFC 3339 UTC with 0, 3 or 6 fractional digits, as Google's JSON mapping prints them."""
    seconds, micros = divmod(us, 1_000_000)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if micros == 0:
        return f"{text}Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_timestamp(text: str) -> int:
    """RFC 3339 (up to nine fractional digits, ``Z`` or an offset) -> microseconds; truncated."""
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError("not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "").ljust(9, "0")
    moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    if match.group(9):
        offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        moment -= offset if match.group(9) == "+" else -offset
    whole = int((moment - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds())
    return whole * 1_000_000 + int(fraction[:6])


def format_duration(seconds: float) -> str:
    us = _us(seconds)
    whole, micros = divmod(us, 1_000_000)
    if micros == 0:
        return f"{whole}s"
    if micros % 1000 == 0:
        return f"{whole}.{micros // 1000:03d}s"
    return f"{whole}.{micros:06d}s"


_DURATION = re.compile(r"^(-?\d+)(?:\.(\d{1,9}))?s$")


def parse_duration(value: Any) -> float:
    if not isinstance(value, str) or not (match := _DURATION.match(value)):
        raise ValueError("not a duration such as \"600s\"")
    return float(f"{match.group(1)}.{match.group(2) or '0'}")


# ------------------------------------------------------------------------------------- tokens


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_json(part: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(part, separators=(",", ":")).encode())


def fake_subject(service_account_email: str) -> str:
    """A stable 21-digit numeric id standing in for the service account's unique id."""
    digest = hashlib.sha256(service_account_email.encode()).digest()
    return str(10**20 + int.from_bytes(digest[:8], "big") % (9 * 10**20))


def fake_oidc_token(service_account_email: str, audience: str, now: float | None = None) -> str:
    """An unsigned JWT (``alg: none``) with the claims of a Google-issued service-account token."""
    issued = int(time.time() if now is None else now)
    subject = fake_subject(service_account_email)
    header = {"alg": "none", "typ": "JWT"}
    claims = {
        "iss": OIDC_ISSUER,
        "aud": audience,
        "azp": subject,
        "sub": subject,
        "email": service_account_email,
        "email_verified": True,
        "iat": issued,
        "exp": issued + 3600,
    }
    return f"{_b64_json(header)}.{_b64_json(claims)}."


def decode_unverified_jwt(token: str) -> dict[str, Any]:
    """The claims of a JWT, without any verification (for tests and for people)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has three dot-separated parts")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    claims = json.loads(base64.urlsafe_b64decode(payload))
    if not isinstance(claims, dict):
        raise ValueError("JWT claims are not a JSON object")
    return claims


# ------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 100
    min_backoff: float = 0.1
    max_backoff: float = 3600.0
    max_doublings: int = 16
    max_retry_duration: float = 0.0  # 0: no age limit

    def __post_init__(self) -> None:
        if self.max_attempts < -1 or self.max_attempts == 0:
            raise ValueError("max_attempts must be -1 (unlimited) or at least 1")
        if self.min_backoff < 0 or self.max_backoff < self.min_backoff:
            raise ValueError("backoffs must satisfy 0 <= min_backoff <= max_backoff")
        if self.max_doublings < 0 or self.max_retry_duration < 0:
            raise ValueError("max_doublings and max_retry_duration must not be negative")

    def backoff(self, retry: int) -> float:
        """Seconds before retry number ``retry + 1``: doubling, then linear, capped.

        The proto's example: min 10 s, max 300 s, 3 doublings -> 10, 20, 40, 80, 160, 240, 300.
        """
        doublings = min(retry, self.max_doublings)
        interval = self.min_backoff * (2**doublings)
        if retry > self.max_doublings:
            interval += (retry - self.max_doublings) * self.min_backoff * 2**self.max_doublings
        return float(min(interval, self.max_backoff))

    def resource(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "maxAttempts": self.max_attempts,
            "minBackoff": format_duration(self.min_backoff),
            "maxBackoff": format_duration(self.max_backoff),
            "maxDoublings": self.max_doublings,
        }
        if self.max_retry_duration:
            config["maxRetryDuration"] = format_duration(self.max_retry_duration)
        return config

    @classmethod
    def from_json(cls, payload: Mapping[str, Any], base: RetryConfig) -> RetryConfig:
        """A REST ``retryConfig`` object (durations as ``"0.1s"``) over ``base``."""
        fields = _fields(
            payload,
            {
                "maxAttempts": "max_attempts", "max_attempts": "max_attempts",
                "minBackoff": "min_backoff", "min_backoff": "min_backoff",
                "maxBackoff": "max_backoff", "max_backoff": "max_backoff",
                "maxDoublings": "max_doublings", "max_doublings": "max_doublings",
                "maxRetryDuration": "max_retry_duration",
                "max_retry_duration": "max_retry_duration",
            },
            "queue.retry_config",
        )
        changes: dict[str, Any] = {}
        try:
            for name, value in fields.items():
                if name in ("max_attempts", "max_doublings"):
                    changes[name] = int(value)
                else:
                    changes[name] = parse_duration(value)
            return replace(base, **changes)
        except ValueError as exc:
            raise _invalid(f"Invalid retryConfig: {exc}") from None


@dataclass
class _Task:
    name: str
    queue: str
    http: dict[str, Any]  # url, httpMethod, headers, oidcToken/oauthToken (no body)
    body: bytes
    schedule_us: int
    create_us: int
    dispatch_deadline: float
    dispatch_count: int = 0
    response_count: int = 0
    execution_count: int = 0  # attempts the handler answered with a non-5xx status
    first_dispatch_us: int | None = None
    last_attempt: dict[str, Any] | None = None
    previous_response: int | None = None
    in_flight: bool = False
    forced: bool = False
    state: str = "scheduled"  # scheduled, dispatching, succeeded, failed, deleted
    finished_us: int | None = None

    @property
    def task_id(self) -> str:
        return self.name.rsplit("/", 1)[1]

    def resource(self, full: bool) -> dict[str, Any]:
        http = {k: v for k, v in self.http.items() if v not in (None, {}, "")}
        if full and self.body:
            http["body"] = base64.b64encode(self.body).decode("ascii")
        task: dict[str, Any] = {
            "name": self.name,
            "httpRequest": http,
            "scheduleTime": format_timestamp(self.schedule_us),
            "createTime": format_timestamp(self.create_us - self.create_us % 1_000_000),
            "dispatchDeadline": format_duration(self.dispatch_deadline),
        }
        if self.dispatch_count:
            task["dispatchCount"] = self.dispatch_count
        if self.response_count:
            task["responseCount"] = self.response_count
        if self.first_dispatch_us is not None:
            task["firstAttempt"] = {"dispatchTime": format_timestamp(self.first_dispatch_us)}
        if self.last_attempt is not None:
            task["lastAttempt"] = dict(self.last_attempt)
        task["view"] = "FULL" if full else "BASIC"
        return task

    def describe(self) -> dict[str, Any]:
        """Everything, for the control API: the FULL resource plus the emulator's bookkeeping."""
        info = self.resource(full=True)
        info.update(
            queue=self.queue,
            state=self.state,
            executionCount=self.execution_count,
            finishTime=None if self.finished_us is None else format_timestamp(self.finished_us),
        )
        return info


@dataclass
class _Queue:
    name: str
    retry: RetryConfig
    state: str = "RUNNING"
    tasks: dict[str, _Task] = field(default_factory=dict)

    def resource(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rateLimits": {
                "maxDispatchesPerSecond": 500,
                "maxBurstSize": 100,
                "maxConcurrentDispatches": 1000,
            },
            "retryConfig": self.retry.resource(),
            "state": self.state,
        }


@dataclass(frozen=True)
class _Outgoing:
    """One dispatch, prepared under the lock and sent outside it."""

    task: _Task
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    timeout: float
    schedule_us: int


def queue_path(project: str, location: str, queue: str) -> str:
    return f"projects/{project}/locations/{location}/queues/{queue}"


def _fields(obj: Any, spec: Mapping[str, str], where: str) -> dict[str, Any]:
    """Map accepted JSON names (lowerCamel, proto snake_case) to canonical ones; refuse others."""
    if not isinstance(obj, dict):
        raise _invalid(f"Invalid JSON payload received. '{where}' must be an object.")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in spec:
            raise _invalid(
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                "Cannot find field."
            )
        out[spec[key]] = value
    return out


_CREATE_FIELDS = {"task": "task", "responseView": "view", "response_view": "view"}
_TASK_FIELDS = {
    "name": "name",
    "httpRequest": "http", "http_request": "http",
    "appEngineHttpRequest": "app_engine", "app_engine_http_request": "app_engine",
    "scheduleTime": "schedule", "schedule_time": "schedule",
    "dispatchDeadline": "deadline", "dispatch_deadline": "deadline",
    # Output-only fields are accepted and ignored, as the API does.
    "createTime": "_", "create_time": "_", "dispatchCount": "_", "dispatch_count": "_",
    "responseCount": "_", "response_count": "_", "firstAttempt": "_", "first_attempt": "_",
    "lastAttempt": "_", "last_attempt": "_", "view": "_",
}
_HTTP_FIELDS = {
    "url": "url",
    "httpMethod": "method", "http_method": "method",
    "headers": "headers",
    "body": "body",
    "oidcToken": "oidc", "oidc_token": "oidc",
    "oauthToken": "oauth", "oauth_token": "oauth",
}
_OIDC_FIELDS = {
    "serviceAccountEmail": "serviceAccountEmail", "service_account_email": "serviceAccountEmail",
    "audience": "audience",
}
_OAUTH_FIELDS = {
    "serviceAccountEmail": "serviceAccountEmail", "service_account_email": "serviceAccountEmail",
    "scope": "scope",
}
_QUEUE_FIELDS = {
    "name": "name",
    "retryConfig": "retry", "retry_config": "retry",
    "rateLimits": "_", "rate_limits": "_", "state": "_",
    "stackdriverLoggingConfig": "_", "stackdriver_logging_config": "_",
}


def _view(value: Any) -> bool:
    """True for FULL. Accepts the enum's names and numbers."""
    if value in (None, "", "VIEW_UNSPECIFIED", "BASIC", 0, 1, "0", "1"):
        return False
    if value in ("FULL", 2, "2"):
        return True
    raise _invalid(f"Invalid value for responseView: {value!r}")


def _decode_body(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _invalid("Invalid value at 'task.http_request.body' (TYPE_BYTES): not a string")
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        # The value is never echoed: bodies can carry anything.
        raise _invalid(
            "Invalid value at 'task.http_request.body' (TYPE_BYTES), Base64 decoding failed"
        ) from None


# ------------------------------------------------------------------------------------- emulator


class CloudTasksEmulator:
    """Serve it with ``emulators._http.serve`` or ``python -m emulators.cloudtasks``.

    ``queues``: full queue names (``projects/P/locations/L/queues/Q``) to create up front.
    ``clock_factor`` and ``clock_epoch``: the :class:`~emulators._http.VirtualClock` (with an
    epoch, shared with other emulators and the functions of a local stack).
    ``retry_config``: the default :class:`RetryConfig` of queues created without one.
    ``dispatch_timeout``: real seconds to wait for a worker (bounded by the task's deadline).
    ``dispatch_interval``: real seconds between background deliveries; None (default) leaves
    delivery to :meth:`deliver_due`. ``dedup_window_seconds``: emulated seconds a finished or
    deleted task's name stays taken.
    """

    def __init__(
        self,
        queues: Iterable[str] = (),
        *,
        clock_factor: float = 1.0,
        clock_epoch: float | None = None,
        retry_config: RetryConfig | None = None,
        dispatch_timeout: float = 10.0,
        dispatch_interval: float | None = None,
        dedup_window_seconds: float = DEFAULT_DEDUP_WINDOW_SECONDS,
    ) -> None:
        self.clock = VirtualClock(clock_factor, epoch=clock_epoch)
        self.retry_config = retry_config or RetryConfig()
        self.dispatch_timeout = float(dispatch_timeout)
        self.dedup_window_seconds = float(dedup_window_seconds)
        self._lock = threading.RLock()
        self._attempted = threading.Condition(self._lock)  # notified on every attempt record
        self._deliver_lock = threading.Lock()
        self._queues: dict[str, _Queue] = {}
        self._tombstones: dict[str, int] = {}  # task name -> when it finished (µs)
        self._finished: deque[_Task] = deque(maxlen=MAX_KEPT)
        self._attempts: deque[dict[str, Any]] = deque(maxlen=MAX_KEPT)
        self._random = random.Random()
        self._stop = threading.Event()
        self._dispatcher: threading.Thread | None = None
        for name in queues:
            match = QUEUE_NAME.fullmatch(name)
            if match is None:
                raise ValueError("queue names look like projects/P/locations/L/queues/Q")
            self.create_queue(*match.groups())
        if dispatch_interval is not None:
            self.start_dispatcher(dispatch_interval)

    # ------------------------------------------------------------------ python API

    def create_queue(
        self, project: str, location: str, queue: str, *, retry_config: RetryConfig | None = None
    ) -> dict[str, Any]:
        """Create a queue (idempotent here; the REST CreateQueue answers ALREADY_EXISTS)."""
        name = queue_path(project, location, queue)
        if not QUEUE_NAME.fullmatch(name):
            raise ValueError(
                "queue ids are 1-100 letters, digits or hyphens; projects and locations must be "
                "valid ids"
            )
        with self._lock:
            existing = self._queues.get(name)
            if existing is None:
                existing = self._queues[name] = _Queue(name, retry_config or self.retry_config)
            elif retry_config is not None:
                existing.retry = retry_config
            return existing.resource()

    def queues(self) -> list[dict[str, Any]]:
        with self._lock:
            return [q.resource() for q in self._queues.values()]

    def tasks(self, queue: str | None = None) -> list[dict[str, Any]]:
        """Every task: pending and dispatching ones, then finished ones (oldest first)."""
        with self._lock:
            live = [
                t
                for q in self._queues.values()
                if queue in (None, q.name)
                for t in q.tasks.values()
            ]
            live.sort(key=lambda t: (t.schedule_us, t.name))
            done = [t for t in self._finished if queue in (None, t.queue)]
            return [t.describe() for t in live + done]

    def get_task(self, name: str, *, full: bool = True) -> dict[str, Any]:
        """A live task's resource; KeyError when it does not (or no longer) exist."""
        with self._lock:
            return self._live_task(name).resource(full)

    def attempts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._attempts]

    def wait_for_attempt(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        """The first attempt record matching ``predicate``, waiting up to ``timeout`` real
        seconds for one (on a condition notified by every dispatch, not by polling)."""

        def match() -> dict[str, Any] | None:
            return next((dict(a) for a in self._attempts if predicate(a)), None)

        with self._attempted:
            self._attempted.wait_for(lambda: match() is not None, timeout=timeout)
            return match()

    def set_queue_state(self, name: str, state: str) -> dict[str, Any]:
        if state not in ("RUNNING", "PAUSED"):
            raise ValueError("state is RUNNING or PAUSED")
        with self._lock:
            queue = self._queues[name]
            queue.state = state
            return queue.resource()

    def deliver_due(self) -> list[dict[str, Any]]:
        """Dispatch every task due at the current virtual time, once each, synchronously.

        Returns one record per attempt: ``task``, ``attempt`` (1-based), ``status`` (the
        worker's HTTP status or None), ``error``, ``outcome`` (``succeeded``, ``retrying``,
        ``failed`` or ``deleted``) and ``nextScheduleTime`` for a retry. A retry whose backoff
        has already elapsed waits for the next call: one call never loops on a failing worker.
        """
        with self._deliver_lock:
            return [self._dispatch(outgoing) for outgoing in self._claim_due()]

    def start_dispatcher(self, interval: float = 0.2) -> None:
        """Deliver due tasks every ``interval`` real seconds on a daemon thread until close()."""
        if interval <= 0:
            raise ValueError("the dispatch interval must be positive")
        with self._lock:
            if self._dispatcher is not None:
                return
            self._stop.clear()
            self._dispatcher = threading.Thread(
                target=self._dispatch_loop, args=(interval,), name="CloudTasks-dispatcher",
                daemon=True,
            )
            self._dispatcher.start()

    def close(self) -> None:
        """Stop the background dispatcher, if any."""
        self._stop.set()
        with self._lock:
            thread, self._dispatcher = self._dispatcher, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def __enter__(self) -> CloudTasksEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ Emulator protocol

    def handle(self, request: Request) -> Response:
        try:
            with self._lock:
                return self._route(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_response(
                "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token."
            )

    def fault_response(self, status: int, request: Request) -> Response:
        name, message = _FAULTS.get(
            status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", f"Injected {status}")
        )
        return Response.json(status, {"error": {"code": status, "message": message,
                                                "status": name}})

    def control(self, verb: str, request: Request) -> Response | None:
        method = request.method
        if verb == "tasks" and method == "GET":
            return Response.json(200, self.tasks(request.query.get("queue")))
        if verb == "deliver" and method == "POST":
            return Response.json(200, self.deliver_due())
        if verb == "attempts" and method == "GET":
            return Response.json(200, self.attempts())
        if verb == "queues" and method == "GET":
            return Response.json(200, self.queues())
        if verb == "queues" and method in ("POST", "PUT"):
            payload = request.json() or {}
            if not isinstance(payload, dict):
                raise ValueError("POST queues needs a JSON object")
            if "name" in payload:
                match = QUEUE_NAME.fullmatch(str(payload["name"]))
                if match is None:
                    raise ValueError("name must look like projects/P/locations/L/queues/Q")
                project, location, queue = match.groups()
            else:
                try:
                    project, location, queue = (
                        str(payload[k]) for k in ("project", "location", "queue")
                    )
                except KeyError:
                    raise ValueError(
                        "POST queues needs name, or project, location and queue"
                    ) from None
            settings = {
                k: payload[k] for k in ("max_attempts", "min_backoff", "max_backoff",
                                        "max_doublings", "max_retry_duration") if k in payload
            }
            retry = replace(self.retry_config, **settings) if settings else None
            return Response.json(200, self.create_queue(project, location, queue,
                                                        retry_config=retry))
        if verb == "dispatcher" and method == "POST":
            payload = request.json() or {}
            self.start_dispatcher(float(payload.get("interval", 0.2)))
            return Response.json(200, {"running": True})
        if verb == "dispatcher" and method == "DELETE":
            self.close()
            return Response.json(200, {"running": False})
        return None

    # ------------------------------------------------------------------ REST routing

    def _route(self, request: Request) -> Response:
        path, method = request.path, request.method
        if not path.startswith(API_PREFIX):
            raise ApiError("NOT_FOUND", f"The requested URL {path} was not found on this server.")
        if match := _TASK_PATH.match(path):
            parent, task_id, verb = match.groups()
            name = f"{parent}/tasks/{task_id}"
            if verb is None and method == "GET":
                full = _view(request.query.get("responseView"))
                return Response.json(200, self._existing_task(parent, name).resource(full))
            if verb is None and method == "DELETE":
                self._delete_task(parent, name)
                return Response.json(200, {})
            if verb == "run" and method == "POST":
                return self._run_task(request, parent, name)
        elif match := _TASKS_PATH.match(path):
            parent = match.group(1)
            if method == "POST":
                return self._create_task(request, parent)
            if method == "GET":
                return self._list_tasks(request, parent)
        elif match := _QUEUE_PATH.match(path):
            name, verb = match.groups()
            if verb is None and method == "GET":
                return Response.json(200, self._queue(name).resource())
            if verb in ("pause", "resume") and method == "POST":
                queue = self._queue(name)
                queue.state = "PAUSED" if verb == "pause" else "RUNNING"
                return Response.json(200, queue.resource())
            if verb == "purge" and method == "POST":
                queue = self._queue(name)
                for task in list(queue.tasks.values()):
                    self._finish(queue, task, "deleted")
                return Response.json(200, queue.resource())
        elif match := _LOCATION_PATH.match(path):
            parent = match.group(1)
            if method == "POST":
                return self._create_queue(request, parent)
            if method == "GET":
                queues = [q.resource() for q in self._queues.values()
                          if q.name.startswith(parent + "/")]
                return Response.json(200, {"queues": queues} if queues else {})
        raise ApiError("NOT_FOUND", f"The requested URL {path} was not found on this server.")

    def _queue(self, name: str) -> _Queue:
        if not QUEUE_NAME.fullmatch(name):
            raise _invalid(f"Invalid resource field value in the request: queue name {name!r}")
        queue = self._queues.get(name)
        if queue is None:
            raise ApiError("NOT_FOUND", QUEUE_NOT_FOUND)
        return queue

    def _live_task(self, name: str) -> _Task:
        parent, _, _ = name.rpartition("/tasks/")
        queue = self._queues.get(parent)
        task = None if queue is None else queue.tasks.get(name)
        if task is None:
            raise KeyError(name)
        return task

    def _existing_task(self, parent: str, name: str) -> _Task:
        queue = self._queue(parent)
        task = queue.tasks.get(name)
        if task is None:
            raise ApiError("NOT_FOUND", "Requested entity was not found.")
        return task

    def _now_us(self) -> int:
        return _us(self.clock.now())

    # ------------------------------------------------------------------ queues

    def _create_queue(self, request: Request, parent: str) -> Response:
        fields = _fields(request.json(), _QUEUE_FIELDS, "queue")
        name = fields.get("name")
        if not isinstance(name, str) or not name.startswith(parent + "/queues/"):
            raise _invalid(f"Queue.name must be {parent}/queues/QUEUE_ID")
        match = QUEUE_NAME.fullmatch(name)
        if match is None:
            raise _invalid("QUEUE_ID can contain letters, numbers or hyphens, at most 100")
        if name in self._queues:
            raise ApiError("ALREADY_EXISTS", "Requested entity already exists")
        retry = self.retry_config
        if "retry" in fields:
            retry = RetryConfig.from_json(fields["retry"], retry)
        self.create_queue(*match.groups(), retry_config=retry)
        return Response.json(200, self._queues[name].resource())

    # ------------------------------------------------------------------ tasks

    def _create_task(self, request: Request, parent: str) -> Response:
        queue = self._queue(parent)
        payload = _fields(request.json(), _CREATE_FIELDS, "")
        full = _view(payload.get("view"))
        if "task" not in payload:
            raise _invalid("Task is required.")
        spec = _fields(payload["task"], _TASK_FIELDS, "task")
        if "app_engine" in spec:
            raise _invalid("App Engine tasks are not emulated; use httpRequest")
        if "http" not in spec:
            raise _invalid("Task.message_type must be set: httpRequest is required")
        http, body = self._parse_http(spec["http"])
        now = self._now_us()
        schedule = now
        if spec.get("schedule") not in (None, ""):
            try:
                schedule = max(now, parse_timestamp(str(spec["schedule"])))
            except ValueError:
                raise _invalid(
                    "Invalid value at 'task.schedule_time' (type.googleapis.com/"
                    "google.protobuf.Timestamp), Invalid time format"
                ) from None
            if schedule - now > MAX_SCHEDULE_AHEAD_SECONDS * 1_000_000:
                raise _invalid(
                    f"The Task.scheduleTime, {spec['schedule']}, is too far in the future. "
                    "Schedule time must be no more than 720h in the future."
                )
        deadline = DEFAULT_DISPATCH_DEADLINE
        if spec.get("deadline") not in (None, ""):
            try:
                deadline = parse_duration(spec["deadline"])
            except ValueError as exc:
                raise _invalid(f"Invalid value at 'task.dispatch_deadline': {exc}") from None
            if not MIN_DISPATCH_DEADLINE <= deadline <= MAX_DISPATCH_DEADLINE:
                raise _invalid("Task.dispatchDeadline must be in the interval [15s, 30m].")
        name = spec.get("name") or ""
        if name:
            if not isinstance(name, str) or not name.startswith(parent + "/tasks/"):
                raise _invalid(
                    f"Task.name must be of the form {parent}/tasks/TASK_ID (the request's queue)"
                )
            if not TASK_ID.fullmatch(name[len(parent) + len("/tasks/"):]):
                raise _invalid(
                    "TASK_ID can contain only letters ([A-Za-z]), numbers ([0-9]), hyphens (-), "
                    "or underscores (_). The maximum length is 500 characters."
                )
            if name in queue.tasks or self._recently_finished(name, now):
                raise ApiError("ALREADY_EXISTS", "Requested entity already exists")
        else:
            while True:
                name = f"{parent}/tasks/{self._random.randrange(10**19, 10**20)}"
                if name not in queue.tasks and name not in self._tombstones:
                    break
        size = len(body) + len(json.dumps(http)) + len(name)
        if size > MAX_TASK_BYTES:
            raise _invalid(f"Task size too large: {size} bytes (at most {MAX_TASK_BYTES})")
        task = _Task(name, parent, http, body, schedule, now, deadline)
        queue.tasks[name] = task
        return Response.json(200, task.resource(full))

    def _parse_http(self, raw: Any) -> tuple[dict[str, Any], bytes]:
        spec = _fields(raw, _HTTP_FIELDS, "task.http_request")
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid("HttpRequest.url must begin with \"http://\" or \"https://\".")
        if len(url) > MAX_URL_LENGTH or not urlsplit(url).hostname:
            raise _invalid("HttpRequest.url is invalid or longer than 2083 characters.")
        method = spec.get("method") or "POST"
        if isinstance(method, int) and 0 <= method <= len(HTTP_METHODS):
            method = "POST" if method == 0 else HTTP_METHODS[method - 1]
        if method == "HTTP_METHOD_UNSPECIFIED":
            method = "POST"
        if method not in HTTP_METHODS:
            raise _invalid(f"Invalid value at 'task.http_request.http_method': {method!r}")
        headers = spec.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise _invalid("HttpRequest.headers must map header names to string values.")
        if sum(len(k) + len(v) for k, v in headers.items()) >= MAX_HEADER_BYTES:
            raise _invalid("The size of the headers must be less than 80KB.")
        body = b"" if spec.get("body") in (None, "") else _decode_body(spec["body"])
        if body and method not in _BODY_METHODS:
            raise _invalid(f"A body is only allowed with POST, PUT or PATCH, not {method}.")
        if "oidc" in spec and "oauth" in spec:
            raise _invalid("Only one of oidcToken and oauthToken may be set.")
        http: dict[str, Any] = {"url": url, "httpMethod": method, "headers": dict(headers)}
        for key, fields, label in (("oidc", _OIDC_FIELDS, "oidcToken"),
                                   ("oauth", _OAUTH_FIELDS, "oauthToken")):
            if key in spec:
                token = _fields(spec[key], fields, f"task.http_request.{key}_token")
                if not token.get("serviceAccountEmail"):
                    raise _invalid(f"{label}.serviceAccountEmail is required.")
                http[label] = {k: str(v) for k, v in token.items() if v}
        return http, body

    def _list_tasks(self, request: Request, parent: str) -> Response:
        queue = self._queue(parent)
        full = _view(request.query.get("responseView"))
        try:
            size = int(request.query.get("pageSize") or MAX_PAGE_SIZE)
            start = int(request.query.get("pageToken") or 0)
        except ValueError:
            raise _invalid("Invalid pageSize or pageToken") from None
        if size <= 0 or size > MAX_PAGE_SIZE:
            size = MAX_PAGE_SIZE
        ordered = sorted(queue.tasks.values(), key=lambda t: (t.schedule_us, t.name))
        page = ordered[start:start + size]
        answer: dict[str, Any] = {}
        if page:
            answer["tasks"] = [t.resource(full) for t in page]
        if start + size < len(ordered):
            answer["nextPageToken"] = str(start + size)
        return Response.json(200, answer)

    def _delete_task(self, parent: str, name: str) -> None:
        queue = self._queue(parent)
        task = self._existing_task(parent, name)
        self._finish(queue, task, "deleted")

    def _run_task(self, request: Request, parent: str, name: str) -> Response:
        payload = _fields(request.json() or {}, {"responseView": "view", "response_view": "view"},
                          "")
        task = self._existing_task(parent, name)
        task.schedule_us = self._now_us()
        task.forced = True
        return Response.json(200, task.resource(_view(payload.get("view"))))

    def _recently_finished(self, name: str, now: int) -> bool:
        window = _us(self.dedup_window_seconds)
        for stale in [n for n, t in self._tombstones.items() if now - t >= window]:
            del self._tombstones[stale]
        return name in self._tombstones

    def _finish(self, queue: _Queue, task: _Task, state: str) -> None:
        task.state = state
        task.in_flight = False
        task.finished_us = self._now_us()
        queue.tasks.pop(task.name, None)
        self._tombstones[task.name] = task.finished_us
        self._finished.append(task)

    # ------------------------------------------------------------------ dispatch

    def _dispatch_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.deliver_due()
            except Exception:  # noqa: S112 - a broken worker must not stop the dispatcher
                continue

    def _claim_due(self) -> list[_Outgoing]:
        with self._lock:
            now = self._now_us()
            due = [
                task
                for queue in self._queues.values()
                for task in queue.tasks.values()
                if not task.in_flight
                and task.schedule_us <= now
                and (queue.state == "RUNNING" or task.forced)
            ]
            due.sort(key=lambda t: (t.schedule_us, t.name))
            claimed = []
            for task in due:
                task.in_flight = True
                task.state = "dispatching"
                claimed.append(self._outgoing(task))
            return claimed

    def _outgoing(self, task: _Task) -> _Outgoing:
        http = task.http
        headers = {
            k: v for k, v in http["headers"].items()
            if k.lower() not in _REPLACED_HEADERS and not k.lower().startswith(_REPLACED_PREFIXES)
        }
        if "oidcToken" in http or "oauthToken" in http:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if "oidcToken" in http:
            token = http["oidcToken"]
            audience = token.get("audience") or http["url"]
            headers["Authorization"] = (
                f"Bearer {fake_oidc_token(token['serviceAccountEmail'], audience)}"
            )
        elif "oauthToken" in http:
            email = http["oauthToken"]["serviceAccountEmail"]
            headers["Authorization"] = f"Bearer ya29.emulator-{fake_subject(email)}"
        seconds, micros = divmod(task.schedule_us, 1_000_000)
        headers.update({
            "User-Agent": USER_AGENT,
            "X-CloudTasks-QueueName": task.queue.rsplit("/", 1)[1],
            "X-CloudTasks-TaskName": task.task_id,
            "X-CloudTasks-TaskRetryCount": str(task.dispatch_count),
            "X-CloudTasks-TaskExecutionCount": str(task.execution_count),
            "X-CloudTasks-TaskETA": f"{seconds}.{micros:06d}",
        })
        if task.previous_response is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(task.previous_response)
        return _Outgoing(
            task=task,
            url=http["url"],
            method=http["httpMethod"],
            headers=headers,
            body=task.body,
            timeout=min(task.dispatch_deadline, self.dispatch_timeout),
            schedule_us=task.schedule_us,
        )

    def _dispatch(self, outgoing: _Outgoing) -> dict[str, Any]:
        dispatched = self._now_us()
        status, error = _send(outgoing)
        with self._lock:
            task = outgoing.task
            now = self._now_us()
            task.dispatch_count += 1
            if task.first_dispatch_us is None:
                task.first_dispatch_us = dispatched
            attempt: dict[str, Any] = {
                "scheduleTime": format_timestamp(outgoing.schedule_us),
                "dispatchTime": format_timestamp(dispatched),
            }
            if status is not None:
                task.response_count += 1
                if status < 500:
                    task.execution_count += 1
                task.previous_response = status
                attempt["responseTime"] = format_timestamp(now)
                code = _HTTP_TO_CODE.get(status, "OK" if 200 <= status < 300 else "UNKNOWN")
                attempt["responseStatus"] = {
                    "code": _CODES.get(code, (0, 200))[0],
                    "message": http.client.responses.get(status, f"HTTP {status}"),
                }
            elif error is not None:
                attempt["responseStatus"] = {"code": _CODES[error[0]][0], "message": error[1]}
            task.last_attempt = attempt
            next_time = None
            queue = self._queues.get(task.queue)
            if task.state == "deleted" or queue is None or task.name not in queue.tasks:
                outcome = "deleted"  # deleted (or purged) while the request was out
            elif status is not None and 200 <= status < 300:
                outcome = "succeeded"
                self._finish(queue, task, "succeeded")
            elif self._exhausted(queue.retry, task, now):
                outcome = "failed"
                self._finish(queue, task, "failed")
            else:
                outcome = "retrying"
                task.in_flight = False
                task.forced = False
                task.state = "scheduled"
                task.schedule_us = now + _us(queue.retry.backoff(task.dispatch_count - 1))
                next_time = format_timestamp(task.schedule_us)
            record = {
                "task": task.name,
                "attempt": task.dispatch_count,
                "url": outgoing.url,
                "method": outgoing.method,
                "headers": {
                    k: ("<redacted>" if k.lower() == "authorization" else v)
                    for k, v in outgoing.headers.items()
                },
                "scheduleTime": attempt["scheduleTime"],
                "dispatchTime": attempt["dispatchTime"],
                "status": status,
                "error": None if error is None else f"{error[0]}: {error[1]}",
                "outcome": outcome,
                "nextScheduleTime": next_time,
            }
            self._attempts.append(record)
            self._attempted.notify_all()
            return dict(record)

    @staticmethod
    def _exhausted(retry: RetryConfig, task: _Task, now: int) -> bool:
        if retry.max_attempts == -1 or task.dispatch_count < retry.max_attempts:
            return False
        if retry.max_retry_duration <= 0 or task.first_dispatch_us is None:
            return True
        return now - task.first_dispatch_us >= _us(retry.max_retry_duration)


def _send(outgoing: _Outgoing) -> tuple[int | None, tuple[str, str] | None]:
    """POST (or whatever the task says) to the worker: (status, None) or (None, (code, why))."""
    parts = urlsplit(outgoing.url)
    connection_type: Callable[..., http.client.HTTPConnection] = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    connection = connection_type(parts.hostname, parts.port, timeout=outgoing.timeout)
    try:
        body = outgoing.body if outgoing.method in _BODY_METHODS else None
        connection.request(outgoing.method, target, body=body, headers=outgoing.headers)
        response = connection.getresponse()
        response.read()
        return int(response.status), None
    except TimeoutError:
        return None, ("DEADLINE_EXCEEDED", "the worker did not answer before the deadline")
    except (OSError, http.client.HTTPException) as exc:
        return None, ("UNAVAILABLE", f"could not reach the worker ({type(exc).__name__})")
    finally:
        connection.close()
