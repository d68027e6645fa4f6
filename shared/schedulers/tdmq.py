"""Schedule re-checks as TDMQ (CMQ edition) delayed queue messages (``SendCmqMsg``).

Each :meth:`TdmqScheduler.schedule` sends the re-check body as one message to the configured
CMQ queue with ``DelaySeconds``: the message stays invisible that long, then the queue's SCF
trigger delivers it to ``main_handler`` as a CMQ record whose ``msgBody`` is the body, and
``shared.queue.process_message`` recognises it by its ``kind``.

Delays: CMQ takes ``DelaySeconds`` from 0 to 3600 (and at most the queue's
``MsgRetentionSeconds``, 3600 by default). Longer delays are chained by the re-check planner
(``shared.recheck.plan`` with ``RESTORE_RECHECK_MAX_DELAY_SECONDS``, which settings set to 3600
for this scheduler unless configured lower): a hop arrives early, carries ``not_before`` and
only re-schedules itself. A delay is rounded *up* to whole seconds, so a message never arrives
before its due time, but never beyond :attr:`TdmqScheduler.max_delay_seconds`; a longer one is
refused with a non-retryable :class:`ScheduleError` (shortening it silently would make the
re-check look early without knowing it).

Deduplication: CMQ has none, so ``dedup_key`` is not sent. Duplicates (a send retried after a
lost answer, a redelivered trigger event) are harmless: the re-check handler claims each check
once in the ledger, and every ``completed`` goes out under the ledger's one "done" phase.

Transport: ``tencentcloud-sdk-python-tdmq`` through ``shared.tdmq_client`` (the TDMQ sink's
client, credentials, endpoint override and retry rules), imported on the first schedule, never
when this module is imported. Network errors, non-200 answers, ``InternalError``,
``RequestLimitExceeded`` and CMQ back-end errors are retried with jittered exponential backoff,
``attempts`` times in all; anything else (authentication, an unknown queue, a refused parameter)
raises :class:`ScheduleError` at once with ``retryable=False``. Error messages name the queue and
the Tencent error code: never the body, never a credential.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any

from shared.config import TDMQ_MAX_DELAY_SECONDS
from shared.records import SecretValue
from shared.schedulers.base import ScheduleError
from shared.tdmq_client import LazyTdmqClient, TdmqCredentials, call_with_retries, error_code

logger = logging.getLogger("restorefn.schedulers.tdmq")

# SendCmqMsg: the message body is at most 1 MiB (and at most the queue's MaxMsgSize).
MAX_MESSAGE_BYTES = 1024 * 1024
# CMQ queue names: a letter first, then letters, digits, '-' (and '_'), 64 characters at most.
_QUEUE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def delay_seconds_for(delay: float, max_delay_seconds: int) -> int:
    """Whole seconds for ``DelaySeconds``: rounded up (never early), negative means now.

    A delay up to one second over the maximum (``plan`` hands over the configured maximum as a
    float) is held at the maximum; anything longer is a ValueError.
    """
    if not math.isfinite(delay):
        raise ValueError("delay_seconds must be a finite number")
    if delay > max_delay_seconds + 1.0:
        raise ValueError(
            f"a delay of {delay:.0f} s exceeds the queue's maximum of {max_delay_seconds} s"
        )
    return min(max(0, math.ceil(delay - 1e-6)), max_delay_seconds)


class TdmqScheduler:
    """Re-checks as delayed messages in the CMQ queue ``queue`` of ``region``."""

    def __init__(
        self,
        queue: str,
        region: str,
        secret_id: SecretValue | str,
        secret_key: SecretValue | str,
        token: SecretValue | str | None = None,
        *,
        endpoint: str | None = None,
        attempts: int = 4,
        timeout: float = 10.0,
        max_delay_seconds: float = TDMQ_MAX_DELAY_SECONDS,
        backoff_base: float = 0.25,
        backoff_max: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not _QUEUE.fullmatch(queue):
            raise ValueError(
                "the queue name must start with a letter and hold 1-64 letters, digits, '-' "
                "or '_'"
            )
        if not region:
            raise ValueError("a TDMQ region is required")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 1 <= max_delay_seconds <= TDMQ_MAX_DELAY_SECONDS:
            raise ValueError("max_delay_seconds must be within 1..3600 (CMQ's DelaySeconds)")
        self._queue = queue
        self._client = LazyTdmqClient(
            region, TdmqCredentials.of(secret_id, secret_key, token), endpoint=endpoint,
            timeout=timeout,
        )
        self._attempts = attempts
        self._max_delay = int(max_delay_seconds)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep

    @property
    def queue(self) -> str:
        return self._queue

    @property
    def max_delay_seconds(self) -> int:
        """The longest single delay this scheduler sends (longer ones must be chained)."""
        return self._max_delay

    @property
    def endpoint(self) -> tuple[str, str] | None:
        """``(protocol, host)`` of an endpoint override; None for the public TDMQ endpoint."""
        return self._client.endpoint

    def __repr__(self) -> str:
        return f"TdmqScheduler(queue={self._queue!r}, region={self._client.region!r})"

    def request_params(self, body: bytes, delay_seconds: float) -> dict[str, Any]:
        """The ``SendCmqMsg`` parameters for one schedule. Raises ValueError for a body that is
        not UTF-8, empty or over 1 MiB, or a delay over the maximum."""
        if not body:
            raise ValueError("the message body is empty")
        if len(body) > MAX_MESSAGE_BYTES:
            raise ValueError(
                f"the message body is {len(body)} bytes; CMQ takes at most {MAX_MESSAGE_BYTES}"
            )
        try:
            content = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the message body is not UTF-8 text") from None
        return {
            "QueueName": self._queue,
            "MsgContent": content,
            "DelaySeconds": delay_seconds_for(float(delay_seconds), self._max_delay),
        }

    def schedule(self, body: bytes, delay_seconds: float, *, dedup_key: str | None = None) -> None:
        what = f"re-check not scheduled on TDMQ queue {self._queue}"
        try:
            params = self.request_params(body, delay_seconds)
        except ValueError as exc:  # the text names sizes and limits, never content
            raise self._error(f"{what}: {exc}", retryable=False) from None

        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException,
        )
        from tencentcloud.tdmq.v20200217 import models

        try:
            client = self._client.get()
        except TencentCloudSDKException as exc:  # InvalidCredential: empty or spaced keys
            raise self._error(
                f"{what}: unusable credentials ({error_code(exc)})", retryable=False
            ) from None
        request = models.SendCmqMsgRequest()
        request.QueueName = params["QueueName"]
        request.MsgContent = params["MsgContent"]
        request.DelaySeconds = params["DelaySeconds"]
        failure = call_with_retries(
            lambda: client.SendCmqMsg(request), attempts=self._attempts,
            backoff_base=self._backoff_base, backoff_max=self._backoff_max, sleep=self._sleep,
        )
        if failure is None:
            return
        plural = "s" if failure.attempts != 1 else ""
        raise self._error(
            f"{what}: {failure.problem} after {failure.attempts} attempt{plural}",
            retryable=failure.retryable,
        )

    @staticmethod
    def _error(message: str, *, retryable: bool) -> ScheduleError:
        # The caller (shared.recheck_runner) keeps only the exception's type; the reason is
        # logged here, where it is known to be free of bodies and credentials.
        logger.error("%s", message)
        return ScheduleError(message, retryable=retryable)
