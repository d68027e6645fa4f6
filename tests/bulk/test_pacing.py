"""The bulk pacer: even spacing, and a hard cap per sliding second that survives a stalled
machine (threads whose turns passed while they could not run must not leave together)."""

from __future__ import annotations

import itertools

from shared.bulk.pacing import JITTER, Pacer, worker_rate


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _most_in_any_window(starts: list[float], window: float = 1.0) -> int:
    return max(sum(1 for t in starts if s <= t < s + window) for s in starts)


def test_turns_are_evenly_spaced_at_the_rate() -> None:
    time = FakeTime()
    pacer = Pacer(10.0, clock=time.clock, sleep=time.sleep, window_seconds=1.0)
    starts = []
    for _ in range(25):
        pacer.wait()
        starts.append(time.now)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(abs(gap - 0.1) < 0.001 for gap in gaps), gaps
    assert _most_in_any_window(starts) == 10


def test_the_production_pace_fills_its_jitter_window_exactly() -> None:
    """At ``worker_rate``'s pace the window budget is never the limiting factor: spacing alone
    keeps a worker at its budget per (1 + JITTER) seconds."""
    time = FakeTime()
    pacer = Pacer(worker_rate(100.0, 10), clock=time.clock, sleep=time.sleep)
    starts = []
    for _ in range(40):
        pacer.wait()
        starts.append(time.now)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) - min(gaps) < 1e-3
    assert _most_in_any_window(starts, 1.0 + JITTER) == 10
    assert _most_in_any_window(starts, 1.0) <= 10


def test_turns_that_passed_during_a_stall_do_not_leave_together() -> None:
    """Eight threads reserved their turns, then the machine stalled for two seconds: when they
    run again every turn is in the past. Only the window's budget may start at once; the rest
    wait for the window to move on."""
    time = FakeTime()
    pacer = Pacer(4.0, clock=time.clock, sleep=time.sleep)
    delays = [pacer.reserve() for _ in range(8)]
    assert delays == [0.25 * k for k in range(8)]  # evenly spaced reservations
    time.now = 2.0  # the stall: every reserved turn has passed
    starts = []
    for _ in delays:
        pacer.admit()
        starts.append(time.now)
    assert starts[:4] == [2.0] * 4  # the window's budget (4 per second) leaves at once
    assert min(starts[4:]) >= 3.0  # the rest only when the first ones leave the window
    assert _most_in_any_window(starts) == 4


def test_slow_down_halves_the_window_budget_then_recovers() -> None:
    time = FakeTime()
    pacer = Pacer(10.0, clock=time.clock, sleep=time.sleep, recovery_seconds=5.0)
    assert pacer.window_budget() == 10
    pacer.slow_down()
    assert pacer.window_budget() == 5 and pacer.interval() == 0.2
    time.now += 5.0
    assert pacer.window_budget() == 10 and pacer.interval() == 0.1


def test_worker_share_is_a_whole_budget_spread_over_the_jitter_window() -> None:
    assert worker_rate(100.0, 1) == 100.0 / (1 + JITTER)
    assert worker_rate(100.0, 10) == 10.0 / (1 + JITTER)
    assert worker_rate(100.0, 8) == 12.0 / (1 + JITTER)  # floor(12.5): whole requests
    # The window budget of that pace is the whole budget again: 10 x 10 = the limit, never more.
    assert Pacer(worker_rate(100.0, 10)).window_budget() == 10
    # many instances: below one request per second each, half the even share
    assert worker_rate(100.0, 200) == 100.0 * 0.5 / 200
