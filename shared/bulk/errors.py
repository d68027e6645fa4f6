"""Why a bulk submission or progress read failed, as the ``ErrorInfo`` every entry point maps.

``BulkService.submit`` and ``progress`` raise whatever stopped them: a refusal (``BulkRefused``),
a configuration gap, the chunk queue or the report store failing, or the provider's own
exception from a listing or a manifest read (their SDKs' exception types: the planner streams
straight from the clients). The webhook turns the result into a status code and the CLI into an
exit code, so both classify the same way. Validation errors (``RequestValidationError``) are not
handled here: they carry their field list and every entry point answers them on their own.
"""

from __future__ import annotations

import sys

from shared.config import ConfigurationError
from shared.ledger.stores import StoreError
from shared.outcome import ErrorCode, ErrorInfo


def refusal_code(exc: BaseException) -> ErrorCode:
    """A BulkRefused is either an allowlist refusal or a missing chunk queue."""
    code = getattr(exc, "code", None)
    if isinstance(code, ErrorCode):
        return code
    return ErrorCode.CONFIGURATION if "queue" in str(exc) else ErrorCode.BUCKET_NOT_ALLOWED


def bulk_error(exc: BaseException) -> ErrorInfo | None:
    """The error ``exc`` stands for, or None when it is not a known failure (a bug)."""
    from shared.bulk.queues import QueueError
    from shared.bulk.service import BulkRefused

    if isinstance(exc, BulkRefused):
        return ErrorInfo(code=refusal_code(exc), message=str(exc))
    if isinstance(exc, ConfigurationError):
        return ErrorInfo(code=ErrorCode.CONFIGURATION, message=str(exc))
    if isinstance(exc, QueueError):
        return ErrorInfo(code=ErrorCode.PROVIDER_ERROR, retryable=True,
                         message=f"a chunk could not be queued ({exc})")
    if isinstance(exc, StoreError):
        return ErrorInfo(code=ErrorCode.PROVIDER_ERROR, retryable=True, message=str(exc))
    return _provider_error(exc)


def _provider_error(exc: BaseException) -> ErrorInfo | None:
    """An SDK exception from a listing or a manifest read; only SDKs already loaded are
    looked at (nothing is imported to classify an error)."""
    cos = sys.modules.get("qcloud_cos.cos_exception")
    if cos is not None:
        if isinstance(exc, cos.CosServiceError):
            from shared.providers.cos import CosAdapter

            error, _ = CosAdapter._service_error(exc)
            return error
        if isinstance(exc, cos.CosClientError):
            return ErrorInfo(code=ErrorCode.NETWORK_ERROR, retryable=True,
                             message=f"COS could not be reached ({type(exc).__name__})")
    google = sys.modules.get("google.api_core.exceptions")
    if google is not None and isinstance(exc, google.GoogleAPICallError):
        from shared.providers.gcs import GcsAdapter

        return GcsAdapter._api_error(exc)
    auth = sys.modules.get("google.auth.exceptions")
    if auth is not None:
        if isinstance(exc, auth.DefaultCredentialsError):
            return ErrorInfo(code=ErrorCode.CONFIGURATION,
                             message="no Google credentials (Application Default Credentials)")
        if isinstance(exc, auth.TransportError):
            return ErrorInfo(code=ErrorCode.NETWORK_ERROR, retryable=True,
                             message="GCS could not be reached")
    requests = sys.modules.get("requests")
    if requests is not None and isinstance(exc, requests.RequestException):
        return ErrorInfo(code=ErrorCode.NETWORK_ERROR, retryable=True,
                         message=f"the provider could not be reached ({type(exc).__name__})")
    if isinstance(exc, TimeoutError):
        return ErrorInfo(code=ErrorCode.TIMEOUT, retryable=True,
                         message="the provider did not answer in time")
    if isinstance(exc, ConnectionError):
        return ErrorInfo(code=ErrorCode.NETWORK_ERROR, retryable=True,
                         message=f"the provider could not be reached ({type(exc).__name__})")
    return None
