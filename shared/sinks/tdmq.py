"""Publish each CloudEvent to a Tencent TDMQ (CMQ edition) topic with ``PublishCmqMsg``.

The message body is the whole CloudEvent in structured mode (the JSON event format, exactly what
the HTTP and Pub/Sub sinks send), so an SCF function subscribed to the topic finds it as the
``msgBody`` of its CMQ trigger event. The message tags are the short outcome status
(``completed``, ``failed``...) and the provider (``cos`` / ``gcs``), so subscriptions can filter
without decoding the body. Tags stay within the strictest documented CMQ limits (at most 5 tags
of at most 16 characters); a tag that would not fit is left out, never truncated.

The tencentcloud SDK is imported on first publish, never when this module is imported, and the
client is built once per sink and reused. The SDK's own retryer stays off: retryable failures
(network errors, non-200 answers, ``InternalError``, ``RequestLimitExceeded``, CMQ back-end
errors) are retried here with jittered exponential backoff, a bounded number of times; anything
else (authentication, unknown topic, invalid parameters) fails at once. Error messages carry the
Tencent error code only: never the credentials, never the free text of an answer.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from shared.events import CloudEvent
from shared.sinks.base import SinkError

# PublishCmqMsg: "the total message size is up to 1,024 KB".
MAX_MESSAGE_BYTES = 1024 * 1024
# Legacy CMQ: at most 5 tags of at most 16 characters (TDMQ's API allows 64 characters).
MAX_TAGS = 5
MAX_TAG_LENGTH = 16
# Codes worth another attempt. ClientNetworkError: the request did not get an answer;
# ServerNetworkError: an answer other than HTTP 200 (a gateway or server failure).
RETRYABLE_CODES = frozenset(
    {
        "ClientNetworkError",
        "ServerNetworkError",
        "InternalError",
        "RequestLimitExceeded",
        "FailedOperation.CmqBackendError",
        "ResourceUnavailable",
    }
)
RETRYABLE_PREFIXES = ("InternalError.", "RequestLimitExceeded.")


def is_retryable(code: str | None) -> bool:
    if not code:
        return False
    return code in RETRYABLE_CODES or code.startswith(RETRYABLE_PREFIXES)


def message_tags(event: CloudEvent) -> list[str]:
    """``[<short status>, <provider>]``, leaving out what is unknown or too long for CMQ."""
    candidates = [event.type.rsplit(".", 1)[-1], event.data.provider]
    tags = [t for t in candidates if t and len(t) <= MAX_TAG_LENGTH]
    return tags[:MAX_TAGS]


def parse_endpoint(endpoint: str) -> tuple[str, str]:
    """``(protocol, host[:port])``: a bare ``host:port`` means plain HTTP (a local emulator)."""
    endpoint = endpoint.strip().rstrip("/")
    for scheme in ("http", "https"):
        prefix = f"{scheme}://"
        if endpoint.startswith(prefix):
            return scheme, endpoint[len(prefix):]
    return "http", endpoint


def _secret(value: SecretStr | str) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(value)


class TdmqSink:
    def __init__(
        self,
        topic: str,
        region: str,
        secret_id: SecretStr | str,
        secret_key: SecretStr | str,
        token: SecretStr | str | None = None,
        *,
        endpoint: str | None = None,
        attempts: int = 4,
        timeout: float = 10.0,
        backoff_base: float = 0.25,
        backoff_max: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not topic:
            raise ValueError("a TDMQ topic name is required")
        if not region:
            raise ValueError("a TDMQ region is required")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._topic = topic
        self._region = region
        self._secret_id = _secret(secret_id)
        self._secret_key = _secret(secret_key)
        self._token = _secret(token) if token is not None else None
        self._endpoint = parse_endpoint(endpoint) if endpoint else None
        self._attempts = attempts
        self._timeout = timeout
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def endpoint(self) -> tuple[str, str] | None:
        """``(protocol, host)`` of an endpoint override; None for the public TDMQ endpoint."""
        return self._endpoint

    def __repr__(self) -> str:
        return f"TdmqSink(topic={self._topic!r}, region={self._region!r})"

    def _get_client(self) -> Any:
        """One TdmqClient per sink, built on first use (SDK imports included)."""
        with self._lock:
            if self._client is None:
                from tencentcloud.common import credential
                from tencentcloud.common.profile.client_profile import ClientProfile
                from tencentcloud.common.profile.http_profile import HttpProfile
                from tencentcloud.tdmq.v20200217.tdmq_client import TdmqClient

                cred = credential.Credential(
                    self._secret_id.get_secret_value(),
                    self._secret_key.get_secret_value(),
                    self._token.get_secret_value() if self._token is not None else None,
                )
                http = HttpProfile(reqTimeout=self._timeout)
                if self._endpoint is not None:
                    http = HttpProfile(
                        protocol=self._endpoint[0],
                        endpoint=self._endpoint[1],
                        reqTimeout=self._timeout,
                    )
                self._client = TdmqClient(cred, self._region, ClientProfile(httpProfile=http))
            return self._client

    def publish(self, event: CloudEvent) -> None:
        body = event.to_json()
        size = len(body.encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            raise SinkError(
                f"event {event.id} not published to TDMQ topic {self._topic}: "
                f"{size} bytes exceed the {MAX_MESSAGE_BYTES}-byte CMQ message limit"
            )
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException,
        )
        from tencentcloud.tdmq.v20200217 import models

        try:
            client = self._get_client()
        except TencentCloudSDKException as exc:  # e.g. InvalidCredential: empty or spaced keys
            raise SinkError(
                f"event {event.id} not published to TDMQ topic {self._topic}: "
                f"unusable credentials ({_code(exc)})"
            ) from None
        request = models.PublishCmqMsgRequest()
        request.TopicName = self._topic
        request.MsgContent = body
        request.MsgTag = message_tags(event)
        last_problem = ""
        for attempt in range(self._attempts):
            if attempt:
                delay = min(self._backoff_max, self._backoff_base * (2 ** (attempt - 1)))
                self._sleep(delay * (0.5 + random.random()))  # noqa: S311
            try:
                client.PublishCmqMsg(request)
            except TencentCloudSDKException as exc:
                code = _code(exc)
                request_id = getattr(exc, "requestId", None)
                last_problem = code + (f" (RequestId {request_id})" if _safe(request_id) else "")
                if not is_retryable(code):
                    break
                continue
            return
        raise SinkError(
            f"event {event.id} not published to TDMQ topic {self._topic}: {last_problem}"
        )


def _safe(value: object) -> bool:
    """Whether an identifier from an answer is plain enough to quote in an error message."""
    return isinstance(value, str) and 0 < len(value) <= 64 and all(
        c.isalnum() or c in "-_.:" for c in value
    )


def _code(exc: Any) -> str:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and _safe(code) else type(exc).__name__
