"""The clock delayed re-checks are planned on: real time, or (emulators only) an accelerated one.

A deployment never sets anything here: re-checks follow the real wall clock. Local runs
(``make demo``, ``make serve``) drive emulators whose clocks run ``factor`` times faster than real
time, so that a restore taking a minute finishes in two seconds. The re-check schedule must then
run on the same clock, or the first look at an Expedited restore (60 s after initiation) would
be planned 60 *real* seconds out. ``RESTORE_EMULATED_CLOCK_EPOCH`` (unix seconds) and
``RESTORE_EMULATED_CLOCK_FACTOR`` make every process compute

    emulated now = epoch + (real now - epoch) * factor

the formula ``emulators._http.VirtualClock(factor, epoch=epoch)`` uses, so the service
(``RestoreService.now``), the Cloud Tasks scheduler (``scheduleTime``) and the emulators in other
processes agree on the time without talking to each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from shared.config import Settings


def accelerated(epoch: float, factor: float) -> Callable[[], float]:
    """Unix seconds on a clock that equals real time at ``epoch`` and runs ``factor`` x fast."""

    def now() -> float:
        return epoch + (time.time() - epoch) * factor

    return now


def wall_clock(settings: Settings) -> Callable[[], float]:
    """Unix seconds for scheduling: ``time.time`` unless an emulated clock is configured."""
    if settings.emulated_clock_epoch is None or settings.emulated_clock_factor is None:
        return time.time
    return accelerated(settings.emulated_clock_epoch, settings.emulated_clock_factor)


def utc_clock(settings: Settings) -> Callable[[], datetime]:
    """The same clock as aware UTC datetimes (``RestoreService.now``)."""
    seconds = wall_clock(settings)

    def now() -> datetime:
        return datetime.fromtimestamp(seconds(), tz=timezone.utc)

    return now
