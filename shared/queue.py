"""Queue messages (Pub/Sub, CMQ/TDMQ, ...), independent of any platform.

A platform entry point unwraps its envelope to the message body and calls ``process_message``;
``QueueResult.retry`` then says whether to nack (raise / fail the invocation) so the queue
redelivers. Redelivery is safe: providers are idempotent here (a GCS restore is sent with
``ifGenerationMatch=0`` and answers ``already_restored`` the second time; COS HEAD shows
``in_progress``), and event ids derive from the request id, so consumers drop duplicates.

Rules, per item of a message (one request or a ``{"requests": [...]}`` batch):

- a non-retryable outcome (including rejections) is published: the message is done with it;
- a retryable outcome is not published (the redelivery will produce the real outcome) and the
  message is marked for retry;
- an event that cannot be delivered (``SinkError``) marks the message for retry.

Items are independent: one failing item never stops the others.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from shared.outcome import Outcome
from shared.service import RestoreService, rejected_for_validation
from shared.sinks import SinkError
from shared.validation import FieldProblem, RequestValidationError, split_batch

logger = logging.getLogger("restorefn.queue")


@dataclass
class QueueResult:
    """What became of one message: every item's outcome, and whether to ask for redelivery."""

    outcomes: list[Outcome] = field(default_factory=list)
    retry: bool = False


def envelope_rejection(message: str, *, loc: list[str | int], type_: str) -> Outcome:
    """A rejected outcome for a message the core could not even read (bad encoding, wrong
    envelope); shaped like every other validation rejection, never echoing the input."""
    problem = FieldProblem(
        loc=list(loc), field=".".join(map(str, loc)) or "(body)", reason=message, type=type_
    )
    return rejected_for_validation(None, RequestValidationError([problem], message=message))


def reject_envelope(
    service: RestoreService, message: str, *, loc: list[str | int], type_: str
) -> QueueResult:
    """Publish the rejection of an unreadable message (retry only if the event is lost)."""
    result = QueueResult()
    _publish(service, envelope_rejection(message, loc=loc, type_=type_), result)
    return result


def process_message(service: RestoreService, data: bytes | str) -> QueueResult:
    """Decode one message body (UTF-8 JSON), restore every request in it, publish the events."""
    result = QueueResult()
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        payload: Any = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        not_utf8 = isinstance(exc, UnicodeDecodeError)
        message = "message data is not " + ("UTF-8 text" if not_utf8 else "valid JSON")
        rejection = envelope_rejection(
            message, loc=[], type_="utf8_invalid" if not_utf8 else "json_invalid"
        )
        _publish(service, rejection, result)
        return result
    try:
        items = split_batch(payload)
    except RequestValidationError as exc:
        _publish(service, rejected_for_validation(payload, exc), result)
        return result
    for item in [payload] if items is None else items:
        _process_item(service, item, result)
    return result


def _process_item(service: RestoreService, item: Any, result: QueueResult) -> None:
    try:
        outcome = service.decide(item)
    except Exception as exc:  # a bug, not a provider answer: redeliver, keep going
        logger.error("restore raised %s; the message will be redelivered", type(exc).__name__)
        result.retry = True
        return
    if outcome.retryable:
        result.outcomes.append(outcome)
        result.retry = True
        return
    _publish(service, outcome, result)


def _publish(service: RestoreService, outcome: Outcome, result: QueueResult) -> None:
    result.outcomes.append(outcome)
    try:
        service.publish(outcome)
    except SinkError:
        logger.error(
            "event for request %s not delivered; the message will be redelivered",
            outcome.request_id,
        )
        result.retry = True
