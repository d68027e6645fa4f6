"""A TDMQ (CMQ edition) emulator: ``PublishCmqMsg`` and ``SendCmqMsg`` over Tencent Cloud API 3.0.

It speaks the wire protocol tencentcloud-sdk-python-tdmq sends (``POST /``, JSON body, the
``X-TC-*`` headers, ``TC3-HMAC-SHA256`` signatures) and answers as Tencent does: HTTP 200 with
``{"Response": {..., "RequestId": ...}}`` or ``{"Response": {"Error": {"Code", "Message"},
"RequestId"}}`` and ``Content-Type: application/json`` exactly (the SDK only looks for an
``Error`` when the content type is exactly that).

Topics and queues are created through the constructor, the Python API or ``/_emulator/``; the
SDK's ``CreateCmq*`` actions are not emulated. Nothing reads a queue over the wire (the SDK has no
CMQ receive action); a consumer is emulated with :meth:`TdmqEmulator.pop_visible` or with a
*push target*: a Python callable or an HTTP URL that receives each message as an SCF CMQ trigger
event once it is visible. :meth:`TdmqEmulator.deliver_due` delivers everything due now; a
background thread (``push_interval``) does the same on its own until :meth:`close`.

Choices where the real behaviour is unconfirmed:

* An unknown topic or queue is answered ``ResourceNotFound`` (the product's generic code; the
  Pulsar-specific ``ResourceNotFound.Topic`` is not used). So is a topic or queue created for
  another region than the request's ``X-TC-Region``.
* ``PublishCmqMsg`` caps ``MsgContent`` at 1 MiB (the API documentation); ``CreateCmqTopic``
  documents a per-topic ``MaxMsgSize`` of at most 64 KiB, which a topic created here with
  ``max_msg_size`` can model. Oversize and empty bodies get ``InvalidParameterValue``.
* ``MsgTag``: at most 64 characters per tag (TDMQ API) and ``max_tags`` (default 5, from the
  legacy CMQ documentation) tags per message.
* ``SendCmqMsg``: ``DelaySeconds`` is required (the API documentation says so) and must lie in
  ``0..3600`` (CMQ's documented range: a message is invisible for an hour at most) and within the
  queue's ``msg_retention_seconds`` (default 3600; the API: "cannot exceed the queue's longest
  unacknowledged time"); queues cap bodies at 1 MiB.
* Missing or malformed ``Authorization`` is ``AuthFailure.InvalidAuthorization``; a timestamp
  more than 300 s from the server's clock is ``AuthFailure.SignatureExpire`` (checked against the
  real wall clock plus ``server_time_offset``, never the virtual clock); a credential whose date or
  service does not match is ``AuthFailure.SignatureFailure``. ``X-TC-Token`` is only checked for
  SecretIds listed in ``tokens`` (``AuthFailure.TokenFailure``).
* The rate limit counts API requests in a sliding one-second window of real time and answers
  ``RequestLimitExceeded`` (HTTP 200), like every Tencent API 3.0 throttle.
* Injected 5xx faults keep their HTTP status with an ``InternalError`` body (the SDK then raises
  ``ServerNetworkError``); injected 4xx become HTTP 200 errors: 400 ``InvalidParameter``, 401/403
  ``AuthFailure.UnauthorizedOperation``, 404 ``ResourceNotFound``, 429 ``RequestLimitExceeded``.
* The push event for a queue mirrors the CMQ topic trigger event with ``type: queue``,
  ``queueOwner`` and ``queueName``; a failed push is retried after ``push_retry_delays`` (60 and
  120 emulated seconds, as SCF retries asynchronous invocations) and then dead-lettered.
"""

from __future__ import annotations

import hmac
import itertools
import json
import re
import threading
import time
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from emulators._http import Request, Response, VirtualClock
from emulators.tdmq import signature

