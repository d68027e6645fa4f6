"""The bulk job and the chunk messages it fans out into.

A job names one bucket and a selection (a listing by prefix and globs, a manifest object, or an
inline list), the restore parameters every object gets, where the report goes and how fast the
job may go. Chunks carry the job's parameters (not its selection) and up to a few hundred
objects each, so a worker needs nothing but its message.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

from shared import names
from shared.restore_requests import _check_context, _check_request_id

MAX_INLINE_OBJECTS = 10_000
MAX_GLOBS = 50
DEFAULT_CHUNK_SIZE = 500
MAX_CHUNK_SIZE = 1_000


def _new_job_id() -> str:
    return "job-" + uuid.uuid4().hex[:16]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ObjectRef(_Frozen):
    """One object named by a manifest or an inline list (or found by a listing)."""

    key: str = Field(
        min_length=1, max_length=1024,
        validation_alias=AliasChoices("key", "Key", "object", "name"),
    )
    version_id: str | None = Field(
        default=None, min_length=1, max_length=128,
        validation_alias=AliasChoices("version_id", "versionId", "VersionId"),
    )
    generation: int | None = Field(default=None, gt=0)
    # Known from a listing: lets a COS worker skip the HEAD it would otherwise need.
    storage_class: str | None = Field(default=None, max_length=64)

    @field_validator("generation", mode="before")
    @classmethod
    def _int64_from_string(cls, value: Any) -> Any:
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return value


class ManifestRef(_Frozen):
    """A CSV (``key[,version]`` or S3-style ``bucket,key[,version]``) or JSONL object."""

    bucket: str | None = Field(default=None, description="Default: the job's bucket.")
    key: str = Field(min_length=1, max_length=1024)
    format: Literal["csv", "jsonl"] | None = Field(
        default=None, description="Default: from the key's suffix (.csv, .jsonl/.ndjson)."
    )

    def resolved_format(self) -> Literal["csv", "jsonl"]:
        if self.format is not None:
            return self.format
        return "jsonl" if self.key.lower().endswith((".jsonl", ".ndjson", ".json")) else "csv"


class Selection(_Frozen):
    """Which objects: a listing (prefix, globs, filters), a manifest, or an inline list."""

    prefix: str = Field(default="", max_length=1024)
    globs: list[str] = Field(default_factory=list, max_length=MAX_GLOBS)
    manifest: ManifestRef | None = None
    objects: list[ObjectRef] | None = Field(default=None, min_length=1,
                                            max_length=MAX_INLINE_OBJECTS)
    # GCS listings only: the soft-deleted generation's softDeleteTime / timeCreated window,
    # both bounds exclusive (as objects.bulkRestore reads them); no offset means UTC.
    soft_deleted_after: datetime | None = None
    soft_deleted_before: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    # COS only: which storage classes to restore (default: every archive class).
    storage_classes: list[str] | None = Field(default=None, min_length=1, max_length=10)

    @field_validator("storage_classes")
    @classmethod
    def _upper(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.strip().upper() for v in value]

    @field_validator("soft_deleted_after", "soft_deleted_before", "created_after",
                     "created_before")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without an offset is UTC (GCS's times are; comparing naive and aware fails)."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Selection:
        listed = bool(self.prefix or self.globs)
        sources = [listed and "prefix/globs", self.manifest and "manifest",
                   self.objects and "objects"]
        chosen = [s for s in sources if s]
        if len(chosen) > 1:
            raise ValueError(f"choose one of prefix/globs, manifest or objects, not {chosen}")
        times = (self.soft_deleted_after, self.soft_deleted_before, self.created_after,
                 self.created_before)
        if not self.is_listing and any(t is not None for t in times):
            raise ValueError("soft_deleted_*/created_* filter a listing (prefix/globs); a "
                             "manifest or an inline list names its objects itself")
        for after, before, name in ((self.soft_deleted_after, self.soft_deleted_before,
                                     "soft_deleted"),
                                    (self.created_after, self.created_before, "created")):
            if after is not None and before is not None and after >= before:
                raise ValueError(f"{name}_after must be earlier than {name}_before")
        return self

    @property
    def is_listing(self) -> bool:
        return self.manifest is None and self.objects is None


class ReportDestination(_Frozen):
    """Where the per-object rows go: a bucket of the job's provider and a prefix."""

    bucket: str
    prefix: str = Field(default="restorefn-reports", max_length=512)

    @field_validator("prefix")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip("/")


class Limits(_Frozen):
    requests_per_second: float | None = Field(
        default=None, gt=0, le=10_000,
        description="Upper bound for the whole job; default: the provider's configured limit.",
    )
    max_objects: int | None = Field(default=None, ge=1)
    chunk_size: int = Field(default=DEFAULT_CHUNK_SIZE, ge=1, le=MAX_CHUNK_SIZE)


