"""Tencent SCF trigger events: recognise the trigger by the event's shape and unwrap it.

An SCF function receives one JSON object per invocation whose shape says which trigger sent it
(REFERENCE.md section 2):

- API Gateway: ``httpMethod`` and ``requestContext``; ``path``, ``headers`` (lower-case names),
  ``body`` (absent on GET; base64 when ``isBase64Encoded``), ``queryString`` (values a string,
  a list or ``true``) or ``queryStringParameters`` -> ``ApiGatewayRequest``.
- CMQ topic / CKafka: ``Records[*].CMQ.msgBody`` / ``Records[*].Ckafka.msgBody`` ->
  ``RecordsEvent`` of ``QueueMessage``.
- COS: ``Records[*].cos`` with ``Records[*].event`` -> ``RecordsEvent`` of ``CosRestoreNotice``
  (``shared.envelopes.cos_events``).
- Timer: ``Type == "Timer"`` with ``Message`` -> ``TimerMessage``.
- Anything else, or a recognised trigger without what it needs -> ``InvalidEvent``.

Records are parsed one by one: a malformed record becomes a ``RecordProblem`` and the others
are still used. Nothing here calls a provider or publishes; problems never carry event values.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import field
from typing import Any, Literal

from shared.envelopes.base import EnvelopeProblem, RecordProblem
from shared.envelopes.cos_events import CosRestoreNotice, parse_cos_record
from shared.records import frozen
from shared.webhook import MAX_BODY_BYTES

# The most base64 text (whitespace aside) that can still decode to MAX_BODY_BYTES: four
# characters for every three bytes, the last group padded.
_MAX_BASE64_CHARS = 4 * -(-MAX_BODY_BYTES // 3)

Trigger = Literal["apigw", "cmq", "ckafka", "cos", "timer", "unknown"]
BODY_TOO_LARGE = "body_too_large"  # an ApiGatewayRequest problem answered 413, not 400
MAX_LOGGED_KEYS = 20

_RECORD_KINDS: dict[str, Literal["cmq", "ckafka", "cos"]] = {
    "cmq": "cmq", "ckafka": "ckafka", "cos": "cos",
}


@frozen
class ApiGatewayRequest:
    """An API Gateway integration request: what the webhook contract needs. ``problem`` is set
    when the body could not be decoded (the answer is then a 400) or is over the webhook's
    limit (``BODY_TOO_LARGE``: 413, whatever the method)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    request_id: str | None
    query: dict[str, str] = field(default_factory=dict)
    problem: EnvelopeProblem | None = None


@frozen
class QueueMessage:
    """One CMQ or CKafka record's message body (a restore request or a batch). ``message_id``
    is stable across SCF's retries of the event (CMQ ``msgId``; CKafka topic:partition:offset),
    so requests without a ``request_id`` get the same derived one every time."""

    index: int
    source: Literal["cmq", "ckafka"]
    message_id: str | None
    body: str


Record = QueueMessage | CosRestoreNotice | RecordProblem


@frozen
class RecordsEvent:
    """A ``Records`` event (CMQ, CKafka, COS): every record, each usable or a problem."""

    records: tuple[Record, ...]

    @property
    def triggers(self) -> list[str]:
        """Which triggers the records came from, e.g. ``["cmq"]``."""
        kinds: set[str] = set()
        for record in self.records:
            if isinstance(record, QueueMessage):
                kinds.add(record.source)
            elif isinstance(record, CosRestoreNotice):
                kinds.add("cos")
            else:
                kinds.add(record.source)
        return sorted(kinds)


@frozen
class TimerMessage:
    """A timer trigger: ``Message`` is a restore request or a batch."""

    trigger_name: str | None
    time: str | None
    body: str

    @property
    def message_id(self) -> str | None:
        """One id per firing (trigger name and time): a retry of the same firing is a
        duplicate, the next day's firing is not."""
        if not self.time:
            return None
        return f"timer:{self.trigger_name or ''}:{self.time}"[:200]


