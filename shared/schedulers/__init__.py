"""Delayed re-checks: how a restore that is still running gets looked at again later.

One small interface (:class:`RecheckScheduler`); the transport is chosen by settings
(``RESTORE_RECHECK_SCHEDULER``): ``none`` (default: no re-checks), ``cloudtasks`` (Google Cloud
Tasks HTTP tasks) or ``tdmq`` (TDMQ CMQ delayed queue messages, for SCF). Importing this package
loads neither requests, google-auth nor the tencentcloud SDK: each scheduler imports its
transport on its first ``schedule``.
"""

from __future__ import annotations

from shared.config import TDMQ_MAX_DELAY_SECONDS, ConfigurationError, Settings
from shared.schedulers.base import RecheckScheduler, ScheduleError

__all__ = ["RecheckScheduler", "ScheduleError", "scheduler_from_settings"]


def scheduler_from_settings(settings: Settings) -> RecheckScheduler | None:
    """The configured scheduler, or None when re-checks are off (``none``)."""
    if settings.recheck_scheduler == "none":
        return None
    if settings.recheck_scheduler == "tdmq":
        return _tdmq_scheduler(settings)
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
    from shared.emulated_clock import wall_clock
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
            clock=wall_clock(settings),
            # Tasks are signed whenever webhook secrets exist (shared.task_auth): the re-check
            # endpoint verifies them in HMAC mode.
            signing_secret=settings.webhook_secrets[0] if settings.webhook_secrets else None,
        )
    except ValueError as exc:  # the message names the expected form, never the value
        raise ConfigurationError(f"Cloud Tasks re-check settings: {exc}") from None


def _tdmq_scheduler(settings: Settings) -> RecheckScheduler:
    purpose = "RESTORE_RECHECK_SCHEDULER=tdmq"
    if not settings.recheck_tdmq_queue:
        raise ConfigurationError(
            f"{purpose} needs RESTORE_RECHECK_TDMQ_QUEUE (the CMQ queue whose trigger runs the "
            "re-checks)"
        )
    if not settings.recheck_tdmq_region:
        raise ConfigurationError(
            f"{purpose} needs RESTORE_RECHECK_TDMQ_REGION (or TENCENTCLOUD_REGION)"
        )
    # Imported here: neither module imports the tencentcloud SDK until the first schedule.
    from shared.schedulers.tdmq import TdmqScheduler
    from shared.tdmq_client import credentials_from_settings

    keys = credentials_from_settings(settings, purpose)
    max_delay = settings.recheck_max_delay_seconds or TDMQ_MAX_DELAY_SECONDS
    try:
        return TdmqScheduler(
            settings.recheck_tdmq_queue,
            settings.recheck_tdmq_region,
            keys.secret_id,
            keys.secret_key,
            keys.token,
            endpoint=settings.event_tdmq_endpoint,
            attempts=settings.recheck_tdmq_attempts,
            timeout=settings.provider_timeout_seconds,
            max_delay_seconds=min(max_delay, TDMQ_MAX_DELAY_SECONDS),
        )
    except ValueError as exc:  # the message names the expected form, never the value
        raise ConfigurationError(f"TDMQ re-check settings: {exc}") from None
