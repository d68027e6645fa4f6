"""Where an object stands, for both providers: one query model, one answer model.

``StatusQuery`` names an object the way a restore request does (same field names, aliases,
naming rules and provider inference, and the same structured field errors when it is wrong);
``ObjectStatus`` says what state the object is in, one vocabulary for both clouds:

======================= ======== ============================================================
state                   provider meaning
======================= ======== ============================================================
``not_found``           both     no such object (or bucket)
``not_archived``        cos      readable as it is (``storage_class`` says which)
``archived``            cos      archived, no restored copy (never restored, as far as we know)
``restoring``           cos      a restore is running (``tier``, ``requested_at`` when COS says)
``restored``            cos      a restored copy is readable until ``expiry_time``
``restore_expired``     cos      a restored copy existed and its ``expiry_time`` has passed
``live``                gcs      a live generation (``live_generation``); soft-deleted ones too
``soft_deleted``        gcs      no live object; ``soft_deleted_generations`` can be restored
``soft_delete_disabled`` gcs     no live object and the bucket keeps no soft-deleted copies
``unknown``             both     the state could not be read: ``error`` says why
======================= ======== ============================================================

``restore_expired`` needs history: real COS drops ``x-cos-restore`` once the restored copy
expires, after which an expired object looks exactly like one never restored. The caller that
remembers restores (a ledger) passes the last known expiry as ``previous_expiry``; an archived
object without a restore header whose ``previous_expiry`` has passed is ``restore_expired``. A
header whose ``expiry-date`` has already passed (COS has not dropped it yet) is
``restore_expired`` too, no history needed.

Nothing here imports a provider SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
)

from shared import names
from shared.outcome import ErrorCode, ErrorInfo
from shared.restore_requests import provider_of
from shared.validation import FieldProblem, RequestValidationError, problems_from


def as_utc(value: datetime | None) -> datetime | None:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- the query ---------------------------------------------------------------------------------
class _QueryBase(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class CosStatusQuery(_QueryBase):
    """A Tencent COS object: bucket, region and key, as in a restore request."""

    provider: Literal["cos"] = "cos"
    bucket: Annotated[str, AfterValidator(names.check_cos_bucket)] = Field(
        validation_alias=AliasChoices("bucket", "Bucket"),
        description="BucketName-APPID, e.g. examplebucket-1250000000.",
    )
    region: Annotated[str, AfterValidator(names.check_cos_region)] = Field(
        validation_alias=AliasChoices("region", "Region"), description="e.g. ap-guangzhou."
    )
    key: Annotated[str, AfterValidator(names.check_cos_key)] = Field(
        validation_alias=AliasChoices("key", "Key"), description="Object key."
    )
    version_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        validation_alias=AliasChoices("version_id", "versionId", "VersionId"),
    )
    previous_expiry: Annotated[datetime | None, AfterValidator(as_utc)] = Field(
        default=None,
        validation_alias=AliasChoices("previous_expiry", "previousExpiry"),
        description=(
            "Expiry of an earlier restore of this object, from the caller's own records: lets "
            "an expired restore be told from one never made (COS forgets it). Naive = UTC."
        ),
    )

    @property
    def object_key(self) -> str:
        return self.key


class GcsStatusQuery(_QueryBase):
    """A Google Cloud Storage object: bucket and object name, as in a restore request."""

    provider: Literal["gcs"] = "gcs"
    bucket: Annotated[str, AfterValidator(names.check_gcs_bucket)]
    object: Annotated[str, AfterValidator(names.check_gcs_object)] = Field(
        validation_alias=AliasChoices("object", "name", "object_name"),
        description="Object name: 1-1024 bytes of UTF-8, no CR or LF.",
    )

    @property
    def object_key(self) -> str:
        return self.object


AnyStatusQuery = CosStatusQuery | GcsStatusQuery

_COS_SPELLINGS = frozenset(
    {"Bucket", "Region", "region", "Key", "key", "VersionId", "versionId", "version_id",
     "previous_expiry", "previousExpiry"}
)
_GCS_SPELLINGS = frozenset({"object", "name", "object_name"})


def _provider_of(value: Any) -> str | None:
    """The explicit ``provider``, else the one whose field names the query uses."""
    if isinstance(value, BaseModel):
        return getattr(value, "provider", None)
    if not isinstance(value, dict):
        return None
    return provider_of(value, _COS_SPELLINGS, _GCS_SPELLINGS)


StatusQuery = Annotated[
    Annotated[CosStatusQuery, Tag("cos")] | Annotated[GcsStatusQuery, Tag("gcs")],
    Discriminator(
        _provider_of,
        custom_error_type="provider",
        custom_error_message="provider must be 'cos' or 'gcs' (or use one provider's field names)",
        custom_error_context={"discriminator": "provider"},
    ),
]

STATUS_QUERY_ADAPTER: TypeAdapter[CosStatusQuery | GcsStatusQuery] = TypeAdapter(StatusQuery)


def parse_status_query(payload: Any) -> AnyStatusQuery:
    """A validated query, or RequestValidationError listing every failing field."""
    if isinstance(payload, CosStatusQuery | GcsStatusQuery):
        return payload
    if not isinstance(payload, Mapping):
        raise RequestValidationError(
            [FieldProblem(loc=[], field="(body)", reason="must be a JSON object", type="dict_type")]
        )
    try:
        return STATUS_QUERY_ADAPTER.validate_python(dict(payload))
    except ValidationError as exc:
        raise RequestValidationError(problems_from(exc)) from None


# -- the answer --------------------------------------------------------------------------------
class StatusState(str, Enum):
    NOT_FOUND = "not_found"
    NOT_ARCHIVED = "not_archived"  # cos
    ARCHIVED = "archived"  # cos
    RESTORING = "restoring"  # cos
    RESTORED = "restored"  # cos
    RESTORE_EXPIRED = "restore_expired"  # cos
    LIVE = "live"  # gcs
    SOFT_DELETED = "soft_deleted"  # gcs
    SOFT_DELETE_DISABLED = "soft_delete_disabled"  # gcs
    UNKNOWN = "unknown"  # could not be read: see ``error``


class SoftDeletedGeneration(BaseModel):
    """One soft-deleted generation of a GCS object: restorable until ``hard_delete_time``."""

    model_config = ConfigDict(frozen=True)

    generation: int
    soft_delete_time: datetime | None = None
    hard_delete_time: datetime | None = None
    size: int | None = None
    restore_token: str | None = Field(
        default=None, description="Hierarchical-namespace buckets only: needed to restore."
    )


class ObjectStatus(BaseModel):
    """Where one object stands. ``state`` is always set; ``error`` only when it is ``unknown``."""

    model_config = ConfigDict(frozen=True)

    state: StatusState
    provider: Literal["cos", "gcs"] | None = None
    bucket: str | None = None
    key: str | None = Field(default=None, description="COS key or GCS object name.")
    region: str | None = None
    version_id: str | None = None
    message: str | None = Field(default=None, description="A sentence for people.")
    storage_class: str | None = None
    storage_tier: str | None = Field(
        default=None, description="COS intelligent tiering: the tier the object sits in."
    )
    size: int | None = None
    tier: str | None = Field(default=None, description="COS: tier of the running restore.")
    requested_at: datetime | None = Field(
        default=None, description="COS: when the running restore was requested."
    )
    expiry_time: datetime | None = Field(
        default=None,
        description="COS: when the restored copy expires (restored) or expired (restore_expired).",
    )
    live_generation: int | None = Field(default=None, description="GCS: the live generation.")
    soft_deleted_generations: list[SoftDeletedGeneration] | None = Field(
        default=None, description="GCS: restorable generations, newest first."
    )
    soft_delete_retention_seconds: int | None = Field(
        default=None,
        description="GCS: the bucket's soft delete retention, when it was read (0 = off).",
    )
    checked_at: datetime = Field(default_factory=utcnow)
    attempts: int = 0
    error: ErrorInfo | None = None

    @property
    def retryable(self) -> bool:
        return self.error is not None and self.error.retryable


def status_of(query: AnyStatusQuery, state: StatusState, **fields: Any) -> ObjectStatus:
    """A status that carries the query's identity (provider, bucket, key, region, version)."""
    base: dict[str, Any] = {
        "provider": query.provider,
        "bucket": query.bucket,
        "key": query.object_key,
    }
    if isinstance(query, CosStatusQuery):
        base.update(region=query.region, version_id=query.version_id)
    base.update(fields)
    return ObjectStatus(state=state, **base)


def status_error(query: AnyStatusQuery, error: ErrorInfo, **fields: Any) -> ObjectStatus:
    return status_of(query, StatusState.UNKNOWN, error=error, message=error.message, **fields)


def status_rejected(exc: RequestValidationError) -> ObjectStatus:
    """The answer to a query that failed validation (the same field list as a restore)."""
    error = ErrorInfo(code=ErrorCode.VALIDATION_FAILED, message=exc.message, fields=exc.problems)
    return ObjectStatus(state=StatusState.UNKNOWN, message=exc.message, error=error)
