"""A Tencent COS emulator focused on archived objects and ``POST Object restore``.

It speaks the XML wire protocol cos-python-sdk-v5 and coscmd expect (virtual-host style: the
bucket comes from the ``Host`` header), verifies ``q-sign-algorithm=sha1`` signatures, and runs
the restore state machine on the emulator's :class:`VirtualClock`::

    (never requested) --POST restore 202--> ongoing --duration(class, tier)--> readable
        ^                                                                          |
        +----------------- expiry = completion + Days * 86400 --------------------+

State is evaluated lazily from ``clock.now()`` on every access, so advancing the clock is all a
test needs to move an object along.

Choices where the real behaviour is unconfirmed (see REFERENCE.md section 1):

* Expedited on DEEP_ARCHIVE is refused with 400 ``InvalidArgument`` (real code unconfirmed).
* A repeat restore on a readable copy answers 200 and moves the expiry to ``now + Days``.
  Real COS appears to round expiry dates to midnight Beijing time (16:00 GMT); the emulator
  does not round, so tests can compute the expiry exactly.
* The restore rate limit counts restore POSTs admitted in a sliding one-second window of *real*
  (monotonic) time, not virtual time, so an accelerated clock does not make it stricter. Requests
  refused with 503 ``SlowDown`` do not use up the window.
* A signature whose ``q-sign-time`` window has ended is answered 403 ``AccessDenied`` ("Request
  has expired"); one that starts more than 15 minutes in the future gets 403
  ``RequestTimeTooSkewed``. Both are checked against the real wall clock.
* Objects carry a generated version id (sent as ``x-cos-version-id``); ``versionId`` may be that
  id or ``null``; anything else is 404 ``NoSuchVersion``. One version per key.
* Subresources the emulator does not model (``?acl``, ``?tagging``, multipart...) get 501
  ``NotImplemented`` instead of being silently treated as plain reads or writes.

Restore notifications (optional, see :mod:`emulators.cos.notify`): with ``restore_notify`` (a
callable) or ``notify_url`` set, an accepted restore queues ``cos:ObjectRestore:Post`` (due at
once) and ``cos:ObjectRestore:Completed`` (due when the job finishes on the virtual clock), shaped
like the SCF COS-trigger event. ``deliver_due_notifications()`` sends every one that is due;
``start_notifier()`` does that from a background thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from emulators._http import Request, Response, VirtualClock
from emulators.cos import signature
from emulators.cos.notify import (
    DEFAULT_REGION,
    RESTORE_COMPLETED,
    RESTORE_POST,
    NotificationQueue,
    Notifier,
    NotifyTarget,
    PendingNotification,
    cos_record,
)
from emulators.cos.render import (
    ListedObject,
    Listing,
    error_xml,
    http_date,
    list_bucket_xml,
)

DEFAULT_SECRET_ID = "AKIDEXAMPLEEMULATOR"
DEFAULT_SECRET_KEY = "emulator-secret-key"

STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "STANDARD_IA",
        "ARCHIVE",
        "DEEP_ARCHIVE",
        "INTELLIGENT_TIERING",
        "MAZ_STANDARD",
        "MAZ_STANDARD_IA",
        "MAZ_INTELLIGENT_TIERING",
        "MAZ_ARCHIVE",
    }
)
ARCHIVE_CLASSES = frozenset({"ARCHIVE", "DEEP_ARCHIVE", "MAZ_ARCHIVE"})
INTELLIGENT_CLASSES = frozenset({"INTELLIGENT_TIERING", "MAZ_INTELLIGENT_TIERING"})
# Tiers of an intelligent-tiering object; the last two need a restore like the archive classes.
STORAGE_TIERS = frozenset({"FREQUENT", "INFREQUENT", "ARCHIVE", "DEEP_ARCHIVE"})
TIERS = ("Expedited", "Standard", "Bulk")

HOUR = 3600.0
DEFAULT_RESTORE_DURATIONS: dict[tuple[str, str], float] = {
    ("ARCHIVE", "Expedited"): 60.0,
    ("ARCHIVE", "Standard"): 3 * HOUR,
    ("ARCHIVE", "Bulk"): 5 * HOUR,
    ("MAZ_ARCHIVE", "Expedited"): 60.0,
    ("MAZ_ARCHIVE", "Standard"): 3 * HOUR,
    ("MAZ_ARCHIVE", "Bulk"): 5 * HOUR,
    ("DEEP_ARCHIVE", "Standard"): 12 * HOUR,
    ("DEEP_ARCHIVE", "Bulk"): 24 * HOUR,
}
MIN_DAYS, MAX_DAYS = 1, 365
MAX_SIGN_SKEW = 900.0  # seconds a q-sign-time may start in the future
MAX_KEYS_LIMIT = 1000

_HOST_RE = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9-]*)\.cos(?:-internal)?\.")
_REGION_RE = re.compile(r"^[a-z0-9-]+\.cos(?:-internal)?\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$")

_FAULT_CODES: dict[int, tuple[str, str]] = {
    400: ("InvalidRequest", "Injected fault: bad request."),
    403: ("AccessDenied", "Injected fault: access denied."),
    404: ("NoSuchResource", "Injected fault: resource not found."),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}
# What an injected status means on a restore POST: the codes the restore API itself uses.
_RESTORE_FAULT_CODES: dict[int, tuple[str, str]] = {
    400: ("InvalidArgument", "Injected fault: invalid restore request."),
    404: ("NoSuchKey", "The specified key does not exist."),
    405: ("RestoreNonArchiveObject", "The object's storage class does not need a restore."),
    409: ("RestoreAlreadyInProgress", "Object restore is already in progress."),
}


class CosError(Exception):
    """A COS error answer; ``extra`` adds elements (e.g. StringToSign) after the standard five."""

    def __init__(
        self, status: int, code: str, message: str, extra: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})


class SlidingWindowLimiter:
    """At most ``rate`` admissions in any ``window`` seconds; ``rate <= 0`` means unlimited."""

    def __init__(
        self, rate: float, window: float = 1.0, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        self.rate = rate
        self.window = window
        self._now = now
        # Every admission's time and every refusal: how a client's sustained rate and its
        # 503s are measured (``CosEmulator.restore_rate_stats``).
        self.admitted_at: list[float] = []
        self.refused = 0

    def admit(self) -> bool:
        with self._lock:
            t = self._now()
            if self.rate > 0:
                while self._times and self._times[0] <= t - self.window:
                    self._times.popleft()
                if len(self._times) >= self.rate:
                    self.refused += 1
                    return False
                self._times.append(t)
            self.admitted_at.append(t)
            return True

    def stats(self) -> dict[str, float]:
        """Admitted and refused counts, and the admitted requests' rate from first to last."""
        with self._lock:
            times = list(self.admitted_at)
            refused = self.refused
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        rate = (len(times) - 1) / span if span > 0 else 0.0
        return {"admitted": len(times), "refused": refused, "seconds": span, "rate": rate}

    def reset_stats(self) -> None:
        with self._lock:
            self.admitted_at.clear()
            self.refused = 0


