"""Tencent SCF entry point ``index.main_handler``: recognise the trigger, call the core, shape
the answer. Envelope parsing lives in ``shared.envelopes``; decisions in the core.

- **API Gateway** (synchronous): the webhook contract of ``shared.webhook`` (the same statuses
  and bodies as Google's ``restore_http``, the status route included: the event's path and query
  are passed on), answered as an integration response
  ``{"isBase64Encoded": false, "statusCode": N, "headers": {...}, "body": "<json>"}``. A body
  marked ``isBase64Encoded`` is decoded first (invalid base64 on a POST: 400 ``base64_invalid``).
- **CMQ topic / CKafka** (``Records``): each record's message body is a restore request or a
  batch (``shared.queue.process_message``, with the record's msgId / topic:partition:offset as
  the message id). **Timer**: the ``Message`` is one (message id: trigger name and time).
- **COS** (``Records[*].cos``): ``cos:ObjectRestore:Completed`` checks the object and publishes
  ``completed`` with the expiry; ``cos:ObjectRestore:Post`` is acknowledged
  (``shared.envelopes.cos_events``).
- Anything else: one JSON log line and a ``rejected`` event; the invocation succeeds.

Asynchronous invocations (all but API Gateway) raise ``RetryRequested`` only when a retryable
failure remains after every record was processed, so SCF retries the event (twice, then the
dead-letter queue); finished records answer ``in_progress`` / ``already_restored`` on the retry
and no second restore is sent. A configuration error raises too (the event waits for a fixed
deployment); on API Gateway it is a JSON 503.

The service is built on the first invocation and reused by later ones in the instance. No
provider SDK, functions-framework or Flask is imported here. Operational logs are JSON lines on
stderr; stdout carries the restore events of the default log sink.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Any

from shared.config import ConfigurationError, Settings
from shared.envelopes import (
    ApiGatewayRequest,
    CosRestoreNotice,
    InvalidEvent,
    QueueMessage,
    RecordProblem,
    RecordsEvent,
    TimerMessage,
    handle_restore_notice,
    integration_response,
    merge_results,
    parse_event,
)
from shared.envelopes.scf import BODY_TOO_LARGE, Record, summarise
from shared.queue import QueueResult, process_message, reject_envelope
from shared.service import RestoreService
from shared.webhook import (
    HttpAnswer,
    HttpRequest,
    WebhookHandler,
    body_too_large,
    error_answer,
)

_lock = threading.Lock()
_service: RestoreService | None = None
_webhook: WebhookHandler | None = None


class RetryRequested(RuntimeError):
    """Raised so that SCF retries the asynchronous invocation."""


def get_service() -> RestoreService:
    """The instance-wide service, built on first use. Raises ConfigurationError."""
    global _service, _webhook
    if _service is None:
        with _lock:
            if _service is None:
                service = RestoreService(Settings.from_env())
                _webhook = WebhookHandler(service)
                _service = service
    return _service


def _get_webhook() -> WebhookHandler:
    get_service()
    assert _webhook is not None
    return _webhook


def reset_service() -> None:
    """Forget the cached service (tests; a new configuration)."""
    global _service, _webhook
    with _lock:
        _service = None
        _webhook = None


def _log(severity: str, message: str, **fields: Any) -> None:
    entry = {"severity": severity, "message": message, **fields}
    print(json.dumps(entry, default=str), file=sys.stderr, flush=True)


def _log_unexpected(where: str, exc: BaseException) -> None:
    # The type and where it was raised, never its message or locals: either could carry a
    # payload value or a credential.
    _log(
        "ERROR", f"unexpected error in {where}", error_type=type(exc).__name__,
        traceback="".join(traceback.format_tb(exc.__traceback__)),
    )


def _invocation_id(context: object) -> str | None:
    # SCF passes a dict; its "environment" entry holds the function's variables: never log it.
    value = context.get("request_id") if isinstance(context, Mapping) else getattr(
        context, "request_id", None
    )
    return value[:100] if isinstance(value, str) else None


# -- entry point -----------------------------------------------------------------------------
def main_handler(event: Any, context: Any = None) -> dict[str, Any]:
    parsed = parse_event(event)
    invocation = _invocation_id(context)
    if isinstance(parsed, ApiGatewayRequest):
        return _api_gateway(parsed, invocation)
    try:
        service = get_service()
    except ConfigurationError as exc:
        _log("ERROR", "the function is not configured; the event will be retried",
             error=str(exc), invocation=invocation, **summarise(parsed))
        raise
    try:
        result = _dispatch(service, parsed, invocation)
    except Exception as exc:
        _log_unexpected("main_handler", exc)
        raise
    counts: dict[str, int] = {}
    for outcome in result.outcomes:
        counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
    summary = {**summarise(parsed), "counts": counts, "retry": result.retry}
    _log("INFO", "event processed", invocation=invocation, **summary)
    if result.retry:
        raise RetryRequested("some requests need another attempt; retry the event")
    return summary


def _dispatch(service: RestoreService, parsed: object, invocation: str | None) -> QueueResult:
    if isinstance(parsed, RecordsEvent):
        return merge_results(_record(service, record) for record in parsed.records)
    if isinstance(parsed, TimerMessage):
        return process_message(service, parsed.body, message_id=parsed.message_id)
    assert isinstance(parsed, InvalidEvent)
    problem = parsed.problem
    _log("WARNING", "unrecognised or unusable event; publishing a rejection",
         invocation=invocation, reason=problem.reason, type=problem.type, **summarise(parsed))
    return reject_envelope(service, problem.reason, loc=list(problem.loc), type_=problem.type)


def _record(service: RestoreService, record: Record) -> QueueResult:
    if isinstance(record, QueueMessage):
        return process_message(service, record.body, message_id=record.message_id)
    if isinstance(record, CosRestoreNotice):
        result = handle_restore_notice(service, record)
        _log("INFO", "COS restore notification", event_name=record.event_name,
             bucket=record.bucket, region=record.region, index=record.index,
             outcome=result.outcomes[0].status.value if result.outcomes else "acknowledged",
             retry=result.retry)
        return result
    assert isinstance(record, RecordProblem)
    problem = record.problem
    _log("WARNING", "unusable record; publishing a rejection", index=record.index,
         source=record.source, reason=problem.reason, type=problem.type)
    return reject_envelope(service, problem.reason, loc=list(problem.loc), type_=problem.type)


# -- API Gateway -----------------------------------------------------------------------------
def _api_gateway(request: ApiGatewayRequest, invocation: str | None) -> dict[str, Any]:
    try:
        answer = _answer(request)
    except Exception as exc:  # never a gateway error page, never a leaked detail
        _log_unexpected("main_handler (API Gateway)", exc)
        answer = error_answer(500, "internal_error", "the request could not be processed")
    _log("INFO", "API Gateway request answered", invocation=invocation,
         api_request_id=(request.request_id or "")[:100], method=request.method[:16],
         status=answer.status)
    return integration_response(answer.status, answer.headers, answer.body_bytes().decode())


def _answer(request: ApiGatewayRequest) -> HttpAnswer:
    if request.problem is not None and request.problem.type == BODY_TOO_LARGE:
        return body_too_large()  # as restore_http answers an oversized Content-Length
    if request.problem is not None and request.method == "POST":
        return error_answer(400, request.problem.type, request.problem.reason)
    try:
        webhook = _get_webhook()
    except ConfigurationError as exc:
        _log("ERROR", "the function is not configured", error=str(exc))
        return error_answer(
            503, "not_configured", "the function is not configured; see its logs",
            retry_after=30,
        )
    return webhook.handle(
        HttpRequest(request.method, request.headers, request.body, request.path, request.query)
    )
