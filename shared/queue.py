"""Queue messages (Pub/Sub, CMQ/TDMQ, ...), independent of any platform.

A platform entry point unwraps its envelope to the message body and calls ``process_message``;
``QueueResult.retry`` then says whether to nack (raise / fail the invocation) so the queue
redelivers. Redelivery is safe: the ledger (``shared.ledger``) remembers which phases of each
request were published, so a redelivered request is neither restored nor announced twice; and
the providers are idempotent underneath (a GCS restore is sent with ``ifGenerationMatch=0``; COS
HEAD shows ``in_progress``).

Rules, per item of a message (one request or a ``{"requests": [...]}`` batch):

- a non-retryable outcome (including rejections) is published once: the message is done with it;
- a duplicate of a request already published is answered from the ledger: nothing is redone;
- a copy delivered while its twin is still being restored (another instance holds the request's
  claim) gets ``duplicate_in_flight``: nothing is called or published and the message is marked
  for retry, so the queue redelivers it and it is then answered from the ledger;
- a retryable outcome is not published (the redelivery will produce the real outcome) and the
  message is marked for retry;
- an event that cannot be delivered (``SinkError``) marks the message for retry.

Items are independent: one failing item never stops the others.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared.bulk.kinds import is_bulk_chunk, is_bulk_job, is_bulk_poll
from shared.ledger import StoreError
from shared.outcome import Outcome
from shared.recheck import is_recheck
from shared.schedulers.base import ScheduleError
from shared.service import RestoreService, rejected_for_validation
from shared.sinks import SinkError
from shared.validation import FieldProblem, RequestValidationError, parse_json, split_batch

logger = logging.getLogger("restorefn.queue")


@dataclass
class QueueResult:
    """What became of one message: every item's outcome, and whether to ask for redelivery."""

    outcomes: list[Outcome] = field(default_factory=list)
    retry: bool = False
    # A bulk job's plan summary or a chunk's tally (shared.bulk), for the entry point's log.
    bulk: dict[str, Any] | None = None


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


REQUEST_ID_NAMESPACE = uuid.UUID("9d2f4c61-0a7e-4b5e-8f43-6c1d2b7a9e10")
_REQUEST_ID_SPELLINGS = ("request_id", "requestId", "RequestId")


def with_delivery_request_id(item: Any, message_id: str | None, index: int) -> Any:
    """Give a request without a ``request_id`` one derived from the message that carried it.

    Every redelivery of a message then names its requests the same way, so the ledger sees them
    as duplicates and their events keep the same ids.
    """
    if message_id is None or not isinstance(item, dict):
        return item
    if any(spelling in item for spelling in _REQUEST_ID_SPELLINGS):
        return item
    derived = uuid.uuid5(REQUEST_ID_NAMESPACE, f"{message_id}/{index}").hex
    return {**item, "request_id": f"msg-{derived}"}


def process_message(
    service: RestoreService, data: bytes | str, *, message_id: str | None = None
) -> QueueResult:
    """Decode one message body (UTF-8 JSON), restore every request in it, publish the events.

    ``message_id`` is the queue's own id for the message (Pub/Sub messageId, CMQ msgId, ...),
    stable across redeliveries: requests that carry no ``request_id`` get one derived from it.
    """
    result = QueueResult()
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        # parse_json, not json.loads: deep nesting (RecursionError) and NaN/Infinity are refused
        # as invalid JSON, so such a message is rejected once instead of redelivered forever.
        payload: Any = parse_json(text)
    except ValueError as exc:  # UnicodeDecodeError and InvalidJson are ValueErrors too
        not_utf8 = isinstance(exc, UnicodeDecodeError)
        message = "message data is not " + ("UTF-8 text" if not_utf8 else "valid JSON")
        rejection = envelope_rejection(
            message, loc=[], type_="utf8_invalid" if not_utf8 else "json_invalid"
        )
        _publish(service, rejection, result)
        return result
    if is_bulk_job(payload) or is_bulk_chunk(payload) or is_bulk_poll(payload):
        return _process_bulk(service, payload, result)
    if is_recheck(payload):  # a delayed re-check this package scheduled (shared.recheck)
        checked = service.recheck(payload)
        result.outcomes.extend(checked.outcomes)
        result.retry = checked.retry
        return result
    try:
        items = split_batch(payload)
    except RequestValidationError as exc:
        _publish(service, rejected_for_validation(payload, exc), result)
        return result
    for index, item in enumerate([payload] if items is None else items):
        _process_item(service, with_delivery_request_id(item, message_id, index), result)
    return result


