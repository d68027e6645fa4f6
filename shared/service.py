"""The one motion everything else wraps: payload -> request -> provider -> outcome -> event.

Entry points (webhooks, queue handlers, the CLI) parse their envelope and call ``restore``;
they never talk to a provider or a sink themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.allowlist import BucketAllowlist
from shared.callbacks import Callbacks
from shared.config import Settings
from shared.emulated_clock import utc_clock
from shared.events import CloudEvent, build_event
from shared.ledger import (
    ACCEPTED,
    DONE,
    DuplicateInFlight,
    Ledger,
    StoreError,
    ledger_from_settings,
)
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.providers import ProviderRegistry
from shared.providers.base import failure
from shared.recheck import Scheduler, utcnow
from shared.records import frozen
from shared.restore_requests import _check_context, _check_request_id, _new_request_id
from shared.retry import RetryPolicy
from shared.sinks import EventSink, SinkError, sink_from_settings
from shared.validation import (
    AnyRestoreRequest,
    FieldProblem,
    RequestValidationError,
    parse_request,
)

if TYPE_CHECKING:
    from shared.recheck_runner import RecheckResult
    from shared.status import ObjectStatus


@frozen
class Handled:
    """What ``RestoreService.handle`` did with one request."""

    outcome: Outcome
    published: bool = False  # its event went out during this call
    replayed: bool = False  # a duplicate: the outcome was recorded earlier, nothing was redone
    delivered: bool = True  # False: the event (or its record) was lost; do not acknowledge


class RestoreService:
    def __init__(
        self,
        settings: Settings,
        *,
        sink: EventSink | None = None,
        providers: ProviderRegistry | None = None,
        retry: RetryPolicy | None = None,
        ledger: Ledger | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink if sink is not None else sink_from_settings(settings)
        self.providers = providers if providers is not None else ProviderRegistry(settings)
        self.retry = retry if retry is not None else RetryPolicy.from_settings(settings)
        self.allowlist = BucketAllowlist.from_settings(settings)
        self.ledger = ledger if ledger is not None else ledger_from_settings(
            settings, self._gcs_client
        )
        # Delayed re-checks of initiated restores (shared.recheck); None: no re-checks.
        self.scheduler = scheduler if scheduler is not None else _scheduler_from(settings)
        self.callbacks = Callbacks.from_settings(settings)
        # Bulk jobs (shared.bulk.service.bulk_for): built on the first job or chunk.
        self.bulk_service: Any = None
        # The re-check schedule's clock: real time, or (emulators only) the accelerated clock
        # RESTORE_EMULATED_CLOCK_* describe (shared.emulated_clock).
        self.now: Callable[[], datetime] = (
            utcnow if settings.emulated_clock_epoch is None else utc_clock(settings)
        )

    def _gcs_client(self) -> object:
        from shared.providers.clients import gcs_client

        return gcs_client(self.settings.gcs)

    @classmethod
    def from_env(cls) -> RestoreService:
        return cls(Settings.from_env())

    # -- the motion --------------------------------------------------------------------------
    def restore(self, payload: Any) -> Outcome:
        """Restore one request and publish its event. Raises SinkError if the event is lost."""
        handled = self.handle(payload)
        if not handled.delivered:
            raise SinkError(f"event for request {handled.outcome.request_id} not delivered")
        if _unpublished_rejection(handled):
            self.publish(handled.outcome)  # a validation rejection: not a ledger phase
        return handled.outcome

    def handle(self, payload: Any, *, publish_retryable: bool = True) -> Handled:
        """Restore at most once per ``request_id``; publish each phase's event at most once.

        A duplicate of a request whose phase was already published gets the recorded outcome
        back and causes neither a provider call nor an event (``replayed``). A request accepted
        earlier (a COS restore in progress) is only looked at (HEAD), never restored again.
        A request seen for the first time is restored under a claim (``restoring``): a copy
        delivered at the same time to another instance finds the claim and is answered
        ``duplicate_in_flight`` (retryable, unpublished, no provider call), so the queue hands it
        back once the first copy has recorded its phase. Validation rejections are returned
        unpublished: callers decide (a webhook answers 422, a queue publishes the rejection).
        ``delivered`` is False when the event (or its record) was lost: the caller must not
        acknowledge the request.
        """
        request = self._admit(payload)
        if isinstance(request, Outcome):
            if request.error is not None and request.error.code is ErrorCode.VALIDATION_FAILED:
                return Handled(request)
            return self.publish_once(request)
        try:
            done, accepted = self._recall(request.request_id)
            fresh = done is None and accepted is None
            claim = self.ledger.claim_request(request.request_id) if fresh else None
        except DuplicateInFlight as exc:
            return Handled(failure(request, ErrorCode.DUPLICATE_IN_FLIGHT, str(exc),
                                   retryable=True, http_status=None))
        except StoreError as exc:
            return Handled(_ledger_unavailable(request, exc))
        if claim is not None:
            try:
                # Looked at again under the claim: a copy that recorded its phase and released
                # the claim between our first look and our claim must not restore it again.
                done, accepted = self._recall(request.request_id)
                if done is None and accepted is None:
                    adapter = self.providers.get(request.provider)
                    outcome = self.retry.run(lambda: adapter.restore(request))
                    return self._settle(request, outcome, publish_retryable)
            except StoreError as exc:
                return Handled(_ledger_unavailable(request, exc))
            finally:
                claim.release()
        return self._handle_recorded(request, done, accepted, publish_retryable)

    def _recall(self, request_id: str) -> tuple[Outcome | None, Outcome | None]:
        done = self.ledger.recall(request_id, DONE)
        return done, None if done else self.ledger.recall(request_id, ACCEPTED)

    def _handle_recorded(self, request: AnyRestoreRequest, done: Outcome | None,
                         accepted: Outcome | None, publish_retryable: bool) -> Handled:
        """A request the ledger has seen: replayed, refused (another object), or looked at."""
        recorded = done or accepted
        assert recorded is not None
        if not _same_object(recorded, request):
            reused = failure(
                request, ErrorCode.CONFLICT,
                "request_id was already used for a different object; use a new request_id",
                status=OutcomeStatus.REJECTED, http_status=None,
            )
            return self._publish_now(reused)
        if done is not None:
            return Handled(done, replayed=True)
        assert accepted is not None
        adapter = self.providers.get(request.provider)
        outcome = self.retry.run(lambda: adapter.check(request))
        if outcome.status is OutcomeStatus.IN_PROGRESS:
            return self._follow_up(request, Handled(accepted, replayed=True))
        return self._settle(request, outcome, publish_retryable)

    def _settle(self, request: AnyRestoreRequest, outcome: Outcome,
                publish_retryable: bool) -> Handled:
        if outcome.retryable:
            if not publish_retryable:
                return Handled(outcome)
            return self._publish_now(outcome)  # never recorded: the next attempt must happen
        return self._follow_up(request, self.publish_once(outcome))

    def _follow_up(self, request: AnyRestoreRequest, handled: Handled) -> Handled:
        """An accepted restore gets its completion looked after: a re-check is scheduled (again,
        on a duplicate: the scheduler dedups) and the object remembers who asked."""
        outcome = handled.outcome
        if not handled.delivered or outcome.status not in (
            OutcomeStatus.INITIATED, OutcomeStatus.IN_PROGRESS
        ):
            return handled
        from shared import recheck_runner

        try:
            recheck_runner.schedule_first(
                self, request.model_dump(mode="json", exclude_none=True), outcome
            )
        except (recheck_runner.RecheckError, StoreError):
            return Handled(outcome, handled.published, handled.replayed, delivered=False)
        return handled

    def recheck(self, payload: Any) -> RecheckResult:
        """One delayed re-check of an initiated restore (``shared.recheck``)."""
        from shared import recheck_runner

        return recheck_runner.run(self, payload)

    def _publish_now(self, outcome: Outcome) -> Handled:
        try:
            self.publish(outcome)
        except SinkError:
            return Handled(outcome, delivered=False)
        return Handled(outcome, published=True)

    def publish_once(self, outcome: Outcome) -> Handled:
        """Publish unless this phase of the request was published before (``shared.ledger``)."""
        try:
            published = self.ledger.publish_once(outcome, self.publish)
        except DuplicateInFlight as exc:
            busy = ErrorInfo(code=ErrorCode.DUPLICATE_IN_FLIGHT, message=str(exc), retryable=True)
            return Handled(outcome.model_copy(update={"status": OutcomeStatus.FAILED,
                                                      "error": busy}))
        except (SinkError, StoreError):
            return Handled(outcome, delivered=False)
        return Handled(outcome, published=published, replayed=not published)

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
        completed = publish and outcome.status is OutcomeStatus.COMPLETED
        if completed and not self.publish_once(outcome).delivered:
            raise SinkError(f"event for request {outcome.request_id} not delivered")
        return outcome

    def status(self, payload: Any, *, previous_expiry: datetime | None = None) -> ObjectStatus:
        """Where one object stands (shared.status): validated, allowlisted and retried like
        ``check``; never publishes. ``previous_expiry`` (COS) is the expiry of an earlier restore
        from the caller's records (a ledger): it overrides the query's own ``previous_expiry``
        and lets an expired restore be told from one never made."""
        # Imported here: the status models are pydantic's, kept off a restore's cold start.
        from shared.status import parse_status_query, status_error, status_rejected

        try:
            query = parse_status_query(payload)
        except RequestValidationError as exc:
            return status_rejected(exc)
        reason = self.allowlist.refusal(query.provider, query.bucket)
        if reason is not None:
            return status_error(query, ErrorInfo(code=ErrorCode.BUCKET_NOT_ALLOWED, message=reason))
        adapter = self.providers.get(query.provider)
        return self.retry.run(lambda: adapter.status(query, previous_expiry=previous_expiry))

    def publish(self, outcome: Outcome) -> CloudEvent:
        """To the sink (raises SinkError), then to the request's callback if it has one."""
        event = build_event(outcome)
        self.sink.publish(event)
        if outcome.callback_url:
            self.callbacks.deliver(event, outcome.callback_url)
        return event

    def _admit(self, payload: Any) -> AnyRestoreRequest | Outcome:
        """The validated request, or the rejection to answer instead (invalid, not allowed)."""
        try:
            request = parse_request(payload)
            if request.callback_url is not None:
                refused = self.callbacks.refusal(str(request.callback_url))
                if refused is not None:
                    raise RequestValidationError([FieldProblem(
                        loc=["callback_url"], field="callback_url", reason=refused,
                        type="callback_url_refused",
                    )])
            if (getattr(request, "allow_overwrite", False)
                    and not self.settings.gcs_allow_overwrite):
                raise RequestValidationError([OVERWRITE_NOT_ALLOWED])
        except RequestValidationError as exc:
            return rejected_for_validation(payload, exc)
        reason = self.allowlist.refusal(request.provider, request.bucket)
        if reason is None:
            return request
        return failure(
            request, ErrorCode.BUCKET_NOT_ALLOWED, reason, status=OutcomeStatus.REJECTED,
            http_status=None,
        )


