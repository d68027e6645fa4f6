"""Envelopes: a platform's event unwrapped to what the core needs, typed and platform-neutral.

The idea is Powertools' (Lambda) envelopes: recognise the outer event, extract the payload
(a queue message body, an HTTP request, a storage notification), and report what cannot be
used as a structured problem instead of raising. Entry modules stay thin: parse the envelope
here, call the core (``shared.webhook``, ``shared.queue``, ``handle_restore_notice``), shape
the platform's answer.
"""

from shared.envelopes.base import EnvelopeProblem, RecordProblem, merge_results
from shared.envelopes.cos_events import (
    RESTORE_COMPLETED,
    RESTORE_POST,
    CosRestoreNotice,
    handle_restore_notice,
    parse_cos_record,
)
from shared.envelopes.scf import (
    ApiGatewayRequest,
    InvalidEvent,
    QueueMessage,
    RecordsEvent,
    ScfEvent,
    TimerMessage,
    integration_response,
    parse_event,
)

__all__ = [
    "RESTORE_COMPLETED",
    "RESTORE_POST",
    "ApiGatewayRequest",
    "CosRestoreNotice",
    "EnvelopeProblem",
    "InvalidEvent",
    "QueueMessage",
    "RecordProblem",
    "RecordsEvent",
    "ScfEvent",
    "TimerMessage",
    "handle_restore_notice",
    "integration_response",
    "merge_results",
    "parse_cos_record",
    "parse_event",
]
