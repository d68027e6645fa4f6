"""What a provider adapter is, and the helpers every adapter uses to shape its outcomes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.restore_requests import CosRestoreRequest, GcsRestoreRequest

if TYPE_CHECKING:  # the status models are pydantic's: imported by the status path only
    from shared.status import CosStatusQuery, GcsStatusQuery, ObjectStatus

RequestT = TypeVar("RequestT", CosRestoreRequest, GcsRestoreRequest, contravariant=True)
QueryT = TypeVar("QueryT", "CosStatusQuery", "GcsStatusQuery", contravariant=True)


class ProviderAdapter(Protocol[RequestT, QueryT]):
    def restore(self, request: RequestT) -> Outcome:
        """Ask the provider to restore; never raises for provider or network failures."""

    def check(self, request: RequestT) -> Outcome:
        """Where the restore stands now: completed, in_progress, or why it is neither."""

    def status(self, query: QueryT, *, previous_expiry: datetime | None = None) -> ObjectStatus:
        """Where the object stands now (shared.status); never raises for provider or network
        failures. ``previous_expiry`` (COS only) is the expiry of an earlier restore, known to
        the caller: it is how an expired restore is told from one never made."""


def outcome_for(
    request: CosRestoreRequest | GcsRestoreRequest, status: OutcomeStatus, **fields: Any
) -> Outcome:
    """An outcome that carries the request's identity (ids, bucket, key, context)."""
    base: dict[str, Any] = {
        "request_id": request.request_id,
        "provider": request.provider,
        "bucket": request.bucket,
        "key": request.object_key,
        "context": request.context,
        "callback_url": str(request.callback_url) if request.callback_url else None,
    }
    if isinstance(request, CosRestoreRequest):
        base.update(
            region=request.region, version_id=request.version_id, tier=request.tier,
            days=request.days,
        )
    else:
        base.update(generation=request.generation)
    base.update(fields)
    return Outcome(status=status, **base)


def failure(
    request: CosRestoreRequest | GcsRestoreRequest,
    code: ErrorCode,
    message: str,
    *,
    status: OutcomeStatus = OutcomeStatus.FAILED,
    retryable: bool = False,
    http_status: int | None = None,
    provider_code: str | None = None,
    provider_request_id: str | None = None,
    **fields: Any,
) -> Outcome:
    error = ErrorInfo(
        code=code,
        message=message,
        retryable=retryable,
        http_status=http_status,
        provider_code=provider_code,
        provider_request_id=provider_request_id,
    )
    return outcome_for(request, status, error=error, **fields)


def network_failure(
    request: CosRestoreRequest | GcsRestoreRequest, exc: BaseException, **fields: Any
) -> Outcome:
    """A retryable failure for a provider that could not be reached (reset, refused, timeout)."""
    error = network_error(request.provider, exc)
    return failure(request, error.code, error.message, retryable=True, **fields)


def network_error(provider: str, exc: BaseException) -> ErrorInfo:
    """The retryable error of a provider that could not be reached (reset, refused, timeout)."""
    text = f"{type(exc).__name__} {exc}".lower()
    timed_out = "timeout" in text or "timed out" in text
    code = ErrorCode.TIMEOUT if timed_out else ErrorCode.NETWORK_ERROR
    name = "COS" if provider == "cos" else "GCS"
    return ErrorInfo(code=code, message=f"could not reach {name} ({code.value})", retryable=True)


_CODE_FOR_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.ACCESS_DENIED,
    403: ErrorCode.ACCESS_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.NOT_ARCHIVED,  # COS: RestoreNonArchiveObject
    409: ErrorCode.CONFLICT,
    412: ErrorCode.PRECONDITION_FAILED,
    429: ErrorCode.THROTTLED,
}


def code_for_status(http_status: int | None) -> ErrorCode:
    """Our error code when the provider's own code is missing or unknown."""
    if http_status is None:
        return ErrorCode.NETWORK_ERROR
    if http_status in _CODE_FOR_STATUS:
        return _CODE_FOR_STATUS[http_status]
    return ErrorCode.PROVIDER_ERROR


def is_retryable_status(http_status: int | None) -> bool:
    """429, 5xx (and no status at all: a network failure) are worth another attempt."""
    return http_status is None or http_status == 429 or http_status >= 500
