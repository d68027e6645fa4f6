"""Per-request callbacks: each phase's CloudEvent is also POSTed to the request's ``callback_url``.

This is how a workflow waits for *its* restore: a Google Cloud Workflows callback endpoint, a
CI job's webhook, a chat-ops bot. Delivery is the HTTP sink's (structured CloudEvent, HMAC-signed
with ``RESTORE_CALLBACK_SECRET`` when set, retried with backoff a bounded number of times).
Callbacks to Google's ``workflowexecutions.googleapis.com`` carry an OAuth access token from the
function's own credentials, which is what Workflows requires of a callback.

A callback is a convenience channel: the event itself has already gone to the configured sink
when the callback is tried, so a callback that still fails after its retries is logged, not
retried forever.

Refused at admission (a 422 on the ``callback_url`` field), because a function that POSTs
wherever it is told is a server-side request forgery tool: plain ``http`` except to loopback
(unless ``RESTORE_CALLBACK_ALLOW_HTTP``), link-local and metadata-server addresses always, and
hosts outside ``RESTORE_CALLBACK_ALLOWED_HOSTS`` when that list is set.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from shared.config import Settings
from shared.events import CloudEvent
from shared.records import SecretValue
from shared.sinks.base import SinkError

logger = logging.getLogger("restorefn.callbacks")

WORKFLOWS_HOST = "workflowexecutions.googleapis.com"
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.tencentyun.com"})
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _loopback(host: str) -> bool:
    address = _ip(host)
    return host == "localhost" or (address is not None and address.is_loopback)


class Callbacks:
    def __init__(
        self,
        *,
        secret: SecretValue | None = None,
        allow_http: bool = False,
        allowed_hosts: tuple[str, ...] = (),
        attempts: int = 4,
        timeout: float = 10.0,
        google_token: Callable[[], str] | None = None,
    ) -> None:
        self._secret = secret
        self._allow_http = allow_http
        self._allowed_hosts = allowed_hosts
        self._attempts = attempts
        self._timeout = timeout
        self._google_token = google_token or _google_access_token

    @classmethod
    def from_settings(cls, settings: Settings) -> Callbacks:
        return cls(
            secret=settings.callback_secret, allow_http=settings.callback_allow_http,
            allowed_hosts=settings.callback_allowed_hosts, attempts=settings.callback_attempts,
            timeout=settings.provider_timeout_seconds,
        )

    def refusal(self, url: str) -> str | None:
        """Why this callback URL is not acceptable, or None."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            return "callback_url must be an http(s) URL with a host"
        if parts.username or parts.password:
            return "callback_url must not carry credentials"
        address = _ip(host)
        if host in _METADATA_HOSTS or (address is not None and address.is_link_local):
            return "callback_url must not point at a metadata or link-local address"
        if parts.scheme == "http" and not (self._allow_http or _loopback(host)):
            return "callback_url must use https (plain http is allowed only to loopback)"
        if self._allowed_hosts and not any(
            fnmatch.fnmatchcase(host, pattern) for pattern in self._allowed_hosts
        ):
            return "callback_url host is not in RESTORE_CALLBACK_ALLOWED_HOSTS"
        return None

    def deliver(self, event: CloudEvent, url: str) -> bool:
        """POST the event; True when the receiver accepted it. Never raises."""
        from shared.sinks.http import HttpSink

        headers: dict[str, str] = {}
        if (urlsplit(url).hostname or "").lower() == WORKFLOWS_HOST:
            try:
                headers["Authorization"] = f"Bearer {self._google_token()}"
            except Exception as exc:  # no credentials here: say so, without details
                logger.error("callback for %s not sent: no Google credentials (%s)", event.id,
                             type(exc).__name__)
                return False
        sink = HttpSink(url, secret=self._secret, attempts=self._attempts,
                        timeout=self._timeout, extra_headers=headers)
        try:
            sink.publish(event)
        except SinkError as exc:
            logger.error("callback for event %s failed: %s", event.id, exc)
            return False
        return True


def _google_access_token() -> str:
    import google.auth
    from google.auth.transport.requests import Request

    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    credentials.refresh(Request())  # type: ignore[no-untyped-call]
    return str(credentials.token)
