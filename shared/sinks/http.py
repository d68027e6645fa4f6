"""POST each CloudEvent (structured mode) to a URL, HMAC-signed when a secret is configured.

Retried with exponential backoff on 429, 5xx and network errors, a bounded number of times; a 4xx
is final. Uses urllib rather than requests so the cold path stays light.
"""

from __future__ import annotations

import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

from shared import auth
from shared.events import CloudEvent
from shared.records import SecretValue
from shared.sinks.base import SinkError

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


class HttpSink:
    def __init__(
        self,
        url: str,
        *,
        secret: SecretValue | None = None,
        attempts: int = 4,
        timeout: float = 10.0,
        backoff_base: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("event sink URL must be http(s)")
        self._url = url
        self._secret = secret
        self._attempts = attempts
        self._timeout = timeout
        self._backoff_base = backoff_base
        self._sleep = sleep
        self._extra_headers = dict(extra_headers or {})

    def publish(self, event: CloudEvent) -> None:
        body = event.to_json().encode()
        last_problem = ""
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._backoff_base * (2 ** (attempt - 1)) * (0.5 + random.random()))  # noqa: S311
            headers = {"Content-Type": CONTENT_TYPE, **self._extra_headers}
            if self._secret is not None:
                headers.update(auth.sign(self._secret, body))
            request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                last_problem = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last_problem = type(exc).__name__
        raise SinkError(f"event {event.id} not delivered to the HTTP sink: {last_problem}")