def _process_bulk(service: RestoreService, payload: Any, result: QueueResult) -> QueueResult:
    """A bulk job (plan and fan out) or one of its chunks (shared.bulk)."""
    from shared.bulk.service import BulkRefused, bulk_for
    from shared.bulk.worker import ChunkRedelivery

    bulk = bulk_for(service)
    try:
        if is_bulk_job(payload):
            result.bulk = bulk.submit(payload).model_dump(mode="json")
        elif is_bulk_poll(payload):  # a delayed look at a GCS bulkRestore operation
            result.bulk = bulk.handle_poll(payload).model_dump(mode="json")
        else:
            chunk = bulk.work(payload)
            result.bulk = {"chunk_id": chunk.chunk_id, "rows": len(chunk.rows),
                           "leftovers": len(chunk.leftovers)}
    except RequestValidationError as exc:
        _publish(service, rejected_for_validation(payload, exc), result)
    except BulkRefused as exc:
        _publish(service, envelope_rejection(str(exc), loc=["bucket"], type_="bulk_refused"),
                 result)
    except (ChunkRedelivery, StoreError, SinkError, ScheduleError) as exc:
        logger.error("bulk message not finished (%s); it will be redelivered",
                     type(exc).__name__)
        result.retry = True
    except Exception as exc:  # a provider's answer (no such bucket, access denied, throttled)
        from shared.bulk.errors import bulk_error

        error = bulk_error(exc)
        if error is None or error.retryable:
            logger.error("bulk message failed (%s); it will be redelivered", type(exc).__name__)
            result.retry = True
        else:  # a permanent refusal: one rejection, never an endless redelivery
            _publish(service, envelope_rejection(error.message, loc=["bucket"],
                                                 type_=error.code.value), result)
    return result


def _process_item(service: RestoreService, item: Any, result: QueueResult) -> None:
    try:
        handled = service.handle(item, publish_retryable=False)
    except Exception as exc:  # a bug, not a provider answer: redeliver, keep going
        logger.error("restore raised %s; the message will be redelivered", type(exc).__name__)
        result.retry = True
        return
    outcome = handled.outcome
    result.outcomes.append(outcome)
    if not handled.delivered:
        logger.error(
            "event for request %s not delivered; the message will be redelivered",
            outcome.request_id,
        )
        result.retry = True
    elif outcome.retryable:
        result.retry = True  # unpublished: the redelivery will produce the real outcome
    elif not (handled.published or handled.replayed):
        # A validation rejection: through the ledger like any phase, so a message redelivered
        # for another item's sake does not publish it again (its id is stable: the caller's,
        # or derived from the message id).
        once = service.publish_once(outcome)
        if not once.delivered or once.outcome.retryable:
            logger.error("rejection for request %s not delivered; the message will be "
                         "redelivered", outcome.request_id)
            result.retry = True


def _publish(
    service: RestoreService, outcome: Outcome, result: QueueResult, *, counted: bool = False
) -> None:
    if not counted:
        result.outcomes.append(outcome)
    try:
        service.publish(outcome)
    except SinkError:
        logger.error(
            "event for request %s not delivered; the message will be redelivered",
            outcome.request_id,
        )
        result.retry = True
