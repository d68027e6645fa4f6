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
Tencent error code only: never the credentials, never the free text of an answer. Client,
credentials and retry rules are shared with the TDMQ re-check scheduler (``shared.tdmq_client``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shared.events import CloudEvent
from shared.records import SecretValue
from shared.sinks.base import SinkError
from shared.tdmq_client import (
    RETRYABLE_CODES,
    RETRYABLE_PREFIXES,
    LazyTdmqClient,
    TdmqCredentials,
    call_with_retries,
    error_code,
    is_retryable,
    parse_endpoint,
)

__all__ = [
    "MAX_MESSAGE_BYTES", "RETRYABLE_CODES", "RETRYABLE_PREFIXES", "TdmqSink", "is_retryable",
    "message_tags", "parse_endpoint",
]

# PublishCmqMsg: "the total message size is up to 1,024 KB".
MAX_MESSAGE_BYTES = 1024 * 1024
# Legacy CMQ: at most 5 tags of at most 16 characters (TDMQ's API allows 64 characters).
MAX_TAGS = 5
MAX_TAG_LENGTH = 16


def message_tags(event: CloudEvent) -> list[str]:
    """``[<short status>, <provider>]``, leaving out what is unknown or too long for CMQ."""
    candidates = [event.type.rsplit(".", 1)[-1], event.data.provider]
    tags = [t for t in candidates if t and len(t) <= MAX_TAG_LENGTH]
    return tags[:MAX_TAGS]


class TdmqSink:
    def __init__(
        self,
        topic: str,
        region: str,
        secret_id: SecretValue | str,
        secret_key: SecretValue | str,
        token: SecretValue | str | None = None,
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
        self._client = LazyTdmqClient(
            region, TdmqCredentials.of(secret_id, secret_key, token), endpoint=endpoint,
            timeout=timeout,
        )
        self._attempts = attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def endpoint(self) -> tuple[str, str] | None:
        """``(protocol, host)`` of an endpoint override; None for the public TDMQ endpoint."""
        return self._client.endpoint

    def __repr__(self) -> str:
        return f"TdmqSink(topic={self._topic!r}, region={self._region!r})"

    def _get_client(self) -> Any:
        """One TdmqClient per sink, built on first use (SDK imports included)."""
        return self._client.get()

    def publish(self, event: CloudEvent) -> None:
        self.publish_message(event.to_json(), message_tags(event), f"event {event.id}")

    def publish_message(self, body: str, tags: list[str], label: str) -> None:
        """PublishCmqMsg one message, retrying transient failures; SinkError otherwise.

        Also how bulk chunks reach the restore request topic (``shared.bulk.queues``).
        """
        size = len(body.encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            raise SinkError(
                f"{label} not published to TDMQ topic {self._topic}: "
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
                f"{label} not published to TDMQ topic {self._topic}: "
                f"unusable credentials ({error_code(exc)})"
            ) from None
        request = models.PublishCmqMsgRequest()
        request.TopicName = self._topic
        request.MsgContent = body
        request.MsgTag = tags
        failure = call_with_retries(
            lambda: client.PublishCmqMsg(request), attempts=self._attempts,
            backoff_base=self._backoff_base, backoff_max=self._backoff_max, sleep=self._sleep,
        )
        if failure is not None:
            raise SinkError(
                f"{label} not published to TDMQ topic {self._topic}: {failure.problem}"
            )
