"""Google Cloud Functions (gen2) entry points: parse the envelope, call the core, shape the answer.

- ``restore_http``: the webhook (``shared.webhook`` decides every status code and body).
- ``restore_pubsub``: a Pub/Sub-triggered CloudEvent function (``shared.queue`` decides what is
  published and whether the message must be redelivered; deploy it with ``--retry``).
- ``restore_recheck``: the HTTP target of the delayed re-check tasks Cloud Tasks delivers
  (``shared.recheck_http`` decides every status code: 2xx done or re-scheduled, 503 deliver it
  again, malformed tasks acknowledged with a logged rejection).

The service (settings, sink, provider clients) is built on the first invocation and reused by
every later one in the same instance. Neither provider SDK is imported here: each is loaded by
the first request for its provider. Operational logs are JSON lines on stderr (Cloud Logging reads
``severity``); stdout carries the restore events of the default log sink.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import threading
import traceback
from typing import Any

import flask
import functions_framework
from cloudevents.http import CloudEvent
from werkzeug.exceptions import HTTPException

from shared.config import ConfigurationError, Settings
from shared.queue import QueueResult, process_message, reject_envelope
from shared.recheck_http import RecheckHandler
from shared.service import RestoreService
from shared.webhook import (
    MAX_BODY_BYTES,
    HttpAnswer,
    HttpRequest,
    WebhookHandler,
    body_too_large,
    error_answer,
)

PUBSUB_MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"

_lock = threading.Lock()
_service: RestoreService | None = None
_webhook: WebhookHandler | None = None
_recheck: RecheckHandler | None = None


class RedeliveryRequested(RuntimeError):
    """Raised so that Pub/Sub (deployed with --retry) redelivers the message."""


def get_service() -> RestoreService:
    """The process-wide service, built on first use. Raises ConfigurationError."""
    global _service, _webhook, _recheck
    if _service is None:
        with _lock:
            if _service is None:
                service = RestoreService(Settings.from_env())
                _webhook = WebhookHandler(service)
                _recheck = RecheckHandler(service)
                _service = service
    return _service


def _get_webhook() -> WebhookHandler:
    get_service()
    assert _webhook is not None
    return _webhook


def reset_service() -> None:
    """Forget the cached service (tests; a new configuration)."""
    global _service, _webhook, _recheck
    with _lock:
        _service = None
        _webhook = None
        _recheck = None


def _log(severity: str, message: str, **fields: Any) -> None:
    entry = {"severity": severity, "message": message, **fields}
    print(json.dumps(entry, default=str), file=sys.stderr, flush=True)


def _log_unexpected(where: str, exc: BaseException) -> None:
    # The exception's type and where it was raised, never its message or locals: either could
    # carry a payload value or a credential.
    _log(
        "ERROR", f"unexpected error in {where}", error_type=type(exc).__name__,
        traceback="".join(traceback.format_tb(exc.__traceback__)),
    )


# -- HTTP webhook ----------------------------------------------------------------------------
def _respond(answer: HttpAnswer) -> tuple[bytes, int, dict[str, str]]:
    return answer.body_bytes(), answer.status, answer.headers


def _handle_http(request: flask.Request) -> HttpAnswer:
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return body_too_large()
    try:
        webhook = _get_webhook()
    except ConfigurationError as exc:
        _log("ERROR", "the function is not configured", error=str(exc))
        return error_answer(
            503, "not_configured", "the function is not configured; see its logs",
            retry_after=30,
        )
    # Without a Content-Length (chunked), read at most one byte past the limit.
    body = request.get_data() if length is not None else request.stream.read(MAX_BODY_BYTES + 1)
    headers = dict(request.headers.items())
    query = request.args.to_dict()  # the first value of each parameter
    return webhook.handle(
        HttpRequest(request.method, headers, body, path=request.path, query=query)
    )


@functions_framework.http
def restore_http(request: flask.Request) -> tuple[bytes, int, dict[str, str]]:
    try:
        answer = _handle_http(request)
    except Exception as exc:  # never an HTML error page, never a leaked detail
        _log_unexpected("restore_http", exc)
        answer = error_answer(500, "internal_error", "the request could not be processed")
    # One line per request, as main_handler logs its API Gateway answers: method, route and
    # status only (never headers, query values or the body).
    _log("INFO", "webhook request answered", method=request.method, path=request.path[:200],
         status=answer.status)
    return _respond(answer)


# -- Pub/Sub ---------------------------------------------------------------------------------
def _message_data(data: Any) -> bytes | tuple[str, list[str | int], str]:
    """The decoded ``message.data``, or (reason, loc, type) when it cannot be had."""
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        return "the event carries no Pub/Sub message", ["message"], "missing"
    encoded = message.get("data")
    if not isinstance(encoded, str):
        return "the Pub/Sub message has no data", ["message", "data"], "missing"
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "message data is not valid base64", ["message", "data"], "base64_invalid"


def _handle_event(service: RestoreService, cloud_event: CloudEvent) -> QueueResult:
    event_type = str(cloud_event["type"])
    if event_type != PUBSUB_MESSAGE_PUBLISHED:
        _log("WARNING", "ignoring an event that is not a Pub/Sub message",
             event_type=event_type[:200], event_id=str(cloud_event["id"])[:200])
        return reject_envelope(
            service, f"event type must be {PUBSUB_MESSAGE_PUBLISHED}", loc=["type"],
            type_="unsupported_event_type",
        )
    decoded = _message_data(cloud_event.data)
    if isinstance(decoded, tuple):
        reason, loc, type_ = decoded
        _log("WARNING", reason, event_id=str(cloud_event["id"])[:200])
        return reject_envelope(service, reason, loc=loc, type_=type_)
    message = cloud_event.data["message"]
    message_id = message.get("messageId") or message.get("message_id")
    return process_message(
        service, decoded, message_id=str(message_id) if message_id else str(cloud_event["id"])
    )


@functions_framework.cloud_event
def restore_pubsub(cloud_event: CloudEvent) -> None:
    if flask.has_request_context():
        flask.g.restorefn_entered = True  # see _unhandled: our failure, not the framework's
    try:
        service = get_service()
    except ConfigurationError as exc:
        # An operator error: fail the invocation so the message waits for a fixed deployment.
        _log("ERROR", "the function is not configured; the message will be redelivered",
             error=str(exc))
        raise
    result = _handle_event(service, cloud_event)
    counts: dict[str, int] = {}
    for outcome in result.outcomes:
        counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
    _log("INFO", "message processed", event_id=str(cloud_event["id"])[:200], counts=counts,
         retry=result.retry)
    if result.retry:
        raise RedeliveryRequested("some requests need another attempt; redeliver the message")


# -- what the framework refuses before an entry point runs ---------------------------------------
_NOT_AN_EVENT = "the body is neither a CloudEvent nor a Pub/Sub push message"
_REFUSALS = {
    400: ("invalid_event", _NOT_AN_EVENT),
    404: ("not_found", "no function is served at this path"),
    405: ("method_not_allowed", "method not allowed"),
    413: ("body_too_large", "the body is too large"),
    415: ("unsupported_media_type",
          "Content-Type must be application/json or application/cloudevents+json"),
}


@functions_framework.errorhandler(HTTPException)
def _framework_refusal(exc: HTTPException) -> tuple[bytes, int, dict[str, str]]:
    """A request functions-framework or Flask refused before any entry point ran: a body that
    is neither a CloudEvent nor a Pub/Sub push message, a method or path the route does not
    serve. Answered in our JSON error shape with the status they chose, instead of their HTML
    page, whose description quotes the request's headers and body."""
    status = exc.code or 400
    code, message = _REFUSALS.get(status, ("bad_request", "the request was refused"))
    _log("WARNING", "request refused before the function ran", status=status,
         refusal=type(exc).__name__)
    answer = error_answer(status, code, message)
    answer.headers.update((name, value) for name, value in exc.get_headers() if name == "Allow")
    return _respond(answer)


