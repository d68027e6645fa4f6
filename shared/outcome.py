"""One normalized outcome for both providers.

Whatever the provider answered (a COS 202, a GCS 412, a reset connection) becomes one of six
statuses, so webhooks, queues and workflows branch on one vocabulary.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, Literal

from shared.records import Readers, Record, described, read_datetime, record
from shared.validation import FieldProblem


class OutcomeStatus(str, Enum):
    INITIATED = "initiated"  # COS accepted a restore job (202)
    IN_PROGRESS = "in_progress"  # COS restore already running (409)
    ALREADY_RESTORED = "already_restored"  # copy already readable / duplicate of a done restore
    COMPLETED = "completed"  # GCS new live generation; a finished COS restore
    REJECTED = "rejected"  # refused before any provider call could help
    FAILED = "failed"  # the provider refused or could not be reached

    @property
    def terminal(self) -> bool:
        """Whether this status ends the request's life (initiated still awaits completion)."""
        return self not in (OutcomeStatus.INITIATED, OutcomeStatus.IN_PROGRESS)


class ErrorCode(str, Enum):
    VALIDATION_FAILED = "validation_failed"
    BUCKET_NOT_ALLOWED = "bucket_not_allowed"
    NOT_ARCHIVED = "not_archived"
    TIER_NOT_SUPPORTED = "tier_not_supported"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PRECONDITION_FAILED = "precondition_failed"
    OBJECT_NOT_SOFT_DELETED = "object_not_soft_deleted"
    SOFT_DELETE_NOT_ENABLED = "soft_delete_not_enabled"
    RETENTION_POLICY_NOT_MET = "retention_policy_not_met"
    ACCESS_DENIED = "access_denied"
    BAD_REQUEST = "bad_request"
    NOT_RESTORED = "not_restored"
    THROTTLED = "throttled"
    PROVIDER_ERROR = "provider_error"
    NETWORK_ERROR = "network_error"
    TIMEOUT = "timeout"
    CONFIGURATION = "configuration"
    # Another delivery of the same request_id is being processed right now (shared.ledger).
    DUPLICATE_IN_FLIGHT = "duplicate_in_flight"


@record
class ErrorInfo(Record):
    _readers: ClassVar[Readers] = {
        "code": ErrorCode,
        "fields": lambda items: [FieldProblem.model_validate(item) for item in items],
    }

    code: ErrorCode
    message: str
    retryable: bool = False
    http_status: int | None = None
    provider_code: str | None = None
    provider_request_id: str | None = None
    fields: list[FieldProblem] | None = None


_WHEN = ("expiry_time", "expected_completion_after", "expected_completion_before")


@record
class RestoreFacts(Record):
    """What is known about one restore: shared by the outcome and the event's ``data``."""

    _readers: ClassVar[Readers] = {
        **dict.fromkeys(_WHEN, read_datetime), "error": ErrorInfo.model_validate}

    request_id: str
    provider: Literal["cos", "gcs"] | None = None
    bucket: str | None = None
    key: str | None = None
    region: str | None = None
    version_id: str | None = None
    generation: int | None = described("Source (soft-deleted) generation.")
    restored_generation: int | None = None
    storage_class: str | None = None
    tier: str | None = None
    days: int | None = None
    expiry_time: datetime | None = None
    expected_completion_after: datetime | None = None
    expected_completion_before: datetime | None = None
    context: dict[str, Any] | None = None
    error: ErrorInfo | None = None


@record
class Outcome(RestoreFacts):
    """What became of one restore request."""

    _readers: ClassVar[Readers] = {**RestoreFacts._readers, "status": OutcomeStatus}

    status: OutcomeStatus
    attempts: int = 0
    # Where this request's events are also POSTed (shared.callbacks); never part of an event.
    callback_url: str | None = None

    @property
    def retryable(self) -> bool:
        return self.error is not None and self.error.retryable