class JobParams(_Frozen):
    """Everything a worker needs about its job: carried in every chunk message."""

    job_id: Annotated[str, AfterValidator(_check_request_id)] = Field(
        default_factory=_new_job_id, validation_alias=AliasChoices("job_id", "jobId"),
    )
    provider: Literal["cos", "gcs"]
    bucket: str = Field(validation_alias=AliasChoices("bucket", "Bucket"))
    region: str | None = Field(default=None, validation_alias=AliasChoices("region", "Region"))
    days: int | None = Field(default=None, ge=1, le=365,
                             validation_alias=AliasChoices("days", "Days"))
    tier: Literal["Expedited", "Standard", "Bulk"] = Field(
        default="Standard", validation_alias=AliasChoices("tier", "Tier"))
    copy_source_acl: bool | None = Field(
        default=None, validation_alias=AliasChoices("copy_source_acl", "copySourceAcl"))
    allow_overwrite: bool = Field(
        default=False, validation_alias=AliasChoices("allow_overwrite", "allowOverwrite"))
    report: ReportDestination | None = None
    callback_url: HttpUrl | None = Field(
        default=None, validation_alias=AliasChoices("callback_url", "callbackUrl"))
    context: Annotated[dict[str, Any] | None, AfterValidator(_check_context)] = None

    @model_validator(mode="after")
    def _provider_fields(self) -> JobParams:
        if self.provider == "cos":
            names.check_cos_bucket(self.bucket)
            if self.region is None:
                raise ValueError("region is required for a COS job")
            names.check_cos_region(self.region)
            if self.days is None:
                raise ValueError("days is required for a COS job")
            if self.allow_overwrite or self.copy_source_acl is not None:
                raise ValueError("allow_overwrite and copy_source_acl are GCS options")
        else:
            names.check_gcs_bucket(self.bucket)
            if self.region is not None or self.days is not None:
                raise ValueError("region and days are COS options")
        if self.report is not None:
            check = names.check_cos_bucket if self.provider == "cos" else names.check_gcs_bucket
            check(self.report.bucket)
        return self

    @property
    def report_key_prefix(self) -> str:
        """``PREFIX/JOB_ID``: every file of this job's report lives under it."""
        assert self.report is not None
        base = self.report.prefix
        return f"{base}/{self.job_id}" if base else self.job_id


class BulkJob(JobParams):
    """A bulk restore request: accepted by the webhook, the queue functions and the CLI."""

    kind: Literal["restorefn.bulk.v1"] = "restorefn.bulk.v1"
    selection: Selection = Field(default_factory=Selection)
    dry_run: bool = Field(default=False, validation_alias=AliasChoices("dry_run", "dryRun"))
    limits: Limits = Field(default_factory=Limits)
    mode: Literal["auto", "per_object", "server_side"] = Field(
        default="auto",
        description="GCS: server_side uses objects.bulkRestore; auto uses it when it fits.",
    )

    @model_validator(mode="after")
    def _selection_fits_provider(self) -> BulkJob:
        sel = self.selection
        gcs_only = [sel.soft_deleted_after, sel.soft_deleted_before, sel.created_after,
                    sel.created_before]
        if self.provider == "cos" and any(v is not None for v in gcs_only):
            raise ValueError("soft_deleted_*/created_* filters are GCS selections")
        if self.provider == "gcs" and sel.storage_classes is not None:
            raise ValueError("storage_classes is a COS selection")
        if self.mode == "server_side" and (self.provider != "gcs" or not sel.is_listing):
            raise ValueError("mode server_side needs a GCS listing selection (prefix/globs)")
        if self.report is None and not self.dry_run:
            raise ValueError("report (bucket, prefix) is required unless dry_run")
        return self

    def params(self) -> JobParams:
        return JobParams.model_validate(
            self.model_dump(include=set(JobParams.model_fields), by_alias=False)
        )


class BulkChunk(_Frozen):
    """One chunk message: a slice of the job's objects for one worker invocation."""

    kind: Literal["restorefn.bulk.chunk.v1"] = "restorefn.bulk.chunk.v1"
    job: JobParams
    chunk_id: str = Field(pattern=r"^c[0-9]{6}(\.r[0-9]+)*$")
    attempt: int = Field(default=1, ge=1, le=100)
    # Requests per second this worker may send (the job's rate over the maximum instances).
    rate: float = Field(gt=0, le=10_000)
    items: list[ObjectRef] = Field(min_length=1, max_length=MAX_CHUNK_SIZE)

    @property
    def root_id(self) -> str:
        """The planner's chunk id: leftovers of c000007 are c000007.r2, c000007.r2.r3..."""
        return self.chunk_id.split(".", 1)[0]


class OperationPoll(_Frozen):
    """A delayed look at a GCS bulkRestore operation, sent through the re-check transport
    (Cloud Tasks, TDMQ delayed messages) until the operation is done."""

    kind: Literal["restorefn.bulk.poll.v1"] = "restorefn.bulk.poll.v1"
    job: JobParams
    poll: int = Field(default=1, ge=1, le=1000)