@dataclass
class RestoreJob:
    tier: str
    days: int
    requested_at: float
    completes_at: float
    expires_at: float

    def phase(self, now: float) -> str:
        if now < self.completes_at:
            return "ongoing"
        if now < self.expires_at:
            return "readable"
        return "expired"


@dataclass
class StoredObject:
    bucket: str
    key: str
    body: bytes
    storage_class: str
    last_modified: float
    version_id: str
    storage_tier: str | None = None
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    restore: RestoreJob | None = None
    restore_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.body).hexdigest() + '"'

    @property
    def archive_class(self) -> str | None:
        """The class whose restore rules apply, or None if the object is readable as it is."""
        if self.storage_class in ARCHIVE_CLASSES:
            return self.storage_class
        if self.storage_class in INTELLIGENT_CLASSES and self.storage_tier in (
            "ARCHIVE",
            "DEEP_ARCHIVE",
        ):
            return self.storage_tier
        return None


@dataclass
class _Posts:
    received: int = 0
    accepted: int = 0
    statuses: list[int] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def parse_restore_request(body: bytes) -> tuple[int, str]:
    """(days, tier) from a ``RestoreRequest`` body; CosError 400 when malformed or invalid."""
    if not body.strip():
        raise CosError(400, "MalformedXML", "The request body is empty; RestoreRequest expected.")
    try:
        root = ET.fromstring(body)  # noqa: S314 - loopback test server, trusted callers
    except ET.ParseError as exc:
        raise CosError(400, "MalformedXML", f"The XML is not well-formed: {exc}") from None
    if _local(root.tag) != "RestoreRequest":
        raise CosError(400, "MalformedXML", "The root element must be RestoreRequest.")
    days_el = _child(root, "Days")
    if days_el is None or not (days_el.text or "").strip():
        raise CosError(400, "MalformedXML", "RestoreRequest.Days is required.")
    try:
        days = int((days_el.text or "").strip())
    except ValueError:
        raise CosError(400, "InvalidArgument", "Days must be an integer.") from None
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise CosError(
            400, "InvalidArgument", f"Days must be between {MIN_DAYS} and {MAX_DAYS}, got {days}."
        )
    tier = "Standard"
    params = _child(root, "CASJobParameters")
    if params is not None:
        tier_el = _child(params, "Tier")
        if tier_el is not None:
            wanted = (tier_el.text or "").strip()
            matches = [t for t in TIERS if t.lower() == wanted.lower()]
            if not matches:
                raise CosError(
                    400,
                    "InvalidArgument",
                    f"Tier must be one of {', '.join(TIERS)}, got {wanted!r}.",
                )
            tier = matches[0]
    return days, tier