@frozen
class InvalidEvent:
    """An event that is not a recognised trigger, or a recognised one without what it needs.
    ``keys`` are the event's top-level field names (for the log; never values)."""

    trigger: Trigger
    problem: EnvelopeProblem
    keys: tuple[str, ...]


ScfEvent = ApiGatewayRequest | RecordsEvent | TimerMessage | InvalidEvent


def parse_event(event: object) -> ScfEvent:
    """Recognise the trigger and unwrap the event. Never raises."""
    if not isinstance(event, Mapping):
        return InvalidEvent(
            "unknown",
            EnvelopeProblem("the event must be a JSON object", (), "unsupported_event"),
            (),
        )
    keys = _keys(event)
    if "httpMethod" in event and "requestContext" in event:
        return parse_api_gateway(event)
    if event.get("Type") == "Timer":
        return _parse_timer(event, keys)
    if "Records" in event:
        return _parse_records(event, keys)
    return InvalidEvent(
        "unknown",
        EnvelopeProblem(
            "the event is not a recognised SCF trigger (API Gateway, CMQ, CKafka, COS, timer)",
            (), "unsupported_event",
        ),
        keys,
    )


def parse_api_gateway(event: Mapping[str, Any]) -> ApiGatewayRequest:
    method = event.get("httpMethod")
    path = event.get("path")
    context = event.get("requestContext")
    request_id = context.get("requestId") if isinstance(context, Mapping) else None
    raw_headers = event.get("headers")
    headers: dict[str, str] = {}
    if isinstance(raw_headers, Mapping):
        for name, value in raw_headers.items():
            if isinstance(value, list):
                value = ",".join(str(part) for part in value)
            if value is not None:
                headers[str(name).lower()] = str(value)
    body, problem = _api_gateway_body(event.get("body"), event.get("isBase64Encoded"))
    return ApiGatewayRequest(
        method=method.upper() if isinstance(method, str) else "",
        path=path if isinstance(path, str) and path else "/",
        headers=headers,
        body=body,
        request_id=request_id if isinstance(request_id, str) else None,
        query=_query(event.get("queryString"), event.get("queryStringParameters")),
        problem=problem,
    )


def _query(query_string: object, parameters: object) -> dict[str, str]:
    """The query parameters, first value of each. ``queryString`` values may be a string, a
    list (repeated parameter) or ``true`` (a parameter without ``=``); ``queryStringParameters``
    is the flat form."""
    source = query_string if isinstance(query_string, Mapping) and query_string else parameters
    query: dict[str, str] = {}
    if not isinstance(source, Mapping):
        return query
    for name, value in source.items():
        if isinstance(value, list):
            value = value[0] if value else ""
        if value is True:
            value = ""
        if value is None or value is False:
            continue
        query[_url_text(str(name))] = _url_text(str(value))
    return query


def _url_text(value: str) -> str:
    """Text as a URL can carry it: a lone surrogate (no UTF-8 spelling, so nothing a client
    could have sent) becomes U+FFFD, as werkzeug decodes undecodable bytes on Google."""
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def integration_response(status: int, headers: Mapping[str, str], body: str) -> dict[str, Any]:
    """The API Gateway integration response: exactly these four keys, or the gateway answers
    with an error of its own."""
    return {
        "isBase64Encoded": False,
        "statusCode": status,
        "headers": dict(headers),
        "body": body,
    }


def _api_gateway_body(body: object, encoded: object) -> tuple[bytes, EnvelopeProblem | None]:
    """The body's bytes, or why there are none. Size is checked first, on the string as it
    came: an oversized body is refused without being decoded (base64) or copied (UTF-8)."""
    if body is None:
        return b"", None  # GET and friends: no body at all
    if not isinstance(body, str):
        return b"", EnvelopeProblem("body must be a string", ("body",), "body_invalid")
    if encoded is True or (isinstance(encoded, str) and encoded.lower() == "true"):
        compact = "".join(body.split())
        if len(compact) > _MAX_BASE64_CHARS:
            return b"", _too_large()
        try:
            return base64.b64decode(compact, validate=True), None
        except (binascii.Error, ValueError):
            return b"", EnvelopeProblem(
                "body is marked isBase64Encoded but is not valid base64", ("body",),
                "base64_invalid",
            )
    if len(body) > MAX_BODY_BYTES:  # every character is at least one byte
        return b"", _too_large()
    raw = body.encode("utf-8", "surrogatepass")
    return (b"", _too_large()) if len(raw) > MAX_BODY_BYTES else (raw, None)


