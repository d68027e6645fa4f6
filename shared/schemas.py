"""The restore request: one model, discriminated by provider.

Callers may use our snake_case names or the providers' own spellings (``Days``,
``CASJobParameters.Tier``, ``Key``, ``ifGenerationMatch``, ``copySourceAcl``...), so a payload
copied from Tencent's or Google's documentation validates as it is. When ``provider`` is absent it
is inferred from which spelling the payload uses.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    HttpUrl,
    Tag,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from shared import names
from shared.restore_requests import (
    MAX_BATCH,
    MAX_CONTEXT_BYTES,
    MAX_CONTEXT_DEPTH,
    _check_context,
    _check_request_id,
    _depth,
    _new_request_id,
    provider_of,
)

__all__ = [
    "MAX_BATCH",
    "MAX_CONTEXT_BYTES",
    "MAX_CONTEXT_DEPTH",
    "RESTORE_REQUEST_ADAPTER",
    "CosRestoreRequest",
    "GcsRestoreRequest",
    "RestoreBatch",
    "RestoreRequest",
    "_check_context",
    "_check_request_id",
    "_depth",
    "_new_request_id",
]


class _RequestBase(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, str_strip_whitespace=False
    )

    request_id: Annotated[str, AfterValidator(_check_request_id)] = Field(
        default_factory=_new_request_id,
        validation_alias=AliasChoices("request_id", "requestId", "RequestId"),
        description="The caller's idempotency key; events and their ids derive from it.",
    )
    callback_url: HttpUrl | None = Field(
        default=None,
        validation_alias=AliasChoices("callback_url", "callbackUrl"),
        description="Where each phase's CloudEvent is also POSTed.",
    )
    context: Annotated[dict[str, Any] | None, AfterValidator(_check_context)] = Field(
        default=None,
        description="Free-form JSON object echoed untouched in every event, for correlation.",
    )


class CosRestoreRequest(_RequestBase):
    """Restore an archived Tencent COS object (POST Object restore)."""

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
    days: int = Field(
        ge=1,
        le=365,
        validation_alias=AliasChoices("days", "Days", AliasPath("RestoreRequest", "Days")),
        description="How long the restored copy stays readable.",
    )
    tier: Literal["Expedited", "Standard", "Bulk"] = Field(
        default="Standard",
        validation_alias=AliasChoices(
            "tier",
            "Tier",
            AliasPath("CASJobParameters", "Tier"),
            AliasPath("RestoreRequest", "CASJobParameters", "Tier"),
        ),
    )
    version_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        validation_alias=AliasChoices("version_id", "versionId", "VersionId"),
    )


class GcsRestoreRequest(_RequestBase):
    """Restore a soft-deleted Google Cloud Storage object (objects.restore)."""

    provider: Literal["gcs"] = "gcs"
    bucket: Annotated[str, AfterValidator(names.check_gcs_bucket)]
    object: Annotated[str, AfterValidator(names.check_gcs_object)] = Field(
        validation_alias=AliasChoices("object", "name", "object_name"),
        description="Object name: 1-1024 bytes of UTF-8, no CR or LF.",
    )
    generation: int | None = Field(
        default=None,
        gt=0,
        description="Soft-deleted generation; when absent the newest one of this name is used.",
    )
    copy_source_acl: bool | None = Field(
        default=None, validation_alias=AliasChoices("copy_source_acl", "copySourceAcl")
    )
    projection: Literal["full", "noAcl"] | None = None
    if_generation_match: int | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("if_generation_match", "ifGenerationMatch"),
    )
    if_generation_not_match: int | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("if_generation_not_match", "ifGenerationNotMatch"),
    )
    if_metageneration_match: int | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("if_metageneration_match", "ifMetagenerationMatch"),
    )
    if_metageneration_not_match: int | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("if_metageneration_not_match", "ifMetagenerationNotMatch"),
    )
    restore_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        validation_alias=AliasChoices("restore_token", "restoreToken"),
        description="Hierarchical-namespace buckets only.",
    )
    allow_overwrite: bool = Field(
        default=False,
        validation_alias=AliasChoices("allow_overwrite", "allowOverwrite"),
        description="Replace a live object of the same name. Off by default: ifGenerationMatch=0.",
        validate_default=True,
    )

    @field_validator(
        "generation",
        "if_generation_match",
        "if_generation_not_match",
        "if_metageneration_match",
        "if_metageneration_not_match",
        mode="before",
    )
    @classmethod
    def _int64_from_string(cls, value: Any) -> Any:
        # The JSON API spells int64 values as strings ("generation": "1700000000000000").
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return value

    @field_validator("allow_overwrite")
    @classmethod
    def _overwrite_needs_consent(cls, allow: bool, info: ValidationInfo) -> bool:
        # Declared last, so every precondition has been validated by the time this runs.
        data = info.data
        needs_live_object = (
            data.get("if_generation_match") not in (None, 0)
            or data.get("if_generation_not_match") is not None
            or data.get("if_metageneration_match") is not None
            or data.get("if_metageneration_not_match") is not None
        )
        if needs_live_object and not allow:
            raise ValueError(
                "must be true when preconditions on a live object are given: they imply "
                "replacing it"
            )
        return allow


def _provider_of(value: Any) -> str | None:
    """Pick the union member: the explicit ``provider``, else the spelling the payload uses."""
    if isinstance(value, BaseModel):
        return getattr(value, "provider", None)
    if not isinstance(value, dict):
        return None
    return provider_of(value)


RestoreRequest = Annotated[
    Annotated[CosRestoreRequest, Tag("cos")] | Annotated[GcsRestoreRequest, Tag("gcs")],
    Discriminator(
        _provider_of,
        custom_error_type="provider",
        custom_error_message="provider must be 'cos' or 'gcs' (or use one provider's field names)",
        custom_error_context={"discriminator": "provider"},
    ),
]


class RestoreBatch(BaseModel):
    """Several restore requests in one message or webhook body."""

    model_config = ConfigDict(extra="forbid")

    requests: list[RestoreRequest] = Field(min_length=1, max_length=MAX_BATCH)


RESTORE_REQUEST_ADAPTER: TypeAdapter[CosRestoreRequest | GcsRestoreRequest] = TypeAdapter(
    RestoreRequest
)
