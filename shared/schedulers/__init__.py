"""Delayed re-checks: how a restore that is still running gets looked at again later.

One small interface (:class:`RecheckScheduler`); the transport is chosen by settings
(``RESTORE_RECHECK_SCHEDULER``): ``none`` (default: no re-checks), ``cloudtasks`` (Google Cloud
Tasks HTTP tasks) or ``tdmq`` (not wired yet). Importing this package loads neither requests nor
google-auth: the Cloud Tasks scheduler imports them on its first ``schedule``.
"""

from __future__ import annotations

from shared.config import ConfigurationError, Settings
from shared.schedulers.base import RecheckScheduler, ScheduleError

__all__ = ["RecheckScheduler", "ScheduleError", "scheduler_from_settings"]


def scheduler_from_settings(settings: Settings) -> RecheckScheduler | None:
    """The configured scheduler, or None when re-checks are off (``none``)."""
    if settings.recheck_scheduler == "none":
        return None
    if settings.recheck_scheduler == "tdmq":
        raise ConfigurationError("RESTORE_RECHECK_SCHEDULER=tdmq: not yet")
    if not settings.recheck_cloudtasks_queue:
        raise ConfigurationError(
            "RESTORE_RECHECK_SCHEDULER=cloudtasks needs RESTORE_RECHECK_CLOUDTASKS_QUEUE "
            "(projects/P/locations/L/queues/Q)"
        )
    if not settings.recheck_target_url:
        raise ConfigurationError(
            "RESTORE_RECHECK_SCHEDULER=cloudtasks needs RESTORE_RECHECK_URL (the re-check "
            "function's URL)"
        )
    from shared.schedulers.cloudtasks import CloudTasksScheduler

    try:
        return CloudTasksScheduler(
            settings.recheck_cloudtasks_queue,
            settings.recheck_target_url,
            service_account_email=settings.recheck_service_account,
            audience=settings.recheck_audience,
            endpoint=settings.cloudtasks_endpoint,
            attempts=settings.recheck_cloudtasks_attempts,
            timeout=settings.provider_timeout_seconds,
        )
    except ValueError as exc:  # the message names the expected form, never the value
        raise ConfigurationError(f"Cloud Tasks re-check settings: {exc}") from None
