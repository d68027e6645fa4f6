"""Publish each CloudEvent to a Google Cloud Pub/Sub topic through the REST API.

The message follows the CloudEvents Pub/Sub protocol binding in *structured* content mode: the
message data is the whole CloudEvent (JSON event format) and the ``Content-Type`` attribute is
``application/cloudevents+json``; the binding lets a structured message also carry the ``ce-*``
attributes of binary mode, so subscribers can filter on ``ce-type`` or ``ce-source`` without
decoding the payload. The ordering key is ``<bucket>/<key>``, so the events of one object are
delivered in order to subscriptions that enable message ordering.

Why REST rather than ``google-cloud-pubsub``: that library pulls in grpc and protobuf (hundreds
of milliseconds of imports on a cold start); google-auth's ``AuthorizedSession`` is already there
with google-cloud-storage. Nothing from google-auth or requests is imported until the first
publish. With an emulator endpoint (``PUBSUB_EMULATOR_HOST``) requests go unauthenticated.

Retried with jittered exponential backoff on 429, 5xx, connection errors and timeouts, a bounded
number of times; any other 4xx is final.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.events import CloudEvent
from shared.sinks.base import SinkError

DEFAULT_ENDPOINT = "https://pubsub.googleapis.com"
PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
# Pub/Sub limits: an ordering key and an attribute value are at most 1024 bytes.
MAX_ORDERING_KEY_BYTES = 1024
MAX_ATTRIBUTE_VALUE_BYTES = 1024
# 408 and 409 (ABORTED) are transient in Pub/Sub's own retry policy; 429 and 5xx always are.
RETRYABLE_STATUSES = frozenset({408, 409, 429})
_TOPIC = re.compile(r"projects/[^/\s]+/topics/[^/\s]+")


def ordering_key(bucket: str | None, key: str | None) -> str | None:
    """``<bucket>/<key>``, or a bounded form of it when it would exceed Pub/Sub's 1024 bytes.

    A long name keeps its first bytes and gains a SHA-256 of the full name, so two different
    objects never share a key just because their names share a long prefix.
    """
    if not bucket or key is None:
        return None
    full = f"{bucket}/{key}"
    raw = full.encode()
    if len(raw) <= MAX_ORDERING_KEY_BYTES:
        return full
    digest = hashlib.sha256(raw).hexdigest()
    head = raw[: MAX_ORDERING_KEY_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{head}#{digest}"


def message_for(event: CloudEvent) -> dict[str, Any]:
    """The PubsubMessage (REST JSON) for one event."""
    candidates = {
        "ce-specversion": event.specversion,
        "ce-id": event.id,
        "ce-source": event.source,
        "ce-type": event.type,
        "ce-subject": event.subject,
        "ce-time": event.time.isoformat().replace("+00:00", "Z"),
    }
    attributes = {"Content-Type": STRUCTURED_CONTENT_TYPE}
    # The payload carries every attribute anyway (structured mode): one that does not fit Pub/Sub's
    # attribute limit is left out rather than truncated into something misleading.
    attributes.update(
        (name, value)
        for name, value in candidates.items()
        if value is not None and len(value.encode()) <= MAX_ATTRIBUTE_VALUE_BYTES
    )
    message: dict[str, Any] = {
        "data": base64.b64encode(event.to_json().encode()).decode("ascii"),
        "attributes": attributes,
    }
    key = ordering_key(event.data.bucket, event.data.key)
    if key is not None:
        message["orderingKey"] = key
    return message


def _normalise_endpoint(endpoint: str) -> str:
    endpoint = endpoint.strip().rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        endpoint = f"http://{endpoint}"  # PUBSUB_EMULATOR_HOST is a bare host:port
    return endpoint


class PubSubSink:
    def __init__(
        self,
        topic: str,
        *,
        endpoint: str | None = None,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not _TOPIC.fullmatch(topic):
            raise ValueError("Pub/Sub topic must look like projects/PROJECT/topics/TOPIC")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._topic = topic
        self._emulated = endpoint is not None
        base = _normalise_endpoint(endpoint) if endpoint is not None else DEFAULT_ENDPOINT
        self._url = f"{base}/v1/{topic}:publish"
        self._timeout = timeout
        self._attempts = attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self._url

    def _get_session(self) -> Any:
        """One session per sink, built on first use (imports and credential lookup included)."""
        with self._lock:
            if self._session is None:
                if self._emulated:
                    import requests

                    self._session = requests.Session()
                else:
                    import google.auth
                    from google.auth.transport.requests import AuthorizedSession

                    credentials, _project = google.auth.default(scopes=[PUBSUB_SCOPE])
                    self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
            return self._session

    def publish(self, event: CloudEvent) -> None:
        self.publish_message(message_for(event), f"event {event.id}")

    def publish_message(self, message: dict[str, Any], label: str) -> None:
        """Publish one PubsubMessage (REST JSON), retrying transient failures; SinkError else.

        Also how bulk chunks reach the restore topic (``shared.bulk.queues``).
        """
        import requests
        from google.auth import exceptions as auth_exceptions

        try:
            session = self._get_session()
        except auth_exceptions.GoogleAuthError as exc:
            # The exception text can name files or metadata; the class name is enough.
            raise SinkError(f"{label} not published to Pub/Sub: no usable Google credentials "
                            f"({type(exc).__name__})") from None
        body = {"messages": [message]}
        last_problem = ""
        for attempt in range(self._attempts):
            if attempt:
                delay = min(self._backoff_max, self._backoff_base * (2 ** (attempt - 1)))
                self._sleep(delay * (0.5 + random.random()))  # noqa: S311
            try:
                response = session.post(self._url, json=body, timeout=self._timeout)
            except (
                requests.ConnectionError,
                requests.Timeout,
                auth_exceptions.TransportError,
            ) as exc:
                last_problem = type(exc).__name__
                continue
            except (requests.RequestException, auth_exceptions.GoogleAuthError) as exc:
                last_problem = type(exc).__name__
                break
            status = int(response.status_code)
            if 200 <= status < 300:
                return
            last_problem = f"HTTP {status}{_error_status(response)}"
            if status not in RETRYABLE_STATUSES and status < 500:
                break
        raise SinkError(f"{label} not published to Pub/Sub topic {self._topic}: {last_problem}")


def _error_status(response: Any) -> str:
    """The canonical status of a Google error body (e.g. NOT_FOUND), never the free text."""
    try:
        status = response.json()["error"]["status"]
    except Exception:  # any unparsable body just has no status to add
        return ""
    return f" {status}" if isinstance(status, str) and status.isidentifier() else ""