OVERWRITE_NOT_ALLOWED = FieldProblem(
    loc=["allow_overwrite"], field="allow_overwrite", type="overwrite_not_allowed",
    reason="this deployment does not replace live objects (RESTORE_GCS_ALLOW_OVERWRITE=0)",
)


def _scheduler_from(settings: Settings) -> Scheduler | None:
    from shared.schedulers import scheduler_from_settings

    return scheduler_from_settings(settings)


def _unpublished_rejection(handled: Handled) -> bool:
    """A validation rejection ``handle`` left for the caller to publish (nothing else: a copy
    told ``duplicate_in_flight`` must publish nothing, its twin is publishing right now)."""
    error = handled.outcome.error
    return (not (handled.published or handled.replayed) and error is not None
            and error.code is ErrorCode.VALIDATION_FAILED)


def _ledger_unavailable(request: AnyRestoreRequest, exc: StoreError) -> Outcome:
    return failure(request, ErrorCode.PROVIDER_ERROR, str(exc), retryable=True, http_status=None)


def _same_object(recorded: Outcome, request: AnyRestoreRequest) -> bool:
    return (recorded.provider, recorded.bucket, recorded.key) == (
        request.provider, request.bucket, request.object_key
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
        if isinstance(raw_context, dict):
            # The schema's own check (depth first, then size): an over-deep context is dropped,
            # not copied into a rejection that could not be serialised.
            with contextlib.suppress(ValueError):
                context = _check_context(raw_context)
    error = ErrorInfo(
        code=ErrorCode.VALIDATION_FAILED, message=exc.message, fields=exc.problems
    )
    return Outcome(
        status=OutcomeStatus.REJECTED, request_id=request_id, context=context, error=error
    )
