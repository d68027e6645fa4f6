"""Pacing: each worker's share of the provider's rate limit, and a pacer that keeps to it.

The platform runs at most ``max_instances`` workers at once and they share nothing, so each one
may make ``floor(limit / max_instances)`` requests in any second. The provider counts a request
when it arrives, a little after we send it, and that lag varies: a worker paced at exactly its
budget per second could see two of its requests counted in one second. So each worker keeps to
its budget over a window ``1 + JITTER`` seconds long (``Pacer``), spaced evenly at
``budget / (1 + JITTER)`` per second: as long as send-to-count lags differ by less than
``JITTER`` seconds, no provider second holds more than the limit. The result: a job never makes
the provider throttle it, and runs at about ``1 / (1 + JITTER)`` of the limit (95.7%).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

JITTER = 0.045  # seconds of send-to-count lag variation absorbed; also the rate given up


def worker_rate(job_rate: float, max_instances: int) -> float:
    """Requests per second one worker may send so that ``max_instances`` stay under the job's.

    The budget is whole requests per second (``floor``): fractional shares would let windows
    round up. Below one request per second per worker, half the even share is used.
    """
    instances = max(1, max_instances)
    budget = math.floor(job_rate / instances + 1e-9)
    if budget < 1:
        return job_rate * 0.5 / instances
    return budget / (1.0 + JITTER)


class Pacer:
    """Evenly spaced start times at ``rate`` per second, shared by a worker's threads, and never
    more than ``rate`` starts in any one-second window.

    Turns are reserved ``1/rate`` apart, which gives the spacing. The window cap is what holds on
    a starved machine: threads whose turns passed while they could not run wake together, and
    without the cap they would all leave at once, and a provider counting arrivals over a
    sliding second (COS's restore limit) would refuse the excess. Each start is recorded when
    the thread really leaves, so a late wake-up waits for the window instead of bunching.

    ``slow_down`` halves the rate for a while after a throttling answer (503 SlowDown, 429);
    it recovers by itself.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, recovery_seconds: float = 5.0,
                 window_seconds: float = 1.0 + JITTER) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next = clock()
        self._slow_until = 0.0
        self._recovery = recovery_seconds
        self._window = window_seconds
        self._started: deque[float] = deque()
        self._lock = threading.Lock()

    def _slowed(self) -> bool:
        return self._clock() < self._slow_until

    def interval(self) -> float:
        return (2.0 if self._slowed() else 1.0) / self.rate

    def window_budget(self) -> int:
        """Starts allowed in any window: the rate's share of it, at least one."""
        rate = self.rate / 2.0 if self._slowed() else self.rate
        return max(1, math.floor(rate * self._window + 1e-9))

    def wait(self) -> None:
        """Block until this caller's turn, then until the window has room; record the start."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
        self.admit()

    def reserve(self) -> float:
        """Take the next turn; how long to wait for it."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval()
        return start - now

    def admit(self) -> None:
        """Wait until the last window holds fewer than its budget of starts; record this one."""
        while True:
            with self._lock:
                now = self._clock()
                while self._started and self._started[0] <= now - self._window:
                    self._started.popleft()
                if len(self._started) < self.window_budget():
                    self._started.append(now)
                    return
                free_at = self._started[0] + self._window
            self._sleep(max(free_at - now, 0.0001))

    def slow_down(self) -> None:
        with self._lock:
            self._slow_until = self._clock() + self._recovery
            self._next = max(self._next, self._clock() + 1.0 / self.rate)
