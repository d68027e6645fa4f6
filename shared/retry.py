"""Bounded retries for retryable provider failures (429, 5xx, resets, timeouts).

The SDKs' own retries are switched off so that this one policy decides, with jittered
exponential backoff, and never starts an attempt that could not finish before the invocation's
deadline: a function must answer (or hand the message back) before its platform kills it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from shared.config import Settings


class _Attempted(Protocol):
    """What a retried call returns: an outcome (a record) or a status (a pydantic model)."""

    @property
    def retryable(self) -> bool: ...

    def model_copy(
        self: ResultT, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> ResultT: ...


ResultT = TypeVar("ResultT", bound=_Attempted)


@dataclass
class RetryPolicy:
    max_attempts: int = 3
    base_seconds: float = 0.5
    max_seconds: float = 8.0
    deadline_seconds: float = 45.0
    attempt_timeout_seconds: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = field(default=random.random)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
            deadline_seconds=settings.deadline_seconds,
            attempt_timeout_seconds=settings.provider_timeout_seconds,
        )

    def delay(self, attempt: int) -> float:
        """Equal-jitter backoff after ``attempt`` (1-based) failed."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        return float(ceiling / 2 + ceiling / 2 * self.jitter())

    def run(self, call: Callable[[], ResultT]) -> ResultT:
        started = self.monotonic()
        attempt = 0
        while True:
            attempt += 1
            result = call()
            if not result.retryable or attempt >= self.max_attempts:
                break
            pause = self.delay(attempt)
            elapsed = self.monotonic() - started
            if elapsed + pause + self.attempt_timeout_seconds > self.deadline_seconds:
                break
            self.sleep(pause)
        return result.model_copy(update={"attempts": attempt})
