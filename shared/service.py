"""The one motion everything else wraps: payload -> request -> provider -> outcome -> event.

Entry points (webhooks, queue handlers, the CLI) parse their envelope and call ``restore``;
they never talk to a provider or a sink themselves.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from shared.allowlist import BucketAllowlist
from shared.config import Settings
from shared.events import CloudEvent, build_event
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.providers import ProviderRegistry
from shared.providers.base import failure
from shared.retry import RetryPolicy
from shared.schemas import MAX_CONTEXT_BYTES, _check_request_id, _new_request_id
from shared.sinks import EventSink, sink_from_settings
from shared.validation import AnyRestoreRequest, RequestValidationError, parse_request


class RestoreService:
    def __init__(
        self,
        settings: Settings,
        *,
        sink: EventSink | None = None,
        providers: ProviderRegistry | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink if sink is not None else sink_from_settings(settings)
        self.providers = providers if providers is not None else ProviderRegistry(settings)
        self.retry = retry if retry is not None else RetryPolicy.from_settings(settings)
        self.allowlist = BucketAllowlist.from_settings(settings)

    @classmethod
    def from_env(cls) -> RestoreService:
        return cls(Settings.from_env())

    # -- the motion --------------------------------------------------------------------------
    def restore(self, payload: Any) -> Outcome:
        """Restore one request and publish its event. Raises SinkError if the event is lost."""
        outcome = self.decide(payload)
        self.publish(outcome)
        return outcome

    def decide(self, payload: Any) -> Outcome:
        """Everything but publishing: validation, allowlist, provider call with retries."""
        request = self._admit(payload)
        if isinstance(request, Outcome):
            return request
        adapter = self.providers.get(request.provider)
        return self.retry.run(lambda: adapter.restore(request))

    def check(self, payload: Any, *, publish: bool = True) -> Outcome:
        """Where a restore stands; publishes the ``completed`` event once it is done."""
        request = self._admit(payload)
        if isinstance(request, Outcome):
            return request
        adapter = self.providers.get(request.provider)
        outcome = self.retry.run(lambda: adapter.check(request))
        if publish and outcome.status is OutcomeStatus.COMPLETED:
            self.publish(outcome)
        return outcome

    def publish(self, outcome: Outcome) -> CloudEvent:
        event = build_event(outcome)
        self.sink.publish(event)
        return event

    def _admit(self, payload: Any) -> AnyRestoreRequest | Outcome:
        """The validated request, or the rejection to answer instead (invalid, not allowed)."""
        try:
            request = parse_request(payload)
        except RequestValidationError as exc:
            return rejected_for_validation(payload, exc)
        reason = self.allowlist.refusal(request.provider, request.bucket)
        if reason is None:
            return request
        return failure(
            request, ErrorCode.BUCKET_NOT_ALLOWED, reason, status=OutcomeStatus.REJECTED,
            http_status=None,
        )


def rejected_for_validation(payload: Any, exc: RequestValidationError) -> Outcome:
    """A rejected outcome that still carries the caller's request_id and context when usable,
    so a workflow waiting on that id hears about the rejection."""
    request_id = _new_request_id()
    context: dict[str, Any] | None = None
    if isinstance(payload, Mapping):
        candidate = payload.get("request_id", payload.get("requestId"))
        if isinstance(candidate, str):
            with contextlib.suppress(ValueError):
                request_id = _check_request_id(candidate)
        raw_context = payload.get("context")
        if isinstance(raw_context, dict) and len(json.dumps(raw_context)) <= MAX_CONTEXT_BYTES:
            context = raw_context
    error = ErrorInfo(
        code=ErrorCode.VALIDATION_FAILED, message=exc.message, fields=exc.problems
    )
    return Outcome(
        status=OutcomeStatus.REJECTED, request_id=request_id, context=context, error=error
    )
