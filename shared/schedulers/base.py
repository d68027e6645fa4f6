"""The interface every delayed re-check transport implements."""

from __future__ import annotations

from typing import Protocol


class ScheduleError(RuntimeError):
    """A re-check could not be scheduled; the caller must not treat the restore as tracked.

    Treat it as retryable (do not acknowledge the triggering message; let the platform deliver it
    again). ``retryable`` is False when retrying the same call cannot help (the queue does not
    exist, permission denied, a malformed request): a deployment problem worth alerting on.
    ``status`` is the HTTP status of the last answer, if there was one. The message names the
    queue and what went wrong; never the body, the target URL or any credential.
    """

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class RecheckScheduler(Protocol):
    def schedule(self, body: bytes, delay_seconds: float, *, dedup_key: str | None = None) -> None:
        """Have ``body`` delivered to the re-check endpoint after ``delay_seconds``.

        ``dedup_key``: schedules with the same key are one schedule (the later ones are no-ops,
        for as long as the transport remembers the key). Raise ScheduleError on failure.
        """