class CosEmulator:
    """The COS emulator; serve it with ``emulators._http.serve`` or ``python -m emulators.cos``.

    ``credentials`` maps SecretId to SecretKey. ``restore_durations`` overrides, per
    ``(storage class, tier)``, how many seconds of emulated time a restore takes.
    ``restore_rate_limit`` is restore POSTs per second (<= 0 disables the limit).
    ``restore_notify`` (a callable taking the event dict) and ``notify_url`` (POSTed the event
    JSON) receive restore notifications; see ``deliver_due_notifications``.
    """

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        clock_factor: float = 1.0,
        restore_rate_limit: float = 100.0,
        verify_signatures: bool = True,
        restore_durations: Mapping[tuple[str, str], float] | None = None,
        restore_notify: NotifyTarget | None = None,
        notify_url: str | None = None,
    ) -> None:
        self.clock = VirtualClock(clock_factor)
        self.notifications = NotificationQueue(target=restore_notify, url=notify_url)
        self._deliver_lock = threading.Lock()
        self._notifier: Notifier | None = None
        self._reqids = itertools.count(1)
        self.credentials: dict[str, str] = dict(
            credentials if credentials is not None else {DEFAULT_SECRET_ID: DEFAULT_SECRET_KEY}
        )
        self.verify_signatures = verify_signatures
        self.restore_durations = dict(DEFAULT_RESTORE_DURATIONS)
        for (cls, tier), seconds in (restore_durations or {}).items():
            if cls not in ARCHIVE_CLASSES or tier not in TIERS:
                raise ValueError(f"unknown restore duration key {(cls, tier)!r}")
            self.restore_durations[(cls, tier)] = float(seconds)
        self._limiter = SlidingWindowLimiter(restore_rate_limit)
        self._lock = threading.RLock()
        self._buckets: dict[str, dict[str, StoredObject]] = {}
        self._posts: dict[tuple[str, str], _Posts] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ python API

    @property
    def restore_rate_limit(self) -> float:
        return self._limiter.rate

    @restore_rate_limit.setter
    def restore_rate_limit(self, rate: float) -> None:
        self._limiter.rate = float(rate)

    def restore_rate_stats(self) -> dict[str, float]:
        """Restore POSTs admitted and refused (503 SlowDown) by the rate limit so far, and the
        admitted ones' sustained rate (count - 1 over first-to-last seconds)."""
        return self._limiter.stats()

    def reset_restore_rate_stats(self) -> None:
        self._limiter.reset_stats()

    def create_bucket(self, bucket: str) -> None:
        with self._lock:
            self._buckets.setdefault(bucket, {})

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes = b"",
        storage_class: str = "ARCHIVE",
        *,
        storage_tier: str | None = None,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Store an object directly (no signing); returns its description as ``objects`` does."""
        storage_class = storage_class.upper()
        if storage_class not in STORAGE_CLASSES:
            raise ValueError(f"unknown storage class {storage_class!r}")
        if storage_tier is not None:
            storage_tier = storage_tier.upper()
            if storage_class not in INTELLIGENT_CLASSES or storage_tier not in STORAGE_TIERS:
                raise ValueError(f"storage tier {storage_tier!r} invalid for {storage_class}")
        if not key:
            raise ValueError("key must not be empty")
        with self._lock:
            obj = self._store(bucket, key, body, storage_class, content_type, dict(metadata or {}))
            obj.storage_tier = storage_tier
            return self._describe(obj, self.clock.now())

    def objects(self, bucket: str | None = None, prefix: str = "") -> list[dict[str, Any]]:
        with self._lock:
            now = self.clock.now()
            return [
                self._describe(obj, now)
                for name in sorted(self._buckets)
                if bucket is None or name == bucket
                for key, obj in sorted(self._buckets[name].items())
                if key.startswith(prefix)
            ]

    def object_body(self, bucket: str, key: str) -> bytes:
        with self._lock:
            return self._buckets[bucket][key].body

    def restore_state(self, bucket: str, key: str) -> dict[str, Any]:
        """The restore view of one object; KeyError if it does not exist.

        ``status`` is ``none`` (never requested, or the restored copy expired), ``ongoing`` or
        ``readable``; ``x_cos_restore`` is the header HEAD would send (None when absent).
        """
        with self._lock:
            obj = self._buckets[bucket][key]
            state: dict[str, Any] = self._describe(obj, self.clock.now())["restore"]
            return state

    def restore_requests(self) -> list[dict[str, Any]]:
        """Restore POSTs answered so far, per (bucket, key): ``received`` (every answer,
        injected faults included, connection resets not), ``accepted`` (answered 202) and the
        status of each in order."""
        with self._lock:
            return [
                {
                    "bucket": bucket,
                    "key": key,
                    "received": posts.received,
                    "accepted": posts.accepted,
                    "statuses": list(posts.statuses),
                }
                for (bucket, key), posts in sorted(self._posts.items())
            ]

    def clear_restore_requests(self) -> None:
        with self._lock:
            self._posts.clear()

    # ------------------------------------------------------------------ notifications

    @property
    def restore_notify(self) -> NotifyTarget | None:
        return self.notifications.target

    @restore_notify.setter
    def restore_notify(self, target: NotifyTarget | None) -> None:
        self.notifications.target = target

    @property
    def notify_url(self) -> str | None:
        return self.notifications.url

    @notify_url.setter
    def notify_url(self, url: str | None) -> None:
        self.notifications.url = url or None

    def deliver_due_notifications(self, *, batch: bool = False) -> list[dict[str, Any]]:
        """Send every notification due at the current virtual time, oldest first; returns the
        events sent. One event per record, or all records in one event with ``batch``.

        A notification whose object was deleted since is dropped. A target that raises or a URL
        that fails is recorded in ``notifications.failures()`` and does not stop the others.
        """
        with self._deliver_lock:
            with self._lock:
                now = self.clock.now()
                records = []
                for notice in self.notifications.take_due(now):
                    obj = self._buckets.get(notice.bucket, {}).get(notice.key)
                    # Gone, or deleted and written again: nothing to report on. An expired copy
                    # still gets its Completed: the restore did finish at that time.
                    if obj is None or obj.version_id != notice.object_version:
                        continue
                    records.append(cos_record(notice, next(self._reqids)))
            if not records:
                return []
            events = [{"Records": records}] if batch else [{"Records": [r]} for r in records]
            self.notifications.emit(events)
            return events

    def start_notifier(self, interval: float = 1.0) -> None:
        """Deliver due notifications from a background thread every ``interval`` real seconds."""
        if self._notifier is None:
            self._notifier = Notifier(self.deliver_due_notifications, interval).start()

    def stop_notifier(self) -> None:
        if self._notifier is not None:
            self._notifier.stop()
            self._notifier = None

    def _queue_notifications(
        self, obj: StoredObject, job: RestoreJob, request: Request, request_id: str
    ) -> None:
        if not self.notifications.enabled:
            return
        match = _REGION_RE.match(request.host)
        region = match.group("region") if match else DEFAULT_REGION
        version_id = request.query.get("versionId")
        phases = ((RESTORE_POST, job.requested_at), (RESTORE_COMPLETED, job.completes_at))
        for event_name, due in phases:
            self.notifications.add(
                PendingNotification(
                    due=due,
                    seq=self.notifications.next_seq(),
                    event_name=event_name,
                    bucket=obj.bucket,
                    region=region,
                    key=obj.key,
                    version_id=version_id if version_id not in (None, "", "null") else None,
                    size=len(obj.body),
                    content_type=obj.content_type,
                    request_id=request_id,
                    object_version=obj.version_id,
                )
            )

    # ------------------------------------------------------------------ Emulator protocol

    def handle(self, request: Request) -> Response:
        try:
            if self.verify_signatures:
                self._authenticate(request)
            response = self._route(request)
        except CosError as err:
            response = self._error(request, err)
        self._finish(request, response)
        return response

    def fault_response(self, status: int, request: Request) -> Response:
        table = dict(_FAULT_CODES)
        if request.method == "POST" and "restore" in request.query:
            table.update(_RESTORE_FAULT_CODES)
        code, message = table.get(
            status,
            ("InternalError", "Injected fault.")
            if status >= 500
            else ("InvalidRequest", "Injected fault."),
        )
        response = self._error(request, CosError(status, code, message))
        self._finish(request, response)
        return response

    def control(self, verb: str, request: Request) -> Response | None:
        method = request.method
        if verb == "objects" and method == "GET":
            return Response.json(
                200, self.objects(request.query.get("bucket"), request.query.get("prefix", ""))
            )
        if verb == "objects" and method in ("POST", "PUT"):
            payload = request.json() or {}
            if not isinstance(payload, dict) or "bucket" not in payload or "key" not in payload:
                raise ValueError("POST objects needs a JSON object with bucket and key")
            if "body_base64" in payload:
                body = base64.b64decode(payload["body_base64"])
            else:
                body = str(payload.get("body", "")).encode("utf-8")
            described = self.put_object(
                str(payload["bucket"]),
                str(payload["key"]),
                body,
                str(payload.get("storage_class", "ARCHIVE")),
                storage_tier=payload.get("storage_tier"),
                content_type=str(payload.get("content_type", "application/octet-stream")),
                metadata=payload.get("metadata") or {},
            )
            return Response.json(201, described)
        if verb == "restore-state" and method == "GET":
            try:
                state = self.restore_state(request.query["bucket"], request.query["key"])
            except KeyError:
                return Response.json(404, {"error": "no such object"})
            return Response.json(200, state)
        if verb == "restore-requests" and method == "GET":
            return Response.json(200, self.restore_requests())
        if verb == "restore-requests" and method == "DELETE":
            self.clear_restore_requests()
            return Response.json(200, {"cleared": True})
        if verb == "settings" and method == "GET":
            return Response.json(200, self._settings())
        if verb == "settings" and method == "POST":
            payload = request.json() or {}
            unknown = set(payload) - {"restore_rate_limit", "verify_signatures", "notify_url"}
            if unknown:
                raise ValueError(f"unknown settings: {sorted(unknown)}")
            if "restore_rate_limit" in payload:
                self.restore_rate_limit = float(payload["restore_rate_limit"])
            if "verify_signatures" in payload:
                self.verify_signatures = bool(payload["verify_signatures"])
            if "notify_url" in payload:
                self.notify_url = payload["notify_url"]
            return Response.json(200, self._settings())
        if verb == "notifications" and method == "GET":
            return Response.json(200, self.notifications.state())
        if verb == "notifications" and method == "POST":
            payload = request.json() or {}
            events = self.deliver_due_notifications(batch=bool(payload.get("batch", False)))
            return Response.json(200, {"delivered": events})
        return None

    # ------------------------------------------------------------------ internals

    def _settings(self) -> dict[str, Any]:
        return {
            "restore_rate_limit": self.restore_rate_limit,
            "verify_signatures": self.verify_signatures,
            "notify_url": self.notify_url,
            "restore_durations": [
                {"storage_class": c, "tier": t, "seconds": s}
                for (c, t), s in sorted(self.restore_durations.items())
            ],
        }

    def _new_ids(self) -> tuple[str, str]:
        n = next(self._ids)
        request_id = base64.b64encode(
            f"{int(time.time()):x}_{n:x}_{os.urandom(4).hex()}".encode()
        ).decode()
        trace_id = base64.b64encode(os.urandom(36)).decode()
        return request_id, trace_id

    def _error(self, request: Request, err: CosError) -> Response:
        request_id, trace_id = self._new_ids()
        headers = {"x-cos-request-id": request_id, "x-cos-trace-id": trace_id}
        if request.method == "HEAD":
            return Response(err.status, b"", headers, content_length=0)
        body = error_xml(
            err.code, err.message, f"{request.host}{request.raw_path}", request_id, trace_id
        )
        if err.extra:
            extra = "".join(
                f"<{name}>{escape(value)}</{name}>" for name, value in err.extra.items()
            )
            body = body.replace(b"</Error>", extra.encode("utf-8") + b"</Error>")
        headers["Content-Type"] = "application/xml"
        return Response(err.status, body, headers)

    def _finish(self, request: Request, response: Response) -> None:
        if "x-cos-request-id" not in response.headers:
            request_id, trace_id = self._new_ids()
            response.headers["x-cos-request-id"] = request_id
            response.headers["x-cos-trace-id"] = trace_id
        if request.method == "POST" and "restore" in request.query:
            key = (_bucket_of(request.host) or "", request.path[1:])
            with self._lock:
                posts = self._posts.setdefault(key, _Posts())
                posts.received += 1
                posts.statuses.append(response.status)
                if response.status == 202:
                    posts.accepted += 1

    # -- signatures

    def _authenticate(self, request: Request) -> None:
        header = request.header("Authorization").strip()
        if header:
            fields = signature.split_header(header)
        elif "q-signature" in request.query or "q-sign-algorithm" in request.query:
            fields = {k: v for k, v in request.query_list if k.startswith("q-")}
        else:
            raise CosError(403, "AccessDenied", "Access Denied. The request is not signed.")
        try:
            auth = signature.parse_authorization(fields)
        except ValueError as exc:
            raise CosError(403, "AccessDenied", f"Malformed Authorization: {exc}.") from None
        secret = self.credentials.get(auth.access_key)
        if secret is None:
            raise CosError(403, "InvalidAccessKeyId", "The SecretId you provided does not exist.")
        now = time.time()
        start, end = auth.sign_time
        if now > end:
            raise CosError(403, "AccessDenied", "Request has expired (q-sign-time has ended).")
        if start > now + MAX_SIGN_SKEW:
            raise CosError(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the server's time is too large.",
            )
        presign_fields = set(signature.REQUIRED_FIELDS) | {"q-token"}
        params, missing_params = signature.canonical_pairs(
            auth.url_param_list,
            [(k, v) for k, v in request.query_list if k not in presign_fields],
        )
        headers, missing_headers = signature.canonical_pairs(
            auth.header_list, [(str(k), str(v)) for k, v in request.headers.items()]
        )
        http = signature.http_string(request.method, request.path, params, headers)
        to_sign = signature.string_to_sign(auth.key_time, http)
        expected = signature.compute_signature(secret, auth.key_time, to_sign)
        if missing_params or missing_headers or not hmac.compare_digest(expected, auth.signature):
            detail = ""
            if missing_params or missing_headers:
                detail = (
                    f" Signed names absent from the request: {missing_params + missing_headers}."
                )
            raise CosError(
                403,
                "SignatureDoesNotMatch",
                "The Signature you specified does not match." + detail,
                {"FormatString": http, "StringToSign": to_sign},
            )

    # -- routing

    def _route(self, request: Request) -> Response:
        bucket = _bucket_of(request.host)
        if bucket is None:
            raise CosError(
                400,
                "InvalidURI",
                "Address the bucket virtual-host style: "
                "Host: <bucket>-<appid>.cos.<region>.myqcloud.com.",
            )
        key = request.path[1:]
        method = request.method
        if not key:
            return self._bucket_request(method, bucket, request)
        version_id = request.query.get("versionId")
        if method == "POST":
            _only(request, {"restore", "versionId"})
            if "restore" not in request.query:
                raise CosError(501, "NotImplemented", "Only POST Object restore is emulated.")
            return self._restore(bucket, key, version_id, request)
        if method == "PUT":
            _only(request, set())
            return self._put(bucket, key, request)
        if method in ("GET", "HEAD"):
            _only(request, {"versionId"}, prefixes=("response-",))
            return self._get(bucket, key, version_id, head=method == "HEAD")
        if method == "DELETE":
            _only(request, {"versionId"})
            with self._lock:
                objects = self._bucket(bucket)
                obj = objects.get(key)
                if obj is not None and version_id in (None, "null", obj.version_id):
                    del objects[key]
            return Response(204)
        raise CosError(405, "MethodNotAllowed", f"{method} is not allowed on an object.")

    def _bucket(self, bucket: str) -> dict[str, StoredObject]:
        objects = self._buckets.get(bucket)
        if objects is None:
            raise CosError(404, "NoSuchBucket", "The specified bucket does not exist.")
        return objects

    def _bucket_request(self, method: str, bucket: str, request: Request) -> Response:
        if method == "PUT":
            _only(request, set())
            with self._lock:
                if bucket in self._buckets:
                    raise CosError(
                        409, "BucketAlreadyOwnedByYou", "The bucket already exists and is yours."
                    )
                self._buckets[bucket] = {}
            return Response(200)
        if method == "HEAD":
            _only(request, set())
            with self._lock:
                self._bucket(bucket)
            return Response(200)
        if method == "DELETE":
            _only(request, set())
            with self._lock:
                if self._bucket(bucket):
                    raise CosError(
                        409, "BucketNotEmpty", "The bucket you tried to delete is not empty."
                    )
                del self._buckets[bucket]
            return Response(204)
        if method == "GET":
            _only(request, {"prefix", "marker", "max-keys", "delimiter", "encoding-type"})
            return self._list(bucket, request)
        raise CosError(405, "MethodNotAllowed", f"{method} is not allowed on a bucket.")

    def _list(self, bucket: str, request: Request) -> Response:
        query = request.query
        prefix = query.get("prefix", "")
        marker = query.get("marker", "")
        delimiter = query.get("delimiter", "")
        encoding_type = query.get("encoding-type", "")
        if encoding_type not in ("", "url"):
            raise CosError(400, "InvalidArgument", "encoding-type must be url.")
        raw_max = query.get("max-keys", "") or str(MAX_KEYS_LIMIT)
        try:
            max_keys = int(raw_max)
        except ValueError:
            raise CosError(400, "InvalidArgument", "max-keys must be an integer.") from None
        if max_keys < 0:
            raise CosError(400, "InvalidArgument", "max-keys must not be negative.")
        max_keys = min(max_keys, MAX_KEYS_LIMIT)
        with self._lock:
            objects = self._bucket(bucket)
            candidates = sorted(
                (k, o) for k, o in objects.items() if k.startswith(prefix) and k > marker
            )
            contents: list[ListedObject] = []
            prefixes: list[str] = []
            truncated = False
            last = ""
            for key, obj in candidates:
                common = None
                if delimiter:
                    cut = key.find(delimiter, len(prefix))
                    if cut >= 0:
                        common = key[: cut + len(delimiter)]
                        if (prefixes and prefixes[-1] == common) or common <= marker:
                            continue
                if len(contents) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                if common is not None:
                    prefixes.append(common)
                    last = common
                else:
                    contents.append(
                        ListedObject(
                            key, obj.last_modified, obj.etag, len(obj.body), obj.storage_class
                        )
                    )
                    last = key
        listing = Listing(
            bucket=bucket,
            prefix=prefix,
            marker=marker,
            max_keys=max_keys,
            delimiter=delimiter,
            encoding_type=encoding_type,
            is_truncated=truncated,
            next_marker=last if truncated else None,
            contents=contents,
            common_prefixes=prefixes,
        )
        return Response(200, list_bucket_xml(listing), {"Content-Type": "application/xml"})

    def _lookup(self, bucket: str, key: str, version_id: str | None) -> StoredObject:
        obj = self._bucket(bucket).get(key)
        if obj is None:
            raise CosError(404, "NoSuchKey", "The specified key does not exist.")
        if version_id is not None and version_id not in ("null", obj.version_id):
            raise CosError(404, "NoSuchVersion", "The specified version does not exist.")
        return obj

    def _store(
        self,
        bucket: str,
        key: str,
        body: bytes,
        storage_class: str,
        content_type: str,
        metadata: dict[str, str],
    ) -> StoredObject:
        obj = StoredObject(
            bucket=bucket,
            key=key,
            body=body,
            storage_class=storage_class,
            last_modified=self.clock.now(),
            version_id=base64.urlsafe_b64encode(os.urandom(18)).decode(),
            content_type=content_type,
            metadata=metadata,
        )
        self._buckets.setdefault(bucket, {})[key] = obj
        return obj

    def _put(self, bucket: str, key: str, request: Request) -> Response:
        if request.header("x-cos-copy-source"):
            raise CosError(501, "NotImplemented", "PUT Object - Copy is not emulated.")
        storage_class = (request.header("x-cos-storage-class") or "STANDARD").strip().upper()
        if storage_class not in STORAGE_CLASSES:
            raise CosError(400, "InvalidArgument", f"Invalid storage class {storage_class!r}.")
        md5 = request.header("Content-MD5").strip()
        if md5 and md5 != base64.b64encode(hashlib.md5(request.body).digest()).decode():
            raise CosError(400, "BadDigest", "The Content-MD5 you specified did not match.")
        metadata = {
            str(k).lower(): str(v)
            for k, v in request.headers.items()
            if str(k).lower().startswith("x-cos-meta-")
        }
        content_type = request.header("Content-Type") or "application/octet-stream"
        with self._lock:
            obj = self._store(bucket, key, request.body, storage_class, content_type, metadata)
            headers = {"ETag": obj.etag, "x-cos-version-id": obj.version_id}
        return Response(200, b"", headers)

    def _get(self, bucket: str, key: str, version_id: str | None, head: bool) -> Response:
        with self._lock:
            obj = self._lookup(bucket, key, version_id)
            now = self.clock.now()
            phase = self._phase(obj, now)
            headers = {
                "Content-Type": obj.content_type,
                "ETag": obj.etag,
                "Last-Modified": http_date(obj.last_modified),
                "Accept-Ranges": "bytes",
                "x-cos-version-id": obj.version_id,
                **obj.metadata,
            }
            if obj.storage_class != "STANDARD":
                headers["x-cos-storage-class"] = obj.storage_class
            if obj.storage_tier:
                headers["x-cos-storage-tier"] = obj.storage_tier
            headers.update(_restore_headers(obj.restore, phase))
            if head:
                return Response(200, b"", headers, content_length=len(obj.body))
            if obj.archive_class is not None and phase != "readable":
                raise CosError(
                    403,
                    "InvalidObjectState",
                    "The operation is not valid for the object's storage class; restore it first.",
                )
            return Response(200, obj.body, headers)

    def _phase(self, obj: StoredObject, now: float) -> str:
        """``none``, ``ongoing`` or ``readable``; an expired restore is dropped on the way."""
        if obj.restore is None:
            return "none"
        phase = obj.restore.phase(now)
        if phase == "expired":
            obj.restore_history.append(_job_dict(obj.restore))
            obj.restore = None
            return "none"
        return phase

    def _restore(self, bucket: str, key: str, version_id: str | None, request: Request) -> Response:
        if not self._limiter.admit():
            raise CosError(503, "SlowDown", "Please reduce your restore request rate.")
        with self._lock:
            obj = self._lookup(bucket, key, version_id)
            days, tier = parse_restore_request(request.body)
            archive_class = obj.archive_class
            if archive_class is None:
                raise CosError(
                    405,
                    "RestoreNonArchiveObject",
                    f"The object's storage class {obj.storage_class} does not need a restore.",
                )
            duration = self.restore_durations.get((archive_class, tier))
            if duration is None:
                raise CosError(
                    400,
                    "InvalidArgument",
                    f"Tier {tier} is not supported for {archive_class} objects.",
                )
            now = self.clock.now()
            phase = self._phase(obj, now)
            if phase == "ongoing":
                raise CosError(
                    409, "RestoreAlreadyInProgress", "Object restore is already in progress."
                )
            if phase == "readable" and obj.restore is not None:
                obj.restore.days = days
                obj.restore.expires_at = now + days * 86400.0
                return Response(200)
            job = RestoreJob(
                tier=tier,
                days=days,
                requested_at=now,
                completes_at=now + duration,
                expires_at=now + duration + days * 86400.0,
            )
            obj.restore = job
            request_id, trace_id = self._new_ids()
            self._queue_notifications(obj, job, request, request_id)
            return Response(202, b"", {"x-cos-request-id": request_id, "x-cos-trace-id": trace_id})

    def _describe(self, obj: StoredObject, now: float) -> dict[str, Any]:
        phase = self._phase(obj, now)
        job = obj.restore
        restore: dict[str, Any] = {
            "status": phase,
            "readable": obj.archive_class is None or phase == "readable",
            "x_cos_restore": _restore_headers(job, phase).get("x-cos-restore"),
            "history": list(obj.restore_history),
            **(_job_dict(job) if job else {}),
        }
        return {
            "bucket": obj.bucket,
            "key": obj.key,
            "size": len(obj.body),
            "etag": obj.etag,
            "version_id": obj.version_id,
            "storage_class": obj.storage_class,
            "storage_tier": obj.storage_tier,
            "last_modified": obj.last_modified,
            "restore": restore,
        }


def _job_dict(job: RestoreJob) -> dict[str, Any]:
    return {
        "tier": job.tier,
        "days": job.days,
        "requested_at": job.requested_at,
        "completes_at": job.completes_at,
        "expires_at": job.expires_at,
        "expiry_date": http_date(job.expires_at),
    }


def _restore_headers(job: RestoreJob | None, phase: str) -> dict[str, str]:
    if job is None or phase == "none":
        return {}
    if phase == "ongoing":
        return {
            "x-cos-restore": 'ongoing-request="true"',
            "x-cos-restore-status": (
                f'tier="{job.tier.lower()}"; request-date="{http_date(job.requested_at)}"'
            ),
        }
    return {"x-cos-restore": f'ongoing-request="false", expiry-date="{http_date(job.expires_at)}"'}


def _bucket_of(host: str) -> str | None:
    match = _HOST_RE.match(host)
    return match.group("bucket") if match else None


def _only(request: Request, allowed: Iterable[str], prefixes: tuple[str, ...] = ()) -> None:
    """501 for query parameters naming a subresource the emulator does not model."""
    allowed = set(allowed)
    for name in request.query:
        if name in allowed or name.startswith("q-") or name.startswith(prefixes):
            continue
        raise CosError(501, "NotImplemented", f"The emulator does not implement ?{name}.")
