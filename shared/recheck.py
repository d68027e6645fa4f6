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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.tiers import expected_window

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


class RecheckMessage(BaseModel):
    """The body of one scheduled re-check; everything the stateless handler needs."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["restorefn.recheck.v1"] = RECHECK_KIND
    request: dict[str, Any] = Field(description="The original restore request, normalised.")
    initiated_at: datetime
    storage_class: str | None = None
    check: int = Field(ge=0, lt=MAX_CHECKS, description="Index into the schedule.")
    not_before: datetime | None = Field(
        default=None, description="Set when a long delay is chained through shorter ones."
    )
    hops_left: int = Field(default=0, ge=0, description="Chained hops still to go after this.")

    @field_validator("request")
    @classmethod
    def _has_request_id(cls, request: dict[str, Any]) -> dict[str, Any]:
        """Every re-check is keyed by its request's id: one without is refused at the door."""
        from shared.schemas import _check_request_id

        request_id = request.get("request_id")
        if not isinstance(request_id, str):
            raise ValueError("request.request_id must be a string")
        _check_request_id(request_id)
        return request

    @property
    def request_id(self) -> str:
        return str(self.request["request_id"])

    def dedup_key(self) -> str:
        hop = "" if self.not_before is None else f"/hop-{self.hops_left}"
        return f"{self.request_id}/recheck/{self.check}{hop}"


def is_recheck(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("kind") == RECHECK_KIND


class Scheduler(Protocol):
    def schedule(self, body: bytes, delay_seconds: float, *, dedup_key: str | None) -> None:
        """Deliver ``body`` to the re-check handler after the delay; raise on failure."""


@dataclass(frozen=True)
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