@functions_framework.errorhandler(Exception)
def _unhandled(exc: Exception) -> tuple[bytes, int, dict[str, str]]:
    """An exception that reached the framework. From inside ``restore_pubsub`` it asks Pub/Sub
    for a redelivery (a retryable failure, a missing configuration, a bug): a JSON 500, the
    status stays what a redelivery needs. Raised before it (functions-framework failing to
    convert a body that is no Pub/Sub message into a CloudEvent): nothing any redelivery could
    fix, a JSON 400 like the framework's own refusals."""
    if flask.g.get("restorefn_entered"):
        if isinstance(exc, ConfigurationError):
            return _respond(error_answer(500, "not_configured",
                                         "the function is not configured; see its logs"))
        if not isinstance(exc, RedeliveryRequested):
            _log_unexpected("restore_pubsub", exc)
        return _respond(error_answer(500, "redelivery_requested",
                                     "the message was not finished; deliver it again"))
    _log("WARNING", "request refused before the function ran", status=400,
         refusal=type(exc).__name__)
    return _respond(error_answer(400, "invalid_event", _NOT_AN_EVENT))


# -- delayed re-checks (Cloud Tasks HTTP target) -------------------------------------------------
def _get_recheck() -> RecheckHandler:
    get_service()
    assert _recheck is not None
    return _recheck


def _handle_recheck(request: flask.Request) -> HttpAnswer:
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return body_too_large()
    try:
        handler = _get_recheck()
    except ConfigurationError as exc:
        _log("ERROR", "the function is not configured; the task will be retried", error=str(exc))
        return error_answer(
            503, "not_configured", "the function is not configured; see its logs",
            retry_after=30,
        )
    body = request.get_data() if length is not None else request.stream.read(MAX_BODY_BYTES + 1)
    return handler.handle(HttpRequest(request.method, dict(request.headers.items()), body,
                                      path=request.path))


@functions_framework.http
def restore_recheck(request: flask.Request) -> tuple[bytes, int, dict[str, str]]:
    try:
        answer = _handle_recheck(request)
    except Exception as exc:  # a bug: Cloud Tasks retries the 500; no detail leaks
        _log_unexpected("restore_recheck", exc)
        answer = error_answer(500, "internal_error", "the re-check could not be processed")
    body = answer.body
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    rejected = body.get("result") == "rejected"
    severity = "ERROR" if rejected or answer.status >= 500 else (
        "WARNING" if answer.status >= 400 else "INFO")
    headers = request.headers
    _log(
        severity,
        "malformed re-check task acknowledged (not retried)" if rejected else "re-check handled",
        status=answer.status, result=body.get("result"), error_code=error.get("code"),
        # Field names only, never values (shared.validation).
        fields=[f.get("field") for f in error.get("fields", [])] or None,
        request_id=body.get("request_id", error.get("request_id")),
        check=body.get("check", error.get("check")),
        task=headers.get("X-CloudTasks-TaskName", "")[:500] or None,
        retry_count=headers.get("X-CloudTasks-TaskRetryCount", "")[:20] or None,
    )
    return _respond(answer)
