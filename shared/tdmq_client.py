"""What the TDMQ (CMQ edition) event sink and re-check scheduler share.

Both talk to the TDMQ API 3.0 through ``tencentcloud-sdk-python-tdmq`` with the same
credentials, endpoint override and retry rules:

- :func:`credentials_from_settings`: ``TDMQ_SECRET_ID`` / ``TDMQ_SECRET_KEY`` /
  ``TDMQ_SESSION_TOKEN`` as a set, else the COS credentials (on SCF the execution role's
  temporary ``TENCENTCLOUD_*`` keys);
- :class:`LazyTdmqClient`: one ``TdmqClient`` per user, built on first use, so importing this
  module (or the sink, or the scheduler) never loads the tencentcloud SDK;
- :func:`call_with_retries`: retryable codes (no answer, a non-200 answer, ``InternalError``,
  ``RequestLimitExceeded``, CMQ back-end errors) are retried with jittered exponential backoff,
  a bounded number of times; anything else (authentication, unknown queue or topic, invalid
  parameters) fails at once. The SDK's own retryer stays off.

Error texts built here carry the Tencent error code and request id only: never the credentials,
never the free text of an answer (which can echo parameters).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.records import Secret, SecretValue

if TYPE_CHECKING:
    from shared.config import Settings

# Codes worth another attempt. ClientNetworkError: the request did not get an answer;
# ServerNetworkError: an answer other than HTTP 200 (a gateway or server failure).
RETRYABLE_CODES = frozenset(
    {
        "ClientNetworkError",
        "ServerNetworkError",
        "InternalError",
        "RequestLimitExceeded",
        "FailedOperation.CmqBackendError",
        "ResourceUnavailable",
    }
)
RETRYABLE_PREFIXES = ("InternalError.", "RequestLimitExceeded.")


def is_retryable(code: str | None) -> bool:
    if not code:
        return False
    return code in RETRYABLE_CODES or code.startswith(RETRYABLE_PREFIXES)


def parse_endpoint(endpoint: str) -> tuple[str, str]:
    """``(protocol, host[:port])``: a bare ``host:port`` means plain HTTP (a local emulator)."""
    endpoint = endpoint.strip().rstrip("/")
    for scheme in ("http", "https"):
        prefix = f"{scheme}://"
        if endpoint.startswith(prefix):
            return scheme, endpoint[len(prefix):]
    return "http", endpoint


def safe_identifier(value: object) -> bool:
    """Whether an identifier from an answer is plain enough to quote in an error message."""
    return isinstance(value, str) and 0 < len(value) <= 64 and all(
        c.isalnum() or c in "-_.:" for c in value
    )


def error_code(exc: BaseException) -> str:
    """The Tencent error code of an SDK exception (or the exception's class name)."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and safe_identifier(code) else type(exc).__name__


def describe(exc: BaseException) -> str:
    """``Code (RequestId ...)``: what an error message may say about a failed call."""
    request_id = getattr(exc, "requestId", None)
    suffix = f" (RequestId {request_id})" if safe_identifier(request_id) else ""
    return error_code(exc) + suffix


def _secret(value: SecretValue | str) -> SecretValue:
    return Secret(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class TdmqCredentials:
    """A SecretId / SecretKey pair and the session token temporary keys come with."""

    secret_id: SecretValue
    secret_key: SecretValue
    token: SecretValue | None = None

    @classmethod
    def of(
        cls, secret_id: SecretValue | str, secret_key: SecretValue | str,
        token: SecretValue | str | None = None,
    ) -> TdmqCredentials:
        return cls(_secret(secret_id), _secret(secret_key),
                   _secret(token) if token is not None else None)


def credentials_from_settings(settings: Settings, purpose: str) -> TdmqCredentials:
    """The TDMQ credentials; ``purpose`` (e.g. ``RESTORE_EVENT_SINK=tdmq``) names who needs them
    in the ConfigurationError raised when they are missing."""
    from shared.config import ConfigurationError

    # Explicit TDMQ keys come as a set (a COS session token would not match them); otherwise
    # the COS credentials, which on SCF are the execution role's TENCENTCLOUD_* keys.
    if settings.event_tdmq_secret_id is not None or settings.event_tdmq_secret_key is not None:
        secret_id = settings.event_tdmq_secret_id
        secret_key = settings.event_tdmq_secret_key
        token = settings.event_tdmq_session_token
        missing = "TDMQ_SECRET_KEY" if secret_key is None else "TDMQ_SECRET_ID"
    else:
        secret_id = settings.cos.secret_id
        secret_key = settings.cos.secret_key
        token = settings.cos.session_token
        missing = (
            "TDMQ_SECRET_ID and TDMQ_SECRET_KEY (or TENCENTCLOUD_SECRETID and "
            "TENCENTCLOUD_SECRETKEY)"
        )
    if secret_id is None or secret_key is None:
        raise ConfigurationError(f"{purpose} needs {missing}")
    return TdmqCredentials(secret_id, secret_key, token)


class LazyTdmqClient:
    """One ``TdmqClient`` built on first :meth:`get` (SDK imports included), then reused."""

    def __init__(
        self,
        region: str,
        credentials: TdmqCredentials,
        *,
        endpoint: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not region:
            raise ValueError("a TDMQ region is required")
        self.region = region
        self._credentials = credentials
        self.endpoint = parse_endpoint(endpoint) if endpoint else None
        self._timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LazyTdmqClient(region={self.region!r}, endpoint={self.endpoint!r})"

    def get(self) -> Any:
        """The client. Raises TencentCloudSDKException (``InvalidCredential``) for unusable
        keys (empty, or with spaces)."""
        with self._lock:
            if self._client is None:
                from tencentcloud.common import credential
                from tencentcloud.common.profile.client_profile import ClientProfile
                from tencentcloud.common.profile.http_profile import HttpProfile
                from tencentcloud.tdmq.v20200217.tdmq_client import TdmqClient

                keys = self._credentials
                cred = credential.Credential(
                    keys.secret_id.get_secret_value(),
                    keys.secret_key.get_secret_value(),
                    keys.token.get_secret_value() if keys.token is not None else None,
                )
                http = HttpProfile(reqTimeout=self._timeout)
                if self.endpoint is not None:
                    http = HttpProfile(
                        protocol=self.endpoint[0],
                        endpoint=self.endpoint[1],
                        reqTimeout=self._timeout,
                    )
                self._client = TdmqClient(cred, self.region, ClientProfile(httpProfile=http))
            return self._client


@dataclass(frozen=True)
class CallFailure:
    """Why a call gave up: ``problem`` is safe to quote (code and request id only)."""

    problem: str
    code: str
    retryable: bool
    attempts: int


def call_with_retries(
    call: Callable[[], object],
    *,
    attempts: int,
    backoff_base: float,
    backoff_max: float,
    sleep: Callable[[float], None],
) -> CallFailure | None:
    """Run ``call`` until it returns, retrying retryable SDK errors; None on success.

    Only ``TencentCloudSDKException`` is caught (that is how the SDK reports network errors
    too); anything else is a bug and propagates.
    """
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    failure: CallFailure | None = None
    for attempt in range(attempts):
        if attempt:
            delay = min(backoff_max, backoff_base * (2 ** (attempt - 1)))
            sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
        try:
            call()
        except TencentCloudSDKException as exc:
            code = error_code(exc)
            failure = CallFailure(describe(exc), code, is_retryable(code), attempt + 1)
            if not failure.retryable:
                return failure
            continue
        return None
    return failure
