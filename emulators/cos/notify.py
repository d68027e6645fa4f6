"""Bucket event notifications for restores, shaped like the events COS sends to an SCF function.

COS publishes ``cos:ObjectRestore:Post`` when a restore job is created and
``cos:ObjectRestore:Completed`` when it finishes. The emulator queues both: a Post is due the
moment the restore was accepted (202), a Completed when the job finishes on the emulator's
:class:`~emulators._http.VirtualClock`. Nothing is sent by itself: a test advances the clock and
calls :meth:`NotificationQueue.deliver_due`; a standalone emulator runs :class:`Notifier`, a
background thread doing the same every interval. Delivery goes to a Python callable, to a URL
(the event JSON POSTed as ``application/json``), or both.

The record is the documented SCF COS-trigger shape::

    {"Records": [{"cos": {"cosSchemaVersion": "1.0",
        "cosObject": {"url": ..., "meta": {"x-cos-request-id": ..., "Content-Type": ...},
                      "vid": "", "key": "/<appid>/<bucket name>/<url-encoded key>", "size": N},
        "cosBucket": {"region": "gz", "name": ..., "appid": ..., "s3Region": "ap-guangzhou",
                      "cosRegion": "ap-guangzhou"},
        "cosNotificationId": "unknown"},
      "event": {"eventName": "cos:ObjectRestore:Completed", "eventVersion": "1.0",
                "eventTime": <epoch seconds>, "eventSource": "qcs::cos",
                "requestParameters": {"requestSourceIP": ..., "requestHeaders": {}},
                "eventQueue": ..., "reservedInfo": "", "reqid": N}}]}

``requestHeaders`` stays empty: real COS copies the triggering request's headers there (its
``Authorization`` among them), which an emulator has no reason to hand around.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

RESTORE_POST = "cos:ObjectRestore:Post"
RESTORE_COMPLETED = "cos:ObjectRestore:Completed"
DEFAULT_REGION = "ap-guangzhou"
MAX_KEPT = 1000  # delivered events and failures kept for inspection

# Long region names -> the short codes COS puts in cosBucket.region.
SHORT_REGIONS = {
    "ap-guangzhou": "gz",
    "ap-shanghai": "sh",
    "ap-beijing": "bj",
    "ap-chengdu": "cd",
    "ap-chongqing": "cq",
    "ap-nanjing": "nj",
    "ap-hongkong": "hk",
    "ap-singapore": "sg",
    "ap-beijing-1": "tj",
}

NotifyTarget = Callable[[dict[str, Any]], object]


@dataclass
class PendingNotification:
    """One event waiting for its time. ``object_version`` identifies the object it reports on,
    so nothing is sent for an object deleted (or written again) in the meantime."""

    due: float
    seq: int
    event_name: str
    bucket: str
    region: str
    key: str
    version_id: str | None
    size: int
    content_type: str
    request_id: str
    object_version: str

    def summary(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "event_name": self.event_name,
            "bucket": self.bucket,
            "region": self.region,
            "key": self.key,
        }


def split_bucket(bucket: str) -> tuple[str, str]:
    """``name-appid`` -> (name, appid); appid is "" when the bucket does not end in digits."""
    name, _, appid = bucket.rpartition("-")
    if name and appid.isdigit():
        return name, appid
    return bucket, ""


def cos_record(notice: PendingNotification, reqid: int) -> dict[str, Any]:
    """The SCF COS-trigger record for one notification."""
    name, appid = split_bucket(notice.bucket)
    encoded = quote(notice.key, safe="/")
    return {
        "cos": {
            "cosSchemaVersion": "1.0",
            "cosObject": {
                "url": f"http://{notice.bucket}.cos.{notice.region}.myqcloud.com/{encoded}",
                "meta": {
                    "x-cos-request-id": notice.request_id,
                    "Content-Type": notice.content_type,
                },
                "vid": notice.version_id or "",
                "key": f"/{appid}/{name}/{encoded}",
                "size": notice.size,
            },
            "cosBucket": {
                "region": SHORT_REGIONS.get(notice.region, notice.region),
                "name": name,
                "appid": appid,
                "s3Region": notice.region,
                "cosRegion": notice.region,
            },
            "cosNotificationId": "unknown",
        },
        "event": {
            "eventName": notice.event_name,
            "eventVersion": "1.0",
            "eventTime": int(notice.due),
            "eventSource": "qcs::cos",
            "requestParameters": {"requestSourceIP": "127.0.0.1", "requestHeaders": {}},
            "eventQueue": (
                f"qcs:0:scf:{notice.region}:appid/{appid or '0'}:default.restorefn.$DEFAULT"
            ),
            "reservedInfo": "",
            "reqid": reqid,
        },
    }


@dataclass
class NotificationQueue:
    """Pending restore notifications and where to deliver them.

    Notifications are only queued while a target is set (``target`` or ``url``), so an emulator
    nobody listens to does not accumulate them.
    """

    target: NotifyTarget | None = None
    url: str | None = None
    timeout: float = 10.0
    _pending: list[PendingNotification] = field(default_factory=list)
    _delivered: list[dict[str, Any]] = field(default_factory=list)
    _failures: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def enabled(self) -> bool:
        return self.target is not None or bool(self.url)

    def add(self, notice: PendingNotification) -> None:
        with self._lock:
            self._pending.append(notice)

    def next_seq(self) -> int:
        return next(self._seq)

    def take_due(self, now: float) -> list[PendingNotification]:
        with self._lock:
            due = sorted(
                (n for n in self._pending if n.due <= now), key=lambda n: (n.due, n.seq)
            )
            taken = {id(n) for n in due}
            self._pending = [n for n in self._pending if id(n) not in taken]
            return due

    def emit(self, events: list[dict[str, Any]]) -> None:
        """Send each event to the callable and/or URL; a failing target never stops the rest."""
        for event in events:
            errors = []
            if self.target is not None:
                try:
                    self.target(event)
                except Exception as exc:  # the function under test may raise (SCF retry)
                    errors.append(f"target raised {type(exc).__name__}")
            if self.url:
                try:
                    self._post(event)
                except Exception as exc:  # recorded, inspected by the caller
                    errors.append(f"POST {self.url} failed: {type(exc).__name__}: {exc}")
            with self._lock:
                self._delivered.append(event)
                del self._delivered[:-MAX_KEPT]
                if errors:
                    self._failures.append({"event": event, "errors": errors})
                    del self._failures[:-MAX_KEPT]

    def _post(self, event: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own setting
            str(self.url),
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=self.timeout) as response:
            response.read()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "url": self.url,
                "pending": [n.summary() for n in sorted(self._pending, key=lambda n: n.due)],
                "delivered": len(self._delivered),
                "failures": list(self._failures),
            }

    def delivered(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._delivered)

    def failures(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._failures)


class Notifier:
    """A background thread that delivers due notifications every ``interval`` real seconds
    (standalone and demo use; tests call ``deliver_due_notifications`` themselves)."""

    def __init__(self, deliver: Callable[[], object], interval: float = 1.0) -> None:
        self._deliver = deliver
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="cos-emulator-notifier", daemon=True
        )

    def start(self) -> Notifier:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._deliver()
