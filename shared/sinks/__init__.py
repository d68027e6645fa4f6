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
    if not settings.event_tdmq_region:
        raise ConfigurationError(
            "RESTORE_EVENT_SINK=tdmq needs RESTORE_EVENT_TDMQ_REGION (or TENCENTCLOUD_REGION)"
        )
    # Explicit TDMQ keys come as a set (a COS session token would not match them); otherwise
    # the COS credentials, which on SCF are the execution role's TENCENTCLOUD_* keys.
    if settings.event_tdmq_secret_id is not None or settings.event_tdmq_secret_key is not None:
        secret_id = settings.event_tdmq_secret_id
        secret_key = settings.event_tdmq_secret_key
        token = settings.event_tdmq_session_token
        missing = "TDMQ_SECRET_KEY" if secret_key is None else "TDMQ_SECRET_ID"
    else:
        secret_id = settings.cos.secret_id
        secret_key = settings.cos.secret_key
        token = settings.cos.session_token
        missing = (
            "TDMQ_SECRET_ID and TDMQ_SECRET_KEY (or TENCENTCLOUD_SECRETID and "
            "TENCENTCLOUD_SECRETKEY)"
        )
    if secret_id is None or secret_key is None:
        raise ConfigurationError(f"RESTORE_EVENT_SINK=tdmq needs {missing}")
    # Imported here: the tencentcloud SDK itself is only imported on the first publish.
    from shared.sinks.tdmq import TdmqSink

    try:
        return TdmqSink(
            settings.event_tdmq_topic,
            settings.event_tdmq_region,
            secret_id,
            secret_key,
            token,
            endpoint=settings.event_tdmq_endpoint,
            attempts=settings.event_tdmq_attempts,
            timeout=settings.provider_timeout_seconds,
        )
    except ValueError as exc:  # the message names the problem, not the value
        raise ConfigurationError(f"TDMQ event sink: {exc}") from None
