"""GCS error rows that the emulator cannot produce: older spellings of the same failures."""

from __future__ import annotations

from google.api_core import exceptions

from shared.config import GcsSettings
from shared.outcome import ErrorCode
from shared.providers.gcs import GcsAdapter
from shared.validation import parse_request

REQUEST = parse_request({"provider": "gcs", "bucket": "my-bucket", "object": "o"})


def mapped(exc: exceptions.GoogleAPICallError) -> ErrorCode:
    outcome = GcsAdapter(GcsSettings())._api_failure(REQUEST, exc)
    return outcome.error.code


def test_older_412_soft_delete_policy_not_set_is_soft_delete_not_enabled():
    exc = exceptions.PreconditionFailed(
        "Soft delete policy is not set", errors=[{"reason": "softDeletePolicyNotSet"}]
    )
    assert mapped(exc) is ErrorCode.SOFT_DELETE_NOT_ENABLED


def test_400_mentioning_soft_delete_without_a_reason_is_soft_delete_not_enabled():
    assert mapped(exceptions.BadRequest("Bucket has no soft delete policy")) is (
        ErrorCode.SOFT_DELETE_NOT_ENABLED
    )


def test_unknown_5xx_is_retryable_provider_error():
    outcome = GcsAdapter(GcsSettings())._api_failure(
        REQUEST, exceptions.InternalServerError("boom")
    )
    assert outcome.error.code is ErrorCode.PROVIDER_ERROR
    assert outcome.error.retryable is True
