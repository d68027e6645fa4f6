"""Completion without a storage trigger: delayed re-checks of an initiated COS restore.

When a restore is ``initiated``, the service schedules a re-check message through the platform's
delay mechanism (Cloud Tasks on Google, TDMQ CMQ delayed messages on Tencent; see
``shared.schedulers``). Each re-check HEADs the object once:

- the copy is readable: ``completed`` (with its expiry) is published, once (``shared.ledger``);
- still restoring: the next re-check is scheduled;
- the tier's expected window plus the configured margin has passed: ``failed`` with a timeout;
- anything else final (the object is gone, no restore is running): ``failed`` with that reason.

The schedule is computed from the message alone (initiated_at, storage class, tier), so the
handler is stateless: the first check near the lower bound of the tier's window, then intervals
growing by half each time, the last one at the deadline: at most ``MAX_CHECKS`` HEADs per restore.
Delays longer than a transport allows are chained: the message carries ``not_before`` and a copy
that arrives early only re-schedules itself.
"""

from __future__ import annotations

import math
from dataclasses import field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any, ClassVar, Literal, Protocol

from shared.records import Readers, Record, frozen, read_datetime, record
from shared.tiers import expected_window
from shared.validation import FieldProblem, RequestValidationError, problems_from

RECHECK_KIND: Literal["restorefn.recheck.v1"] = "restorefn.recheck.v1"
MAX_CHECKS = 10
GROWTH = 1.5
# Used when the window is unknown (an unusual storage class): ARCHIVE Standard.
_FALLBACK_WINDOW = (3 * 3600.0, 5 * 3600.0)


def recheck_offsets(storage_class: str | None, tier: str | None, margin: float) -> list[float]:
    """Seconds after initiation at which to look, the last one being the deadline."""
    window = expected_window(storage_class or "ARCHIVE", tier or "Standard")
    low, high = (
        (window[0].total_seconds(), window[1].total_seconds()) if window else _FALLBACK_WINDOW
    )
    deadline = high * (1.0 + margin)
    intervals = MAX_CHECKS - 1
    unit = (deadline - low) * (GROWTH - 1.0) / (GROWTH**intervals - 1.0)
    offsets = [low]
    for k in range(intervals - 1):
        offsets.append(offsets[-1] + unit * GROWTH**k)
    offsets.append(deadline)
    return offsets


@record
class RecheckMessage(Record):
    """The body of one scheduled re-check; everything the stateless handler needs.

    A record (built on the cold path of every accepted COS restore); a delivered body is read
    with ``parse_recheck``, where pydantic validates it against these same fields.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}
    _readers: ClassVar[Readers] = {"initiated_at": read_datetime, "not_before": read_datetime}

    kind: Literal["restorefn.recheck.v1"] = RECHECK_KIND
    request: dict[str, Any] = field(
        metadata={"description": "The original restore request, normalised."})
    initiated_at: datetime
    storage_class: str | None = None
    check: int = field(metadata={"ge": 0, "lt": MAX_CHECKS,
                                 "description": "Index into the schedule."})
    not_before: datetime | None = field(default=None, metadata={
        "description": "Set when a long delay is chained through shorter ones."})
    hops_left: int = field(default=0, metadata={
        "ge": 0, "description": "Chained hops still to go after this."})

    @property
    def request_id(self) -> str:
        return str(self.request["request_id"])

    def dedup_key(self) -> str:
        hop = "" if self.not_before is None else f"/hop-{self.hops_left}"
        return f"{self.request_id}/recheck/{self.check}{hop}"


@cache
def _adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(RecheckMessage)


def parse_recheck(payload: Any, message: str = "the body is not a re-check task") -> RecheckMessage:
    """A delivered re-check body, validated; raises RequestValidationError with the field list.

    Every re-check is keyed by its request's id: one without is refused at the door.
    """
    from pydantic import ValidationError

    from shared.restore_requests import _check_request_id

    try:
        parsed: RecheckMessage = _adapter().validate_python(payload)
    except ValidationError as exc:
        raise RequestValidationError(problems_from(exc), message=message) from None
    request_id = parsed.request.get("request_id")
    try:
        if not isinstance(request_id, str):
            raise ValueError("request.request_id must be a string")
        _check_request_id(request_id)
    except ValueError as exc:
        problem = FieldProblem(loc=["request"], field="request", reason=str(exc),
                               type="value_error")
        raise RequestValidationError([problem], message=message) from None
    return parsed


def is_recheck(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("kind") == RECHECK_KIND


class Scheduler(Protocol):
    def schedule(self, body: bytes, delay_seconds: float, *, dedup_key: str | None) -> None:
        """Deliver ``body`` to the re-check handler after the delay; raise on failure."""


@frozen
class Planned:
    """The next message to send and how long to hold it."""

    message: RecheckMessage
    delay_seconds: float


def plan(
    message: RecheckMessage, now: datetime, *, margin: float, max_delay: float | None,
) -> Planned:
    """When to deliver ``message`` (already set to its check index), chaining long delays."""
    offsets = recheck_offsets(message.storage_class, message.request.get("tier"), margin)
    due = message.initiated_at + timedelta(seconds=offsets[message.check])
    delay = max(0.0, (due - now).total_seconds())
    if max_delay is not None and delay > max_delay:
        hops_left = math.ceil(delay / max_delay) - 1
        hop = message.model_copy(update={"not_before": due, "hops_left": hops_left})
        return Planned(hop, max_delay)
    return Planned(message.model_copy(update={"not_before": None, "hops_left": 0}), delay)


def first_message(request: dict[str, Any], storage_class: str | None,
                  initiated_at: datetime) -> RecheckMessage:
    return RecheckMessage(request=request, initiated_at=initiated_at,
                          storage_class=storage_class, check=0)


def is_last(message: RecheckMessage) -> bool:
    return message.check >= MAX_CHECKS - 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