def _too_large() -> EnvelopeProblem:
    return EnvelopeProblem(f"body must be at most {MAX_BODY_BYTES} bytes", ("body",),
                           BODY_TOO_LARGE)


def _parse_timer(event: Mapping[str, Any], keys: tuple[str, ...]) -> TimerMessage | InvalidEvent:
    message = event.get("Message")
    if not isinstance(message, str) or not message.strip():
        return InvalidEvent(
            "timer",
            EnvelopeProblem(
                "the timer's Message must carry a restore request or a batch (JSON text)",
                ("Message",), "missing",
            ),
            keys,
        )
    name = event.get("TriggerName")
    time = event.get("Time")
    return TimerMessage(
        trigger_name=name if isinstance(name, str) else None,
        time=time if isinstance(time, str) else None,
        body=message,
    )


def _parse_records(event: Mapping[str, Any], keys: tuple[str, ...]) -> RecordsEvent | InvalidEvent:
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        return InvalidEvent(
            "unknown",
            EnvelopeProblem("Records must be a non-empty list", ("Records",), "list_type"),
            keys,
        )
    return RecordsEvent(tuple(_parse_record(record, index) for index, record in enumerate(records)))


def _parse_record(record: object, index: int) -> Record:
    if not isinstance(record, Mapping):
        return RecordProblem(
            index, "unknown",
            EnvelopeProblem("a record must be a JSON object", ("Records", index), "dict_type"),
        )
    for name in record:
        kind = _RECORD_KINDS.get(str(name).lower())
        if kind == "cos":
            return parse_cos_record(record, index)
        if kind is not None:
            return _parse_queue_record(record[name], str(name), kind, index)
    return RecordProblem(
        index, "unknown",
        EnvelopeProblem(
            "the record is not a CMQ, CKafka or COS record", ("Records", index),
            "unsupported_record",
        ),
    )


def _parse_queue_record(
    payload: object, name: str, kind: Literal["cmq", "ckafka"], index: int
) -> QueueMessage | RecordProblem:
    if not isinstance(payload, Mapping):
        return RecordProblem(
            index, kind,
            EnvelopeProblem(f"{name} must be a JSON object", ("Records", index, name),
                            "dict_type"),
        )
    body = payload.get("msgBody")
    if not isinstance(body, str):
        type_ = "missing" if body is None else "string_type"
        return RecordProblem(
            index, kind,
            EnvelopeProblem(
                f"{name}.msgBody must be the message text", ("Records", index, name, "msgBody"),
                type_,
            ),
        )
    if kind == "cmq":
        message_id = _identifier(payload.get("msgId"))
    else:
        parts = [_identifier(payload.get(f)) for f in ("topic", "partition", "offset")]
        message_id = ":".join(p or "" for p in parts) if any(parts) else None
    return QueueMessage(index=index, source=kind, message_id=message_id, body=body)


def _identifier(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value[:200]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _keys(event: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(name)[:64] for name in list(event)[:MAX_LOGGED_KEYS])


def summarise(event: ScfEvent) -> dict[str, Any]:
    """A log-safe description of a parsed event: trigger and counts, never payload values."""
    if isinstance(event, ApiGatewayRequest):
        return {"trigger": "apigw", "method": event.method[:16], "body_bytes": len(event.body)}
    if isinstance(event, RecordsEvent):
        return {"trigger": ",".join(event.triggers), "records": len(event.records)}
    if isinstance(event, TimerMessage):
        return {"trigger": "timer", "timer": (event.trigger_name or "")[:100]}
    return {"trigger": event.trigger, "keys": list(event.keys), "problem": event.problem.type}


def dumps(value: object) -> str:
    """Compact JSON, as the integration response body and log lines use."""
    return json.dumps(value, separators=(",", ":"), default=str)