DEFAULT_SECRET_ID = "AKIDTDMQEMULATOR"
DEFAULT_SECRET_KEY = "tdmq-emulator-secret-key"
API_VERSION = "2020-02-17"
SERVICE = "tdmq"
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_TAG_LENGTH = 64
DEFAULT_MAX_TAGS = 5
DEFAULT_MSG_RETENTION_SECONDS = 3600
MAX_DELAY_SECONDS = 3600
MAX_SIGN_SKEW = 300.0
DEFAULT_OWNER_UIN = 100000000001
DEFAULT_SUBSCRIPTION = "restorefn-subscription"
JSON_CONTENT_TYPE = "application/json"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_QUEUE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

_FAULT_CODES: dict[int, tuple[str, str]] = {
    400: ("InvalidParameter", "Injected fault: invalid parameter."),
    401: ("AuthFailure.UnauthorizedOperation", "Injected fault: unauthorized operation."),
    403: ("AuthFailure.UnauthorizedOperation", "Injected fault: unauthorized operation."),
    404: ("ResourceNotFound", "Injected fault: resource not found."),
    429: ("RequestLimitExceeded", "Your current request times equals to `20` in a second, "
          "which exceeds the frequency limit `20` for a second. Please reduce the frequency."),
}

PushTarget = Callable[[dict[str, Any]], object] | str


class TdmqError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Limiter:
    """At most ``rate`` admissions in any one second of real time; ``rate <= 0`` is unlimited."""

    def __init__(self, rate: float) -> None:
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        self.rate = float(rate)

    def admit(self) -> bool:
        with self._lock:
            if self.rate <= 0:
                return True
            now = time.monotonic()
            while self._times and self._times[0] <= now - 1.0:
                self._times.popleft()
            if len(self._times) >= self.rate:
                return False
            self._times.append(now)
            return True


@dataclass
class _Message:
    seq: int
    msg_id: str
    body: str
    tags: list[str]
    region: str | None
    request_id: str
    enqueued_at: float
    delay_seconds: int
    visible_at: float
    push_pending: bool = False  # topics: owed to the subscription's push target
    in_flight: bool = False
    delivery_attempts: int = 0
    next_attempt_at: float = 0.0
    delivered_at: float | None = None

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "msg_id": self.msg_id,
            "body": self.body,
            "tags": list(self.tags),
            "region": self.region,
            "request_id": self.request_id,
            "enqueued_at": self.enqueued_at,
            "delay_seconds": self.delay_seconds,
            "visible_at": self.visible_at,
            "visible": self.visible_at <= now,
            "delivery_attempts": self.delivery_attempts,
            "delivered_at": self.delivered_at,
        }


