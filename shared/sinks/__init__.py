"""Where completion events go. One small interface; the implementation is chosen by settings."""

from __future__ import annotations

from shared.config import ConfigurationError, Settings
from shared.sinks.base import EventSink, SinkError
from shared.sinks.log import LogSink

__all__ = ["EventSink", "LogSink", "SinkError", "sink_from_settings"]


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
    return LogSink()
