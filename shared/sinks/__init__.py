"""Where completion events go. One small interface; the implementation is chosen by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.config import ConfigurationError, Settings
from shared.sinks.base import EventSink, SinkError
from shared.sinks.log import LogSink

if TYPE_CHECKING:
    from shared.sinks.tdmq import TdmqSink

__all__ = ["EventSink", "LogSink", "SinkError", "sink_from_settings", "tdmq_publisher"]


def sink_from_settings(settings: Settings) -> EventSink:
    if settings.event_sink == "http":
        if not settings.event_http_url:
            raise ConfigurationError("RESTORE_EVENT_SINK=http needs RESTORE_EVENT_HTTP_URL")
        # Imported here so the default log sink does not pay for the HTTP machinery.
        from shared.sinks.http import HttpSink

        return HttpSink(
            settings.event_http_url,
            secret=settings.event_http_secret,
            attempts=settings.event_http_attempts,
            timeout=settings.provider_timeout_seconds,
        )
    if settings.event_sink == "pubsub":
        if not settings.event_pubsub_topic:
            raise ConfigurationError(
                "RESTORE_EVENT_SINK=pubsub needs RESTORE_EVENT_PUBSUB_TOPIC (projects/P/topics/T)"
            )
        from shared.sinks.pubsub import PubSubSink

        try:
            return PubSubSink(
                settings.event_pubsub_topic,
                endpoint=settings.event_pubsub_endpoint,
                attempts=settings.event_pubsub_attempts,
                timeout=settings.provider_timeout_seconds,
            )
        except ValueError as exc:  # the message names the expected form, not the value
            raise ConfigurationError(f"RESTORE_EVENT_PUBSUB_TOPIC: {exc}") from None
    if settings.event_sink == "tdmq":
        return _tdmq_sink(settings)
    if settings.event_sink == "file":
        if not settings.event_file:
            raise ConfigurationError("RESTORE_EVENT_SINK=file needs RESTORE_EVENT_FILE (a path)")
        from shared.sinks.file import FileSink

        return FileSink(settings.event_file)
    return LogSink()


def _tdmq_sink(settings: Settings) -> EventSink:
    if not settings.event_tdmq_topic:
        raise ConfigurationError("RESTORE_EVENT_SINK=tdmq needs RESTORE_EVENT_TDMQ_TOPIC")
    return tdmq_publisher(settings, settings.event_tdmq_topic, "RESTORE_EVENT_SINK=tdmq")


def tdmq_publisher(settings: Settings, topic: str, purpose: str) -> TdmqSink:
    """A TdmqSink for ``topic`` with the deployment's TDMQ region, endpoint and credentials
    (also what bulk chunks are published with: ``shared.bulk.queues``)."""
    from shared.tdmq_client import credentials_from_settings

    if not settings.event_tdmq_region:
        raise ConfigurationError(
            f"{purpose} needs RESTORE_EVENT_TDMQ_REGION (or TENCENTCLOUD_REGION)"
        )
    credentials = credentials_from_settings(settings, purpose)
    # Imported here: the tencentcloud SDK itself is only imported on the first publish.
    from shared.sinks.tdmq import TdmqSink

    try:
        return TdmqSink(
            topic,
            settings.event_tdmq_region,
            credentials.secret_id,
            credentials.secret_key,
            credentials.token,
            endpoint=settings.event_tdmq_endpoint,
            attempts=settings.event_tdmq_attempts,
            timeout=settings.provider_timeout_seconds,
        )
    except ValueError as exc:  # the message names the problem, not the value
        raise ConfigurationError(f"{purpose}: {exc}") from None
