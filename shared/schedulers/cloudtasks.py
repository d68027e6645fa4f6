"""Schedule re-checks as Google Cloud Tasks HTTP tasks (REST API v2, ``tasks.create``).

Each :meth:`CloudTasksScheduler.schedule` creates one task in the configured queue: ``POST`` of
the body (``Content-Type: application/json``) to the re-check function's URL at
``scheduleTime = now + delay``. With a service account configured the task carries an
``oidcToken``, so Cloud Tasks calls the function with an OIDC token of that account (audience:
the configured one, else the URL). The account needs ``roles/run.invoker`` on the function; the
function creating tasks needs ``roles/cloudtasks.enqueuer`` and ``iam.serviceAccounts.actAs`` on
that account.

Deduplication: every task gets an explicit name. With a ``dedup_key`` it is the key's SHA-256
(64 hex characters: within the allowed ``[A-Za-z0-9_-]{1,500}`` and, as Cloud Tasks recommends,
uniformly distributed), so scheduling the same key twice creates one task and the second call
gets ``409 ALREADY_EXISTS``, which counts as success. Cloud Tasks keeps a name taken for about
an hour after its task ran or was deleted (about nine days on queues made by queue.yaml), so a
key must name one scheduling step (a request id *and* the check's sequence number, say), never
just the object: a later re-check under a reused key would be dropped as a duplicate. Without a
key the name is random, but fixed for the call, so this call's own retries cannot make two
tasks.

Delays: negative means now; Cloud Tasks refuses a ``scheduleTime`` more than 720 h ahead, so a
longer delay is shortened to :attr:`CloudTasksScheduler.max_delay_seconds` (719 h, an hour of
margin for clock skew). A re-check that comes early just schedules the next one.

Signing: with a ``signing_secret`` (the first webhook HMAC secret, when configured) every task
carries ``X-Restore-Task-Signature`` over its body (``shared.task_auth``), which the re-check
endpoint verifies in HMAC mode: on top of the OIDC token the platform checks, a leaked re-check
URL is then not enough to inject a re-check. Task headers are visible to whoever may read the
queue's tasks; an HMAC reveals nothing of the secret.

Clock: ``scheduleTime`` is ``clock() + delay``; ``clock`` is ``time.time`` except against
emulators running an accelerated clock (``shared.emulated_clock``).

Transport: google-auth's ``AuthorizedSession`` (scope ``cloud-platform``), built on the first
schedule, so importing this module loads neither requests nor google-auth; with an emulator
``endpoint`` (``CLOUD_TASKS_EMULATOR_HOST``) a plain, unauthenticated ``requests.Session``.
429, 408, 5xx, a 409 other than ALREADY_EXISTS (ABORTED), connection errors and timeouts are
retried with jittered exponential backoff, ``attempts`` times in all; any other 4xx (a missing
queue, a permission problem) raises :class:`ScheduleError` at once with ``retryable=False``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from shared.records import SecretValue
from shared.schedulers.base import ScheduleError
from shared.task_auth import sign_task

DEFAULT_ENDPOINT = "https://cloudtasks.googleapis.com"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MAX_DELAY_SECONDS = 719 * 3600.0
RETRYABLE_STATUSES = frozenset({408, 409, 429})  # a 409 ALREADY_EXISTS is success, not a retry
_QUEUE = re.compile(
    r"projects/[A-Za-z0-9:.\-]+/locations/[A-Za-z0-9\-]+/queues/[A-Za-z0-9\-]{1,100}"
)


def task_id_for(dedup_key: str) -> str:
    """The task id for a dedup key: its SHA-256 in hex."""
    return hashlib.sha256(dedup_key.encode()).hexdigest()


def rfc3339(timestamp: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with microseconds (Cloud Tasks' own precision)."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _normalise_endpoint(endpoint: str) -> str:
    endpoint = endpoint.strip().rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        endpoint = f"http://{endpoint}"  # CLOUD_TASKS_EMULATOR_HOST may be a bare host:port
    return endpoint


class CloudTasksScheduler:
    """Re-checks as Cloud Tasks HTTP tasks in ``queue`` (``projects/P/locations/L/queues/Q``)."""

    max_delay_seconds = MAX_DELAY_SECONDS

    def __init__(
        self,
        queue: str,
        target_url: str,
        service_account_email: str | None = None,
        audience: str | None = None,
        endpoint: str | None = None,
        attempts: int = 4,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        *,
        backoff_base: float = 0.25,
        backoff_max: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
        signing_secret: SecretValue | None = None,
    ) -> None:
        if not _QUEUE.fullmatch(queue):
            raise ValueError("the queue must look like projects/P/locations/LOCATION/queues/QUEUE")
        if not target_url.startswith(("http://", "https://")) or len(target_url) > 2083:
            raise ValueError("the re-check URL must start with http:// or https:// (<= 2083 chars)")
        if audience and not service_account_email:
            raise ValueError("an OIDC audience needs a service account to sign the token")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._queue = queue
        self._target_url = target_url
        self._service_account = service_account_email or None
        self._audience = audience or None
        self._emulated = endpoint is not None
        base = _normalise_endpoint(endpoint) if endpoint is not None else DEFAULT_ENDPOINT
        self._url = f"{base}/v2/{queue}/tasks"
        self._attempts = attempts
        self._timeout = timeout
        self._clock = clock
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._signing_secret = signing_secret
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def queue(self) -> str:
        return self._queue

    @property
    def url(self) -> str:
        """The CreateTask endpoint this scheduler posts to."""
        return self._url

    def create_request(
        self, body: bytes, delay_seconds: float, *, dedup_key: str | None = None
    ) -> dict[str, Any]:
        """The CreateTask request body (``{"task": ...}``) for one schedule."""
        delay = float(delay_seconds)
        if not math.isfinite(delay):
            raise ValueError("delay_seconds must be a finite number")
        delay = min(max(delay, 0.0), self.max_delay_seconds)
        task_id = task_id_for(dedup_key) if dedup_key is not None else uuid.uuid4().hex
        headers = {"Content-Type": "application/json"}
        if self._signing_secret is not None:
            headers.update(sign_task(self._signing_secret, body))
        http_request: dict[str, Any] = {
            "url": self._target_url,
            "httpMethod": "POST",
            "headers": headers,
            "body": base64.b64encode(body).decode("ascii"),
        }
        if self._service_account:
            token = {"serviceAccountEmail": self._service_account}
            if self._audience:
                token["audience"] = self._audience
            http_request["oidcToken"] = token
        return {
            "task": {
                "name": f"{self._queue}/tasks/{task_id}",
                "scheduleTime": rfc3339(self._clock() + delay),
                "httpRequest": http_request,
            },
            "responseView": "BASIC",  # the answer need not echo the body
        }

    def _get_session(self) -> Any:
        """One session per scheduler, built on first use (imports and credential lookup)."""
        with self._lock:
            if self._session is None:
                if self._emulated:
                    import requests

                    self._session = requests.Session()
                else:
                    import google.auth
                    from google.auth.transport.requests import AuthorizedSession

                    credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
                    self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
            return self._session

    def schedule(self, body: bytes, delay_seconds: float, *, dedup_key: str | None = None) -> None:
        request = self.create_request(body, delay_seconds, dedup_key=dedup_key)
        task_id = request["task"]["name"].rsplit("/", 1)[1]
        what = f"re-check not scheduled on Cloud Tasks queue {self._queue} (task {task_id})"

        import requests

        transient: tuple[type[BaseException], ...] = (requests.ConnectionError, requests.Timeout)
        final: tuple[type[BaseException], ...] = (requests.RequestException,)
        if not self._emulated:
            from google.auth import exceptions as auth_exceptions

            transient += (auth_exceptions.TransportError,)
            final += (auth_exceptions.GoogleAuthError,)
            try:
                session = self._get_session()
            except auth_exceptions.GoogleAuthError as exc:
                # The exception text can name files or metadata; the class name is enough.
                raise ScheduleError(
                    f"{what}: no usable Google credentials ({type(exc).__name__})",
                    retryable=False,
                ) from None
        else:
            session = self._get_session()

        problem, status, retryable, made = "", None, True, 0
        for attempt in range(self._attempts):
            if attempt:
                delay = min(self._backoff_max, self._backoff_base * (2 ** (attempt - 1)))
                self._sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            made = attempt + 1
            try:
                response = session.post(self._url, json=request, timeout=self._timeout)
            except transient as exc:
                problem, status = type(exc).__name__, None
                continue
            except final as exc:
                # e.g. a RefreshError; google-auth says whether trying again may help.
                problem, status = type(exc).__name__, None
                retryable = bool(getattr(exc, "retryable", False))
                if retryable:
                    continue
                break
            status = int(response.status_code)
            if 200 <= status < 300:
                return
            google_status = _error_status(response)
            if status == 409 and google_status == "ALREADY_EXISTS":
                return  # this dedup key (or this call's earlier attempt) already made the task
            problem = f"HTTP {status}{f' {google_status}' if google_status else ''}"
            if status in RETRYABLE_STATUSES or status >= 500:
                continue
            retryable = False
            break
        raise ScheduleError(
            f"{what}: {problem} after {made} attempt{'s' if made != 1 else ''}",
            retryable=retryable,
            status=status,
        )


def _error_status(response: Any) -> str:
    """The canonical status of a Google error body (e.g. NOT_FOUND), never the free text."""
    try:
        status = response.json()["error"]["status"]
    except Exception:  # any unparsable body just has no status to add
        return ""
    return status if isinstance(status, str) and status.isidentifier() else ""