@dataclass
class _Channel:
    kind: Literal["topic", "queue"]
    name: str
    region: str | None
    max_msg_size: int
    msg_retention_seconds: int = DEFAULT_MSG_RETENTION_SECONDS
    # Topics keep every published message; queues hold what is not yet consumed.
    messages: list[_Message] = field(default_factory=list)
    consumed: list[_Message] = field(default_factory=list)
    dead_letters: list[_Message] = field(default_factory=list)
    push: PushTarget | None = None
    subscription: str = DEFAULT_SUBSCRIPTION

    def describe(self) -> dict[str, Any]:
        push: str | None
        if self.push is None:
            push = None
        elif isinstance(self.push, str):
            push = self.push
        else:
            push = f"callable:{getattr(self.push, '__qualname__', type(self.push).__name__)}"
        described: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "region": self.region,
            "max_msg_size": self.max_msg_size,
            "push": push,
        }
        if self.kind == "queue":
            described["msg_retention_seconds"] = self.msg_retention_seconds
        else:
            described["subscription"] = self.subscription
        return described


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class TdmqEmulator:
    """The TDMQ CMQ emulator: serve it with ``_http.serve`` or ``python -m emulators.tdmq``

    ``credentials`` maps SecretId to SecretKey; ``tokens`` optionally maps a SecretId to the
    ``X-TC-Token`` it must carry. ``rate_limit`` is API requests per second (<= 0: unlimited).
    ``push_interval`` is how often (real seconds) the background pusher runs once a push target is
    set; None leaves delivery entirely to :meth:`deliver_due`.
    """

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        tokens: Mapping[str, str] | None = None,
        topics: Iterable[str] = (),
        queues: Iterable[str] = (),
        clock_factor: float = 1.0,
        verify_signatures: bool = True,
        rate_limit: float = 0.0,
        server_time_offset: float = 0.0,
        max_tags: int = DEFAULT_MAX_TAGS,
        owner_uin: int = DEFAULT_OWNER_UIN,
        push_interval: float | None = 0.2,
        push_retry_delays: Iterable[float] = (60.0, 120.0),
        push_tags_as: Literal["list", "string"] = "list",
        push_timeout: float = 10.0,
    ) -> None:
        self.clock = VirtualClock(clock_factor)
        self.credentials: dict[str, str] = dict(
            credentials if credentials is not None else {DEFAULT_SECRET_ID: DEFAULT_SECRET_KEY}
        )
        self.tokens: dict[str, str] = dict(tokens or {})
        self.verify_signatures = verify_signatures
        self.server_time_offset = float(server_time_offset)
        self.max_tags = max_tags
        self.owner_uin = owner_uin
        self.push_interval = push_interval
        self.push_retry_delays = tuple(float(d) for d in push_retry_delays)
        self.push_tags_as = push_tags_as
        self.push_timeout = push_timeout
        self._limiter = _Limiter(rate_limit)
        self._lock = threading.RLock()
        self._deliver_lock = threading.Lock()
        self._channels: dict[tuple[str, str], _Channel] = {}
        self._seq = itertools.count(1)
        self._stop = threading.Event()
        self._pusher: threading.Thread | None = None
        for name in topics:
            self.create_topic(name)
        for name in queues:
            self.create_queue(name)

    # ------------------------------------------------------------------ python API

    @property
    def rate_limit(self) -> float:
        return self._limiter.rate

    @rate_limit.setter
    def rate_limit(self, rate: float) -> None:
        self._limiter.rate = float(rate)

    def create_topic(
        self, name: str, *, region: str | None = None, max_msg_size: int = MAX_MESSAGE_BYTES
    ) -> dict[str, Any]:
        """Create a topic (idempotent); ``region`` None accepts requests from any region."""
        if not _NAME_RE.fullmatch(name):
            raise ValueError(
                "topic names are 1-64 letters, digits, '-' or '_' (got a non-conforming name)"
            )
        return self._create("topic", name, region, max_msg_size, DEFAULT_MSG_RETENTION_SECONDS)

    def create_queue(
        self,
        name: str,
        *,
        region: str | None = None,
        max_msg_size: int = MAX_MESSAGE_BYTES,
        msg_retention_seconds: int = DEFAULT_MSG_RETENTION_SECONDS,
    ) -> dict[str, Any]:
        """Create a queue (idempotent); ``msg_retention_seconds`` bounds ``DelaySeconds``."""
        if not _QUEUE_NAME_RE.fullmatch(name):
            raise ValueError(
                "queue names start with a letter and are 1-64 letters, digits, '-' or '_'"
            )
        if not 30 <= msg_retention_seconds <= 43200:
            raise ValueError("msg_retention_seconds must be within 30..43200")
        return self._create("queue", name, region, max_msg_size, msg_retention_seconds)

    def topics(self) -> list[dict[str, Any]]:
        return self._list("topic")

    def queues(self) -> list[dict[str, Any]]:
        return self._list("queue")

    def topic_messages(self, name: str) -> list[dict[str, Any]]:
        """Everything published to the topic, oldest first; KeyError if there is no such topic."""
        with self._lock:
            now = self.clock.now()
            return [m.describe(now) for m in self._channel("topic", name).messages]

    def queue_messages(self, name: str, *, visible_only: bool = False) -> list[dict[str, Any]]:
        """Messages still in the queue (not popped or pushed), in the order they become visible."""
        with self._lock:
            now = self.clock.now()
            messages = sorted(self._channel("queue", name).messages, key=_visibility_order)
            return [m.describe(now) for m in messages if not visible_only or m.visible_at <= now]

    def consumed_messages(self, name: str) -> list[dict[str, Any]]:
        """Queue messages already popped or pushed, in the order they left the queue."""
        with self._lock:
            now = self.clock.now()
            return [m.describe(now) for m in self._channel("queue", name).consumed]

    def dead_letters(self, kind: Literal["topic", "queue"], name: str) -> list[dict[str, Any]]:
        """Messages whose push failed on every attempt."""
        with self._lock:
            now = self.clock.now()
            return [m.describe(now) for m in self._channel(kind, name).dead_letters]

    def pop_visible(self, name: str, max_count: int | None = None) -> list[dict[str, Any]]:
        """Remove and return the queue's visible messages (oldest first), as a consumer would."""
        with self._lock:
            channel = self._channel("queue", name)
            now = self.clock.now()
            due = sorted(
                (m for m in channel.messages if m.visible_at <= now and not m.in_flight),
                key=_visibility_order,
            )
            if max_count is not None:
                due = due[: max(0, max_count)]
            for message in due:
                channel.messages.remove(message)
                message.delivered_at = now
                channel.consumed.append(message)
            return [m.describe(now) for m in due]

    def set_topic_push(
        self, name: str, target: PushTarget | None, *, subscription: str = DEFAULT_SUBSCRIPTION
    ) -> None:
        """Deliver messages published *from now on* to ``target`` (a callable or an HTTP URL)."""
        self._set_push("topic", name, target)
        with self._lock:
            self._channel("topic", name).subscription = subscription

    def set_queue_push(self, name: str, target: PushTarget | None) -> None:
        """Consume the queue by delivering each visible message to ``target``; None stops it."""
        self._set_push("queue", name, target)

    def deliver_due(self) -> int:
        """Push every message that is due now; returns how many were delivered successfully.

        Each message goes out as its own single-record event. A target that raises (or an URL
        that does not answer 2xx) gets the message again after the next retry delay.
        """
        delivered = 0
        with self._deliver_lock:
            for channel, message, target in self._claim_due():
                event = self._event_for(channel, message)
                ok = _push(target, event, self.push_timeout)
                with self._lock:
                    now = self.clock.now()
                    message.in_flight = False
                    message.delivery_attempts += 1
                    if ok:
                        delivered += 1
                        message.delivered_at = now
                        self._retire(channel, message, channel.consumed)
                    elif message.delivery_attempts > len(self.push_retry_delays):
                        self._retire(channel, message, channel.dead_letters)
                    else:
                        delay = self.push_retry_delays[message.delivery_attempts - 1]
                        message.next_attempt_at = now + delay
        return delivered

    def close(self) -> None:
        """Stop the background pusher (it is a daemon thread: process exit also ends it)."""
        self._stop.set()
        thread = self._pusher
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def __enter__(self) -> TdmqEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ Emulator protocol

    def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            payload = self._dispatch(request, request_id)
        except TdmqError as err:
            return _error(request_id, err.code, err.message)
        return _answer(200, {**payload, "RequestId": request_id})

    def fault_response(self, status: int, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        if status >= 500:
            body = {"Error": {"Code": "InternalError",
                              "Message": "Injected fault: internal error."},
                    "RequestId": request_id}
            return _answer(status, body)
        code, message = _FAULT_CODES.get(status, ("FailedOperation", "Injected fault."))
        return _error(request_id, code, message)

    def control(self, verb: str, request: Request) -> Response | None:
        method = request.method
        query = request.query
        if verb in ("topics", "queues") and method == "GET":
            kind: Literal["topic", "queue"] = "topic" if verb == "topics" else "queue"
            name = query.get("name")
            if name is None:
                return Response.json(200, self.topics() if kind == "topic" else self.queues())
            try:
                if kind == "topic":
                    return Response.json(200, self.topic_messages(name))
                visible_only = query.get("visible_only", "").lower() in ("1", "true", "yes")
                return Response.json(200, self.queue_messages(name, visible_only=visible_only))
            except KeyError:
                return Response.json(404, {"error": f"no such {kind}"})
        if verb in ("topics", "queues") and method in ("POST", "PUT"):
            payload = _object(request)
            if "name" not in payload:
                raise ValueError(f"POST {verb} needs a JSON object with name")
            options: dict[str, Any] = {"region": payload.get("region")}
            if "max_msg_size" in payload:
                options["max_msg_size"] = int(payload["max_msg_size"])
            if verb == "topics":
                return Response.json(201, self.create_topic(str(payload["name"]), **options))
            if "msg_retention_seconds" in payload:
                options["msg_retention_seconds"] = int(payload["msg_retention_seconds"])
            return Response.json(201, self.create_queue(str(payload["name"]), **options))
        if verb == "queues/pop" and method == "POST":
            payload = _object(request)
            max_count = payload.get("max_count")
            try:
                popped = self.pop_visible(
                    str(payload.get("name")), None if max_count is None else int(max_count)
                )
            except KeyError:
                return Response.json(404, {"error": "no such queue"})
            return Response.json(200, popped)
        if verb == "queues/consumed" and method == "GET":
            try:
                return Response.json(200, self.consumed_messages(query.get("name", "")))
            except KeyError:
                return Response.json(404, {"error": "no such queue"})
        if verb in ("topics/push", "queues/push") and method == "POST":
            payload = _object(request)
            url = payload.get("url")
            if url is not None and not (
                isinstance(url, str) and url.startswith(("http://", "https://"))
            ):
                raise ValueError("url must be an http(s) URL or null")
            name = str(payload.get("name"))
            try:
                if verb == "topics/push":
                    self.set_topic_push(
                        name, url, subscription=str(payload.get("subscription",
                                                                DEFAULT_SUBSCRIPTION))
                    )
                else:
                    self.set_queue_push(name, url)
            except KeyError:
                return Response.json(404, {"error": "no such " + verb.split("/")[0][:-1]})
            return Response.json(200, {"name": name, "url": url})
        if verb == "dead-letters" and method == "GET":
            dl_kind = query.get("kind", "queue")
            if dl_kind not in ("topic", "queue"):
                raise ValueError("kind must be topic or queue")
            try:
                return Response.json(
                    200, self.dead_letters(dl_kind, query.get("name", ""))  # type: ignore[arg-type]
                )
            except KeyError:
                return Response.json(404, {"error": f"no such {dl_kind}"})
        if verb == "deliver" and method == "POST":
            return Response.json(200, {"delivered": self.deliver_due()})
        if verb == "settings" and method == "GET":
            return Response.json(200, self._settings())
        if verb == "settings" and method == "POST":
            payload = _object(request)
            unknown = set(payload) - {"rate_limit", "verify_signatures", "server_time_offset"}
            if unknown:
                raise ValueError(f"unknown settings: {sorted(unknown)}")
            if "rate_limit" in payload:
                self.rate_limit = float(payload["rate_limit"])
            if "verify_signatures" in payload:
                self.verify_signatures = bool(payload["verify_signatures"])
            if "server_time_offset" in payload:
                self.server_time_offset = float(payload["server_time_offset"])
            return Response.json(200, self._settings())
        return None

    # ------------------------------------------------------------------ internals

    def _settings(self) -> dict[str, Any]:
        return {
            "rate_limit": self.rate_limit,
            "verify_signatures": self.verify_signatures,
            "server_time_offset": self.server_time_offset,
            "max_tags": self.max_tags,
            "push_interval": self.push_interval,
            "push_retry_delays": list(self.push_retry_delays),
        }

    def _create(
        self,
        kind: Literal["topic", "queue"],
        name: str,
        region: str | None,
        max_msg_size: int,
        retention: int,
    ) -> dict[str, Any]:
        if not 1 <= max_msg_size <= MAX_MESSAGE_BYTES:
            raise ValueError(f"max_msg_size must be within 1..{MAX_MESSAGE_BYTES}")
        with self._lock:
            channel = self._channels.setdefault(
                (kind, name.lower()), _Channel(kind, name, region, max_msg_size, retention)
            )
            return channel.describe()

    def _list(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {**c.describe(), "message_count": len(c.messages)}
                for (k, _), c in sorted(self._channels.items())
                if k == kind
            ]

    def _channel(self, kind: Literal["topic", "queue"], name: str) -> _Channel:
        """The topic or queue (names are case-insensitive); KeyError if it does not exist."""
        return self._channels[(kind, name.lower())]

    def _set_push(
        self, kind: Literal["topic", "queue"], name: str, target: PushTarget | None
    ) -> None:
        with self._lock:
            self._channel(kind, name).push = target
            start = (
                target is not None
                and self.push_interval is not None
                and self._pusher is None
                and not self._stop.is_set()
            )
            if start:
                self._pusher = threading.Thread(
                    target=self._push_loop, name="TdmqEmulator-pusher", daemon=True
                )
                self._pusher.start()

    def _push_loop(self) -> None:
        interval = self.push_interval or 0.2
        while not self._stop.wait(interval):
            try:
                self.deliver_due()
            except Exception:  # noqa: S112 - a broken target must not kill the pusher
                continue

    def _claim_due(self) -> list[tuple[_Channel, _Message, PushTarget]]:
        with self._lock:
            now = self.clock.now()
            claimed: list[tuple[_Channel, _Message, PushTarget]] = []
            for channel in self._channels.values():
                target = channel.push
                if target is None:
                    continue
                for message in channel.messages:
                    if message.in_flight or message.next_attempt_at > now:
                        continue
                    if channel.kind == "topic" and not message.push_pending:
                        continue
                    if message.visible_at > now:
                        continue
                    message.in_flight = True
                    claimed.append((channel, message, target))
            claimed.sort(key=lambda item: _visibility_order(item[1]))
            return claimed

    def _retire(self, channel: _Channel, message: _Message, into: list[_Message]) -> None:
        if channel.kind == "topic":
            message.push_pending = False
            if into is channel.dead_letters:
                into.append(message)
            return
        if message in channel.messages:
            channel.messages.remove(message)
        into.append(message)

    def _event_for(self, channel: _Channel, message: _Message) -> dict[str, Any]:
        record: dict[str, Any] = {"type": channel.kind}
        if channel.kind == "topic":
            tags: list[str] | str = (
                ",".join(message.tags) if self.push_tags_as == "string" else list(message.tags)
            )
            record.update(
                topicOwner=self.owner_uin,
                topicName=channel.name,
                subscriptionName=channel.subscription,
            )
        else:
            record.update(queueOwner=self.owner_uin, queueName=channel.name)
        record.update(
            publishTime=_iso(message.enqueued_at),
            msgId=message.msg_id,
            requestId=message.request_id,
            msgBody=message.body,
        )
        if channel.kind == "topic":
            record["msgTag"] = tags
        return {"Records": [{"CMQ": record}]}

    # -- the API

    def _dispatch(self, request: Request, request_id: str) -> dict[str, Any]:
        if request.method != "POST" or request.path != "/":
            raise TdmqError(
                "UnsupportedProtocol",
                "The emulator accepts Tencent Cloud API 3.0 calls as POST / with a JSON body.",
            )
        action = request.header("X-TC-Action").strip()
        if not action:
            raise TdmqError(
                "MissingParameter", "The request is missing a required parameter `Action`."
            )
        version = request.header("X-TC-Version").strip()
        if not version:
            raise TdmqError(
                "MissingParameter", "The request is missing a required parameter `Version`."
            )
        if self.verify_signatures:
            self._authenticate(request)
        if version != API_VERSION:
            raise TdmqError(
                "NoSuchVersion", f"The API version `{version}` of service `tdmq` does not exist."
            )
        if not self._limiter.admit():
            limit = int(self.rate_limit)
            raise TdmqError(
                "RequestLimitExceeded",
                f"Your current request times exceeds the frequency limit `{limit}` for a second. "
                "Please reduce the frequency.",
            )
        content_type = request.header("Content-Type").split(";")[0].strip().lower()
        if content_type != JSON_CONTENT_TYPE:
            raise TdmqError(
                "InvalidParameter", "The emulator only understands Content-Type: application/json."
            )
        try:
            params = request.json() if request.body else {}
        except (ValueError, UnicodeDecodeError):
            raise TdmqError("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise TdmqError("InvalidParameter", "The request body must be a JSON object.")
        region = request.header("X-TC-Region").strip() or None
        if action == "PublishCmqMsg":
            return self._publish(params, region, request_id)
        if action == "SendCmqMsg":
            return self._send(params, region, request_id)
        raise TdmqError(
            "InvalidAction",
            f"The requested action `{action}` does not exist (or is not emulated) "
            f"for service `tdmq` version `{API_VERSION}`.",
        )

    def _authenticate(self, request: Request) -> None:
        header = request.header("Authorization").strip()
        if not header:
            raise TdmqError("AuthFailure.InvalidAuthorization", "The request is not signed.")
        try:
            auth = signature.parse_authorization(header)
        except ValueError as exc:
            raise TdmqError(
                "AuthFailure.InvalidAuthorization", f"Authorization is invalid: {exc}."
            ) from None
        raw_timestamp = request.header("X-TC-Timestamp").strip()
        if not raw_timestamp.isdigit():
            raise TdmqError(
                "InvalidParameter", "X-TC-Timestamp must be a Unix timestamp in seconds."
            )
        timestamp = int(raw_timestamp)
        server_now = time.time() + self.server_time_offset
        if abs(server_now - timestamp) > MAX_SIGN_SKEW:
            raise TdmqError(
                "AuthFailure.SignatureExpire",
                f"Signature expired. Timestamp is {timestamp}, server time is "
                f"{int(server_now)}; they may differ by at most five minutes.",
            )
        secret = self.credentials.get(auth.secret_id)
        if secret is None:
            raise TdmqError(
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found, please ensure that your SecretId is correct.",
            )
        required_token = self.tokens.get(auth.secret_id)
        if required_token is not None and not hmac.compare_digest(
            required_token.encode(), request.header("X-TC-Token").encode()
        ):
            raise TdmqError("AuthFailure.TokenFailure", "The provided token is invalid.")
        problems: list[str] = []
        if auth.service != SERVICE:
            problems.append(f"credential service is `{auth.service}`, expected `{SERVICE}`")
        if auth.date != signature.utc_date(timestamp):
            problems.append("credential date does not match the UTC date of X-TC-Timestamp")
        if not {"content-type", "host"} <= set(auth.signed_headers):
            problems.append("SignedHeaders must include content-type and host")
        headers = {str(k).lower(): str(v) for k, v in request.headers.items()}
        canonical, missing = signature.canonical_request(
            request.method,
            request.raw_path,
            request.target.partition("?")[2],
            headers,
            auth.signed_headers,
            request.body,
            unsigned_payload=headers.get("x-tc-content-sha256") == signature.UNSIGNED_PAYLOAD,
        )
        if missing:
            problems.append(f"signed headers absent from the request: {missing}")
        to_sign = signature.string_to_sign(raw_timestamp, auth.date, auth.service, canonical)
        expected = signature.compute_signature(secret, auth.date, auth.service, to_sign)
        if problems or not hmac.compare_digest(expected, auth.signature):
            detail = f" ({'; '.join(problems)})" if problems else ""
            raise TdmqError(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. "
                "Please check your signature is correct." + detail,
            )

    def _publish(
        self, params: dict[str, Any], region: str | None, request_id: str
    ) -> dict[str, Any]:
        name = _required_str(params, "TopicName")
        body = _required_str(params, "MsgContent")
        tags = params.get("MsgTag")
        if tags is None:
            tags = []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise TdmqError("InvalidParameter", "MsgTag must be an array of strings.")
        if len(tags) > self.max_tags:
            raise TdmqError(
                "InvalidParameterValue", f"MsgTag holds {len(tags)} tags; at most {self.max_tags}."
            )
        if any(not t or len(t) > MAX_TAG_LENGTH for t in tags):
            raise TdmqError(
                "InvalidParameterValue",
                f"Each MsgTag must be 1 to {MAX_TAG_LENGTH} characters long.",
            )
        with self._lock:
            channel = self._lookup("topic", name, region)
            self._check_size(channel, body)
            now = self.clock.now()
            message = self._new_message(body, tags, region, request_id, now, 0)
            message.push_pending = channel.push is not None
            channel.messages.append(message)
        return {"Result": True, "MsgId": message.msg_id}

    def _send(self, params: dict[str, Any], region: str | None, request_id: str) -> dict[str, Any]:
        name = _required_str(params, "QueueName")
        body = _required_str(params, "MsgContent")
        if "DelaySeconds" not in params or params["DelaySeconds"] is None:
            raise TdmqError(
                "MissingParameter", "The request is missing a required parameter `DelaySeconds`."
            )
        delay = params["DelaySeconds"]
        if isinstance(delay, bool) or not isinstance(delay, int):
            raise TdmqError("InvalidParameter", "DelaySeconds must be an integer.")
        with self._lock:
            channel = self._lookup("queue", name, region)
            limit = min(MAX_DELAY_SECONDS, channel.msg_retention_seconds)
            if not 0 <= delay <= limit:
                raise TdmqError(
                    "InvalidParameterValue",
                    f"DelaySeconds must be within 0..{limit} (at most {MAX_DELAY_SECONDS}, and "
                    "at most the queue's MsgRetentionSeconds).",
                )
            self._check_size(channel, body)
            now = self.clock.now()
            message = self._new_message(body, [], region, request_id, now, delay)
            channel.messages.append(message)
        return {"Result": True, "MsgId": message.msg_id}

    def _lookup(self, kind: Literal["topic", "queue"], name: str, region: str | None) -> _Channel:
        channel = self._channels.get((kind, name.lower()))
        if channel is None or (channel.region is not None and channel.region != region):
            noun = "Topic" if kind == "topic" else "Queue"
            raise TdmqError("ResourceNotFound", f"{noun} `{name}` does not exist.")
        return channel

    @staticmethod
    def _check_size(channel: _Channel, body: str) -> None:
        size = len(body.encode("utf-8"))
        if size == 0:
            raise TdmqError("InvalidParameterValue", "MsgContent must not be empty.")
        if size > channel.max_msg_size:
            raise TdmqError(
                "InvalidParameterValue",
                f"MsgContent is {size} bytes; the {channel.kind} accepts at most "
                f"{channel.max_msg_size} bytes.",
            )

    def _new_message(
        self, body: str, tags: list[str], region: str | None, request_id: str, now: float,
        delay: int,
    ) -> _Message:
        seq = next(self._seq)
        return _Message(
            seq=seq,
            msg_id=uuid.uuid4().hex.upper(),
            body=body,
            tags=list(tags),
            region=region,
            request_id=request_id,
            enqueued_at=now,
            delay_seconds=delay,
            visible_at=now + delay,
        )


def _visibility_order(message: _Message) -> tuple[float, int]:
    return message.visible_at, message.seq


def _required_str(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise TdmqError(
            "MissingParameter", f"The request is missing a required parameter `{name}`."
        )
    if not isinstance(value, str):
        raise TdmqError("InvalidParameter", f"{name} must be a string.")
    return value


def _object(request: Request) -> dict[str, Any]:
    payload = request.json() or {}
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object")
    return payload


def _answer(status: int, response: dict[str, Any]) -> Response:
    # Exactly "application/json": the SDK ignores the Error of any other content type.
    body = json.dumps({"Response": response}).encode()
    return Response(status, body, {"Content-Type": JSON_CONTENT_TYPE})


def _error(request_id: str, code: str, message: str) -> Response:
    return _answer(200, {"Error": {"Code": code, "Message": message}, "RequestId": request_id})


def _push(target: PushTarget, event: dict[str, Any], timeout: float) -> bool:
    """Deliver one event; True on success (a callable that returns, or a 2xx answer)."""
    try:
        if isinstance(target, str):
            request = urllib.request.Request(  # noqa: S310 - the URL was checked to be http(s)
                target,
                data=json.dumps(event).encode(),
                headers={"Content-Type": JSON_CONTENT_TYPE},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                response.read()
                return 200 <= int(response.status) < 300
        target(event)
        return True
    except Exception:  # any failure of the consumer means: deliver again later
        return False
