"""Running one re-check message (``shared.recheck``) against the service.

Kept apart from ``shared.recheck`` (pure schedule arithmetic and the message schema) because this
part talks to the provider, the ledger and the scheduler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.ledger import DONE, DuplicateInFlight, StoreError
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.recheck import RecheckMessage, Scheduler, first_message, is_last, parse_recheck, plan
from shared.validation import RequestValidationError

if TYPE_CHECKING:
    from shared.service import RestoreService

logger = logging.getLogger("restorefn.recheck")


class RecheckError(RuntimeError):
    """The next re-check could not be scheduled; the caller must not acknowledge."""


@dataclass
class RecheckResult:
    outcomes: list[Outcome] = field(default_factory=list)
    retry: bool = False
    scheduled: RecheckMessage | None = None
    delay_seconds: float | None = None
    duplicate: bool = False


def schedule(service: RestoreService, message: RecheckMessage, now: datetime) -> tuple[
    RecheckMessage, float
]:
    scheduler: Scheduler | None = service.scheduler
    if scheduler is None:
        raise RecheckError("no re-check scheduler is configured")
    planned = plan(message, now, margin=service.settings.recheck_margin,
                   max_delay=service.settings.recheck_max_delay_seconds)
    try:
        scheduler.schedule(planned.message.model_dump_json().encode(), planned.delay_seconds,
                           dedup_key=planned.message.dedup_key())
    except Exception as exc:  # any transport failure: the message must come back
        raise RecheckError(f"re-check not scheduled: {type(exc).__name__}") from None
    return planned.message, planned.delay_seconds


def schedule_first(service: RestoreService, request: dict[str, Any], outcome: Outcome) -> None:
    """After an accepted COS restore: remember it for the storage trigger, plan the first look."""
    record_pending(service, outcome, request)
    if service.scheduler is None:
        return
    now = service.now()
    schedule(service, first_message(request, outcome.storage_class, now), now)


def _pending_key(provider: str, bucket: str, key: str) -> str:
    return f"objects/{provider}/{quote(bucket, safe='')}/{quote(key, safe='')}/pending"


def record_pending(service: RestoreService, outcome: Outcome, request: dict[str, Any]) -> None:
    if outcome.provider is None or outcome.bucket is None or outcome.key is None:
        return
    service.ledger.store.put(
        _pending_key(outcome.provider, outcome.bucket, outcome.key),
        RecheckMessage(request=request, initiated_at=service.now(),
                       storage_class=outcome.storage_class, check=0).model_dump_json().encode(),
    )


def pending_request(
    service: RestoreService, provider: str, bucket: str, key: str
) -> dict[str, Any] | None:
    """The request that started the restore of this object, when this package started it."""
    raw = service.ledger.store.get(_pending_key(provider, bucket, key))
    if raw is None:
        return None
    try:  # our own record: read back, not validated
        return RecheckMessage.model_validate_json(raw).request
    except (ValueError, TypeError):
        return None


def run(service: RestoreService, payload: Any) -> RecheckResult:
    """Handle one delivered re-check message. Never raises for provider trouble: ``retry``."""
    result = RecheckResult()
    try:
        message = parse_recheck(payload)
    except RequestValidationError:
        logger.error("dropping a malformed re-check message")
        return result  # our own format: nothing a redelivery could fix
    now = service.now()
    ran = f"requests/{quote(message.request_id, safe='')}/recheck-{message.check}"
    try:
        if message.not_before is not None and now < message.not_before:
            result.scheduled, result.delay_seconds = schedule(service, message, now)
            return result  # a hop of a chained delay
        if _already_ran(service, message, ran):
            result.duplicate = True  # completed already (the COS trigger), or this check ran
            return result
        # Claimed while it runs (not marked ran up front): a copy arriving meanwhile comes back
        # later, and if this copy dies mid-look its claim ages out and a redelivery does the
        # look, instead of finding the check marked done and dropping the restore's tracking.
        claim = service.ledger.claim(f"{ran}.claim")
    except (DuplicateInFlight, StoreError, RecheckError):
        result.retry = True  # in flight elsewhere, or the ledger / scheduler failed: come back
        return result
    try:
        if _already_ran(service, message, ran):  # again, under the claim
            result.duplicate = True
            return result
        _look(service, message, now, result)
        if not result.retry:
            service.ledger.store.create(ran, b"{}")
    except (StoreError, RecheckError):
        result.retry = True
    finally:
        claim.release()
    return result


def _already_ran(service: RestoreService, message: RecheckMessage, ran: str) -> bool:
    return (service.ledger.recall(message.request_id, DONE) is not None
            or service.ledger.store.get(ran) is not None)


def _look(service: RestoreService, message: RecheckMessage, now: datetime,
          result: RecheckResult) -> None:
    outcome = service.check(message.request, publish=False)
    result.outcomes.append(outcome)
    if outcome.retryable:
        result.retry = True
        return
    if outcome.status is OutcomeStatus.IN_PROGRESS:
        if not is_last(message):
            nxt = message.model_copy(update={"check": message.check + 1, "not_before": None})
            result.scheduled, result.delay_seconds = schedule(service, nxt, now)
            return
        outcome = outcome.model_copy(update={
            "status": OutcomeStatus.FAILED,
            "error": ErrorInfo(
                code=ErrorCode.TIMEOUT,
                message="the restore did not complete within the tier's expected window plus "
                        "the configured margin",
            ),
        })
        result.outcomes[-1] = outcome
    handled = service.publish_once(outcome)
    # Lost, or another copy (the storage trigger) is publishing this phase right now: come back
    # and find it recorded.
    if not handled.delivered or handled.outcome.retryable:
        result.retry = True
