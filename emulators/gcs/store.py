"""The state of the GCS emulator: buckets, every generation of every object, and bulk restores.

Everything here is wire-format independent except for the resource dictionaries, which are
shaped exactly as the JSON API returns them (int64 fields as strings, RFC 3339 times). The HTTP
layer in ``server.py`` only parses requests and serialises these.

One lock guards the whole store; every public method takes it, so a request is atomic.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import google_crc32c

from .._http import VirtualClock

LIVE = "live"
NONCURRENT = "noncurrent"
SOFT_DELETED = "soft-deleted"

DEFAULT_SOFT_DELETE_SECONDS = 604_800  # 7 days
MIN_SOFT_DELETE_SECONDS = 7 * 86_400
MAX_SOFT_DELETE_SECONDS = 90 * 86_400
MAX_NAME_BYTES = 1024
MAX_LIST_RESULTS = 1000

# Object fields a client may set on upload or patch, kept verbatim.
SETTABLE_FIELDS = (
    "cacheControl",
    "contentDisposition",
    "contentEncoding",
    "contentLanguage",
    "customTime",
    "metadata",
)

# As the JSON API answers (operations of a bucket are storage control v2 messages, in JSON).
_CONTROL_V2 = "type.googleapis.com/google.storage.control.v2."
BULK_RESTORE_METADATA_TYPE = _CONTROL_V2 + "BulkRestoreObjectsMetadata"
BULK_RESTORE_RESPONSE_TYPE = _CONTROL_V2 + "BulkRestoreObjectsResponse"
CANCELLED_MESSAGE = "The long-running operation has been cancelled by the user."

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


class GcsError(Exception):
    """An API failure: rendered as the GCS JSON error body by the server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def not_found(message: str = "Not Found") -> GcsError:
    return GcsError(404, "notFound", message)


def invalid(message: str) -> GcsError:
    return GcsError(400, "invalid", message)


def condition_not_met() -> GcsError:
    return GcsError(
        412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold."
    )


# ---------------------------------------------------------------------------------------------
# Formatting helpers


def rfc3339(t: float) -> str:
    millis = int(t * 1000)
    secs, ms = divmod(millis, 1000)
    stamp = datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms:03d}Z"


def parse_rfc3339(value: Any, field_name: str) -> float:
    if not isinstance(value, str) or not value:
        raise invalid(f"Invalid value for {field_name}: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.10's fromisoformat only accepts 3 or 6 fraction digits: normalise to 6.
    match = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(.*)$", text)
    if match:
        frac = (match.group(2) or "")[:6].ljust(6, "0")
        text = f"{match.group(1)}.{frac}{match.group(3)}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"Invalid value for {field_name}: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def object_etag(generation: int, metageneration: int) -> str:
    # GCS object etags are the base64 of a tiny protobuf: field 1 = generation, 2 = metageneration.
    raw = b"\x08" + _varint(generation) + b"\x10" + _varint(metageneration)
    return base64.b64encode(raw).decode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def crc32c_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def quote_name(name: str) -> str:
    return quote(name.encode("utf-8"), safe=b"~")


def parse_int(value: Any, field_name: str) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise invalid(f"Invalid value for {field_name}: {value!r}") from None


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


# ---------------------------------------------------------------------------------------------
# matchGlob


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate a GCS ``matchGlob`` into a regex.

    ``*`` and ``?`` never cross ``/``; ``**`` does, and ``**/`` also matches no directory at all
    (``a/**/b`` matches ``a/b``); ``[abc]``, ``[a-z]``, ``[!a]`` (or ``[^a]``) are character
    classes that do not match ``/``; ``{x,y}`` is an alternation; ``\\`` escapes.
    """
    return re.compile(_glob_body(pattern) + r"\Z", re.DOTALL)


def _glob_body(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            elif pattern.startswith("**", i):
                out.append(".*")
                i += 2
            else:
                out.append("[^/]*")
                i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            j = pattern.find("]", j)
            if j < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1 : j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            body = body.replace("]", "\\]")
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = j + 1
        elif c == "{":
            j = pattern.find("}", i)
            if j < 0:
                out.append(re.escape(c))
                i += 1
                continue
            alternatives = pattern[i + 1 : j].split(",")
            out.append("(?:" + "|".join(_glob_body(a) for a in alternatives) + ")")
            i = j + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Model


@dataclass
class ObjectVersion:
    bucket: str
    name: str
    generation: int
    metageneration: int
    data: bytes
    content_type: str
    time_created: float
    updated: float
    fields: dict[str, Any] = field(default_factory=dict)
    state: str = LIVE
    time_deleted: float | None = None
    soft_delete_time: float | None = None
    hard_delete_time: float | None = None
    storage_class: str = "STANDARD"
    md5: str = ""
    crc32c: str = ""

    def __post_init__(self) -> None:
        if not self.md5:
            self.md5 = md5_b64(self.data)
        if not self.crc32c:
            self.crc32c = crc32c_b64(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def resource(self, base_url: str, retention_seconds: int | None = None) -> dict[str, Any]:
        quoted = quote_name(self.name)
        res: dict[str, Any] = {
            "kind": "storage#object",
            "id": f"{self.bucket}/{self.name}/{self.generation}",
            "selfLink": f"{base_url}/storage/v1/b/{self.bucket}/o/{quoted}",
            "mediaLink": (
                f"{base_url}/download/storage/v1/b/{self.bucket}/o/{quoted}"
                f"?generation={self.generation}&alt=media"
            ),
            "name": self.name,
            "bucket": self.bucket,
            "generation": str(self.generation),
            "metageneration": str(self.metageneration),
            "contentType": self.content_type,
            "storageClass": self.storage_class,
            "size": str(self.size),
            "md5Hash": self.md5,
            "crc32c": self.crc32c,
            "etag": object_etag(self.generation, self.metageneration),
            "timeCreated": rfc3339(self.time_created),
            "updated": rfc3339(self.updated),
            "timeStorageClassUpdated": rfc3339(self.time_created),
            "timeFinalized": rfc3339(self.time_created),
        }
        for key in SETTABLE_FIELDS:
            if self.fields.get(key) not in (None, {}):
                res[key] = self.fields[key]
        if retention_seconds:
            res["retentionExpirationTime"] = rfc3339(self.time_created + retention_seconds)
        if self.time_deleted is not None:
            res["timeDeleted"] = rfc3339(self.time_deleted)
        if self.state == SOFT_DELETED:
            res["softDeleteTime"] = rfc3339(self.soft_delete_time or 0.0)
            res["hardDeleteTime"] = rfc3339(self.hard_delete_time or 0.0)
        return res

    def summary(self) -> dict[str, Any]:
        """The python-friendly view used by ``generations()`` and the ``objects`` control verb."""
        return {
            "bucket": self.bucket,
            "name": self.name,
            "generation": self.generation,
            "metageneration": self.metageneration,
            "state": self.state,
            "size": self.size,
            "contentType": self.content_type,
            "md5Hash": self.md5,
            "crc32c": self.crc32c,
            "metadata": dict(self.fields.get("metadata") or {}),
            "timeCreated": rfc3339(self.time_created),
            "timeDeleted": None if self.time_deleted is None else rfc3339(self.time_deleted),
            "softDeleteTime": (
                None if self.soft_delete_time is None else rfc3339(self.soft_delete_time)
            ),
            "hardDeleteTime": (
                None if self.hard_delete_time is None else rfc3339(self.hard_delete_time)
            ),
        }


@dataclass
class Operation:
    """A bulkRestore long-running operation.

    ``body`` is the request body exactly as received (for tests to inspect); ``request`` its
    parsed form. Counts follow the documented ``BulkRestoreObjectsMetadata``: ``succeededCount``
    restored, ``failedCount`` could not be restored (a live object without allowOverwrite, a
    retention policy), ``skippedCount`` every other soft-deleted object of the bucket (outside
    the globs or times, or an older generation of a name whose newest matching one was chosen).
    """

    id: str
    bucket: str
    request: dict[str, Any]
    create_time: float
    update_time: float
    body: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    cancelled: bool = False
    end_time: float | None = None
    success_count: int = 0
    failed_count: int = 0
    skipped_count: int = 0
    bytes_restored: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    # Set by ``GcsEmulator.fail_operation``: the operation ends with this google.rpc.Status.
    error: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"projects/_/buckets/{self.bucket}/operations/{self.id}"

    def resource(self, base_url: str) -> dict[str, Any]:
        # Real GCS answers progressPercent -1 ("unknown") even once the operation is done.
        common: dict[str, Any] = {
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time),
            "type": "bulk-restore-objects",
            "requestedCancellation": self.cancelled,
            "progressPercent": -1,
        }
        if self.end_time is not None:
            common["endTime"] = rfc3339(self.end_time)
        metadata: dict[str, Any] = {"@type": BULK_RESTORE_METADATA_TYPE, "commonMetadata": common}
        if self.request.get("matchGlobs"):
            metadata["matchGlobs"] = list(self.request["matchGlobs"])
        metadata.update({
            "allowOverwrite": self.request.get("allowOverwrite", False),
            "copySourceAcl": self.request.get("copySourceAcl", False),
            "succeededCount": str(self.success_count),
            "skippedCount": str(self.skipped_count),
            "failedCount": str(self.failed_count),
        })
        res: dict[str, Any] = {
            "kind": "storage#operation",
            "name": self.name,
            "selfLink": f"{base_url}/storage/v1/b/{self.bucket}/operations/{self.id}",
            "done": self.done,
            "metadata": metadata,
        }
        if self.done and self.cancelled:
            res["error"] = {"code": 1, "message": CANCELLED_MESSAGE}
        elif self.done and self.error is not None:
            res["error"] = dict(self.error)
        elif self.done:
            res["response"] = {"@type": BULK_RESTORE_RESPONSE_TYPE}
        return res


@dataclass
class Bucket:
    name: str
    project: str
    time_created: float
    updated: float
    soft_delete_seconds: int = DEFAULT_SOFT_DELETE_SECONDS
    soft_delete_effective: float = 0.0
    versioning: bool = False
    retention_seconds: int | None = None
    retention_effective: float | None = None
    metageneration: int = 1
    objects: dict[str, list[ObjectVersion]] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    # The earliest hardDeleteTime of any soft-deleted version: purging is skipped until then
    # (a scan of every object on every request made a 55k-object bucket cost 14 ms a request).
    next_purge: float = math.inf

    def resource(self, base_url: str) -> dict[str, Any]:
        res: dict[str, Any] = {
            "kind": "storage#bucket",
            "id": self.name,
            "selfLink": f"{base_url}/storage/v1/b/{self.name}",
            "projectNumber": "0",
            "name": self.name,
            "timeCreated": rfc3339(self.time_created),
            "updated": rfc3339(self.updated),
            "metageneration": str(self.metageneration),
            "location": "US",
            "locationType": "multi-region",
            "storageClass": "STANDARD",
            "etag": base64.b64encode(b"\x08" + _varint(self.metageneration)).decode(),
            "versioning": {"enabled": self.versioning},
            "softDeletePolicy": {
                "retentionDurationSeconds": str(self.soft_delete_seconds),
                "effectiveTime": rfc3339(self.soft_delete_effective),
            },
            "iamConfiguration": {
                "uniformBucketLevelAccess": {"enabled": False},
                "publicAccessPrevention": "inherited",
            },
        }
        if self.retention_seconds is not None:
            res["retentionPolicy"] = {
                "retentionPeriod": str(self.retention_seconds),
                "effectiveTime": rfc3339(self.retention_effective or self.time_created),
            }
        return res

    def versions(self) -> Iterable[ObjectVersion]:
        for name in sorted(self.objects):
            yield from self.objects[name]

    def live(self, name: str) -> ObjectVersion | None:
        for v in self.objects.get(name, ()):
            if v.state == LIVE:
                return v
        return None

    def find(self, name: str, generation: int) -> ObjectVersion | None:
        for v in self.objects.get(name, ()):
            if v.generation == generation:
                return v
        return None


# ---------------------------------------------------------------------------------------------
# Preconditions


@dataclass
class Preconditions:
    if_generation_match: int | None = None
    if_generation_not_match: int | None = None
    if_metageneration_match: int | None = None
    if_metageneration_not_match: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Preconditions:
        def get(*names: str) -> int | None:
            for n in names:
                if n in query and query[n] != "":
                    return parse_int(query[n], n)
            return None

        return cls(
            get("ifGenerationMatch"),
            get("ifGenerationNotMatch"),
            get("ifMetagenerationMatch"),
            # The Python client spells it ifMetaGenerationNotMatch on uploads.
            get("ifMetagenerationNotMatch", "ifMetaGenerationNotMatch"),
        )

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (
                self.if_generation_match,
                self.if_generation_not_match,
                self.if_metageneration_match,
                self.if_metageneration_not_match,
            )
        )

    def check_write(self, live: ObjectVersion | None) -> None:
        """Preconditions of a write (upload, restore) against the live object, if any.

        ``ifGenerationMatch=0`` holds only when there is no live object; every other
        precondition fails when there is no live object.
        """
        igm = self.if_generation_match
        if igm is not None:
            if igm == 0:
                if live is not None:
                    raise condition_not_met()
            elif live is None or live.generation != igm:
                raise condition_not_met()
        ignm = self.if_generation_not_match
        if ignm is not None and (live is None or live.generation == ignm):
            raise condition_not_met()
        imm = self.if_metageneration_match
        if imm is not None and (live is None or live.metageneration != imm):
            raise condition_not_met()
        imnm = self.if_metageneration_not_match
        if imnm is not None and (live is None or live.metageneration == imnm):
            raise condition_not_met()

    def check_target(self, target: ObjectVersion, read: bool = False) -> None:
        """Preconditions of a read/patch/delete against the object addressed."""
        if self.if_generation_match is not None and target.generation != self.if_generation_match:
            raise condition_not_met()
        if self.if_metageneration_match is not None and (
            target.metageneration != self.if_metageneration_match
        ):
            raise condition_not_met()
        not_match_failed = (
            self.if_generation_not_match is not None
            and target.generation == self.if_generation_not_match
        ) or (
            self.if_metageneration_not_match is not None
            and target.metageneration == self.if_metageneration_not_match
        )
        if not_match_failed:
            if read:
                raise GcsError(304, "notModified", "Not Modified")
            raise condition_not_met()


# ---------------------------------------------------------------------------------------------
# The store


class Store:
    def __init__(
        self,
        clock: VirtualClock,
        project: str,
        keep_soft_deleted_on_restore: bool = True,
        bulk_restore_seconds: float = 1.0,
    ) -> None:
        self.clock = clock
        self.project = project
        self.keep_soft_deleted_on_restore = keep_soft_deleted_on_restore
        self.bulk_restore_seconds = bulk_restore_seconds
        self.lock = threading.RLock()
        self.buckets: dict[str, Bucket] = {}
        self._last_generation = 0

    # -- time ----------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def _new_generation(self, now: float) -> int:
        gen = max(int(now * 1_000_000), self._last_generation + 1)
        self._last_generation = gen
        return gen

    def tick(self) -> None:
        """Let time act: expire soft-deleted objects past hardDeleteTime, run due operations."""
        with self.lock:
            now = self.now()
            for bucket in self.buckets.values():
                for op in bucket.operations.values():
                    if not op.done and now >= op.create_time + self.bulk_restore_seconds:
                        self._run_bulk_restore(bucket, op, now)
                self._purge(bucket, now)

    @staticmethod
    def _purge(bucket: Bucket, now: float) -> None:
        if now < bucket.next_purge:
            return
        bucket.next_purge = math.inf
        for name in list(bucket.objects):
            kept = [
                v
                for v in bucket.objects[name]
                if not (
                    v.state == SOFT_DELETED
                    and v.hard_delete_time is not None
                    and v.hard_delete_time <= now
                )
            ]
            if kept:
                bucket.objects[name] = kept
                for v in kept:
                    if v.state == SOFT_DELETED and v.hard_delete_time is not None:
                        bucket.next_purge = min(bucket.next_purge, v.hard_delete_time)
            else:
                del bucket.objects[name]

    # -- buckets -------------------------------------------------------------------------------

    def bucket(self, name: str) -> Bucket:
        try:
            return self.buckets[name]
        except KeyError:
            raise not_found(f"The specified bucket does not exist: {name}") from None

    @staticmethod
    def _soft_delete_seconds(policy: Any) -> int:
        if not isinstance(policy, Mapping):
            raise invalid("softDeletePolicy must be an object")
        raw = policy.get("retentionDurationSeconds")
        if raw is None:
            return DEFAULT_SOFT_DELETE_SECONDS
        seconds = parse_int(raw, "softDeletePolicy.retentionDurationSeconds")
        if seconds != 0 and not (MIN_SOFT_DELETE_SECONDS <= seconds <= MAX_SOFT_DELETE_SECONDS):
            raise invalid(
                "The soft delete policy retention duration must be 0 (disabled) or between "
                f"{MIN_SOFT_DELETE_SECONDS} and {MAX_SOFT_DELETE_SECONDS} seconds, got {seconds}."
            )
        return seconds

    @staticmethod
    def _retention_seconds(policy: Any) -> int | None:
        if policy is None:
            return None
        if not isinstance(policy, Mapping):
            raise invalid("retentionPolicy must be an object")
        seconds = parse_int(policy.get("retentionPeriod"), "retentionPolicy.retentionPeriod")
        if seconds <= 0 or seconds > 3_155_760_000:
            raise invalid(f"Invalid retentionPolicy.retentionPeriod: {seconds}")
        return seconds

    def create_bucket(self, spec: Mapping[str, Any], project: str | None = None) -> Bucket:
        with self.lock:
            name = spec.get("name")
            if not isinstance(name, str) or not name:
                raise GcsError(400, "required", "Required field: name")
            if not _BUCKET_NAME.match(name) or ".." in name:
                raise invalid(f"Invalid bucket name: '{name}'")
            if name in self.buckets:
                raise GcsError(
                    409,
                    "conflict",
                    "Your previous request to create the named bucket succeeded and you "
                    "already own it.",
                )
            now = self.now()
            soft = spec.get("softDeletePolicy")
            soft_seconds = (
                DEFAULT_SOFT_DELETE_SECONDS if soft is None else self._soft_delete_seconds(soft)
            )
            versioning = parse_bool((spec.get("versioning") or {}).get("enabled", False))
            retention = self._retention_seconds(spec.get("retentionPolicy"))
            bucket = Bucket(
                name=name,
                project=project or self.project,
                time_created=now,
                updated=now,
                soft_delete_seconds=soft_seconds,
                soft_delete_effective=now,
                versioning=versioning,
                retention_seconds=retention,
                retention_effective=now if retention is not None else None,
            )
            self.buckets[name] = bucket
            return bucket

    def patch_bucket(self, name: str, patch: Mapping[str, Any]) -> Bucket:
        with self.lock:
            bucket = self.bucket(name)
            now = self.now()
            if "softDeletePolicy" in patch:
                policy = patch["softDeletePolicy"]
                seconds = 0 if policy is None else self._soft_delete_seconds(policy)
                if seconds != bucket.soft_delete_seconds:
                    bucket.soft_delete_seconds = seconds
                    bucket.soft_delete_effective = now
            if "versioning" in patch:
                bucket.versioning = parse_bool((patch["versioning"] or {}).get("enabled", False))
            if "retentionPolicy" in patch:
                seconds_or_none = self._retention_seconds(patch["retentionPolicy"])
                if seconds_or_none != bucket.retention_seconds:
                    bucket.retention_seconds = seconds_or_none
                    bucket.retention_effective = now if seconds_or_none is not None else None
            bucket.metageneration += 1
            bucket.updated = now
            return bucket

    def delete_bucket(self, name: str) -> None:
        with self.lock:
            bucket = self.bucket(name)
            if any(v.state != SOFT_DELETED for v in bucket.versions()):
                raise GcsError(409, "conflict", "The bucket you tried to delete is not empty.")
            del self.buckets[name]

    # -- objects: internal transitions ---------------------------------------------------------

    @staticmethod
    def _check_name(name: str) -> None:
        if not name:
            raise GcsError(400, "required", "Required parameter: object name")
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise invalid("The maximum object length is 1024 characters, but got a name longer.")
        if name in (".", "..") or "\r" in name or "\n" in name:
            raise invalid(f"Invalid object name: {name!r}")

    @staticmethod
    def _check_retention(bucket: Bucket, version: ObjectVersion, now: float) -> None:
        if bucket.retention_seconds and now - version.time_created < bucket.retention_seconds:
            until = rfc3339(version.time_created + bucket.retention_seconds)
            raise GcsError(
                403,
                "retentionPolicyNotMet",
                f"Object '{bucket.name}/{version.name}' is subject to bucket's retention policy "
                f"or object retention and cannot be deleted or overwritten until {until}",
            )

    def _soft_delete_or_drop(self, bucket: Bucket, version: ObjectVersion, now: float) -> None:
        if bucket.soft_delete_seconds:
            version.state = SOFT_DELETED
            version.time_deleted = version.time_deleted or now
            version.soft_delete_time = now
            version.hard_delete_time = now + bucket.soft_delete_seconds
            bucket.next_purge = min(bucket.next_purge, version.hard_delete_time)
        else:
            versions = bucket.objects[version.name]
            versions.remove(version)
            if not versions:
                del bucket.objects[version.name]

    def _retire_live(self, bucket: Bucket, live: ObjectVersion, now: float) -> None:
        """A live object being replaced or deleted (without a generation)."""
        self._check_retention(bucket, live, now)
        if bucket.versioning:
            live.state = NONCURRENT
            live.time_deleted = now
        else:
            self._soft_delete_or_drop(bucket, live, now)

    def _insert(
        self,
        bucket: Bucket,
        name: str,
        data: bytes,
        content_type: str,
        fields: Mapping[str, Any],
        preconditions: Preconditions,
    ) -> ObjectVersion:
        self._check_name(name)
        now = self.now()
        live = bucket.live(name)
        preconditions.check_write(live)
        if live is not None:
            self._retire_live(bucket, live, now)
        version = ObjectVersion(
            bucket=bucket.name,
            name=name,
            generation=self._new_generation(now),
            metageneration=1,
            data=bytes(data),
            content_type=content_type or "application/octet-stream",
            time_created=now,
            updated=now,
            fields={k: v for k, v in fields.items() if k in SETTABLE_FIELDS and v is not None},
        )
        bucket.objects.setdefault(name, []).append(version)
        return version

    # -- objects: API operations ---------------------------------------------------------------

    def insert_object(
        self,
        bucket_name: str,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        fields: Mapping[str, Any] | None = None,
        preconditions: Preconditions | None = None,
        expected_md5: str | None = None,
        expected_crc32c: str | None = None,
    ) -> ObjectVersion:
        with self.lock:
            bucket = self.bucket(bucket_name)
            if expected_md5 is not None and expected_md5 != md5_b64(data):
                raise invalid(
                    f'Provided MD5 hash "{expected_md5}" doesn\'t match calculated MD5 hash '
                    f'"{md5_b64(data)}".'
                )
            if expected_crc32c is not None and expected_crc32c != crc32c_b64(data):
                raise invalid(
                    f'Provided CRC32C "{expected_crc32c}" doesn\'t match calculated CRC32C '
                    f'"{crc32c_b64(data)}".'
                )
            return self._insert(
                bucket, name, data, content_type, fields or {}, preconditions or Preconditions()
            )

    def check_insert_preconditions(
        self, bucket_name: str, name: str, preconditions: Preconditions
    ) -> None:
        with self.lock:
            bucket = self.bucket(bucket_name)
            self._check_name(name)
            preconditions.check_write(bucket.live(name))

    def get_object(
        self,
        bucket_name: str,
        name: str,
        generation: int | None = None,
        soft_deleted: bool = False,
        preconditions: Preconditions | None = None,
    ) -> ObjectVersion:
        with self.lock:
            bucket = self.bucket(bucket_name)
            missing = not_found(f"No such object: {bucket_name}/{name}")
            if soft_deleted:
                if generation is None:
                    raise GcsError(
                        400,
                        "required",
                        "Required parameter: generation (softDeleted=true requires a generation).",
                    )
                found = bucket.find(name, generation)
                if found is None or found.state != SOFT_DELETED:
                    raise missing
            elif generation is None:
                found = bucket.live(name)
                if found is None:
                    raise missing
            else:
                found = bucket.find(name, generation)
                if found is None or found.state == SOFT_DELETED:
                    raise missing
            if preconditions is not None:
                preconditions.check_target(found, read=True)
            return found

    def patch_object(
        self,
        bucket_name: str,
        name: str,
        patch: Mapping[str, Any],
        generation: int | None = None,
        preconditions: Preconditions | None = None,
    ) -> ObjectVersion:
        with self.lock:
            target = self.get_object(bucket_name, name, generation)
            if preconditions is not None:
                preconditions.check_target(target)
            for key, value in patch.items():
                if key == "contentType":
                    target.content_type = value or "application/octet-stream"
                elif key == "metadata":
                    if value is None:
                        target.fields.pop("metadata", None)
                    else:
                        merged = dict(target.fields.get("metadata") or {})
                        for mk, mv in dict(value).items():
                            if mv is None:
                                merged.pop(mk, None)
                            else:
                                merged[mk] = str(mv)
                        target.fields["metadata"] = merged
                elif key in SETTABLE_FIELDS:
                    if value is None:
                        target.fields.pop(key, None)
                    else:
                        target.fields[key] = value
            target.metageneration += 1
            target.updated = self.now()
            return target

    def delete_object(
        self,
        bucket_name: str,
        name: str,
        generation: int | None = None,
        preconditions: Preconditions | None = None,
    ) -> None:
        with self.lock:
            bucket = self.bucket(bucket_name)
            target = self.get_object(bucket_name, name, generation)
            if preconditions is not None:
                preconditions.check_target(target)
            now = self.now()
            if generation is None:
                self._retire_live(bucket, target, now)
            else:
                # Deleting a specific generation removes it for good (subject to soft delete),
                # even in a versioned bucket.
                self._check_retention(bucket, target, now)
                self._soft_delete_or_drop(bucket, target, now)

    def list_objects(
        self,
        bucket_name: str,
        prefix: str = "",
        delimiter: str = "",
        versions: bool = False,
        soft_deleted: bool = False,
        match_glob: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        start_offset: str = "",
        end_offset: str = "",
        include_trailing_delimiter: bool = False,
    ) -> tuple[list[ObjectVersion], list[str], str | None]:
        with self.lock:
            bucket = self.bucket(bucket_name)
            if versions and soft_deleted:
                raise invalid("Cannot set both softDeleted and versions to true.")
            if soft_deleted:
                states = {SOFT_DELETED}
            elif versions:
                states = {LIVE, NONCURRENT}
            else:
                states = {LIVE}
            glob = glob_to_regex(match_glob) if match_glob else None
            entries: dict[tuple[str, int], ObjectVersion | None] = {}
            for v in sorted(bucket.versions(), key=lambda o: (o.name, o.generation)):
                if v.state not in states or not v.name.startswith(prefix):
                    continue
                if start_offset and v.name < start_offset:
                    continue
                if end_offset and v.name >= end_offset:
                    continue
                if glob is not None and not glob.match(v.name):
                    continue
                if delimiter:
                    rest = v.name[len(prefix) :]
                    idx = rest.find(delimiter)
                    if idx >= 0:
                        common = prefix + rest[: idx + len(delimiter)]
                        entries[(common, -1)] = None
                        if not (include_trailing_delimiter and v.name == common):
                            continue
                entries[(v.name, v.generation)] = v
            keys = sorted(entries)
            if page_token:
                after = _decode_token(page_token)
                keys = [k for k in keys if k > after]
            limit = MAX_LIST_RESULTS if not max_results else min(max_results, MAX_LIST_RESULTS)
            page, remaining = keys[:limit], keys[limit:]
            items = [e for k in page if (e := entries[k]) is not None]
            prefixes = [k[0] for k in page if entries[k] is None]
            token = _encode_token(page[-1]) if remaining and page else None
            return items, prefixes, token

    # -- restore -------------------------------------------------------------------------------

    def _restore_version(
        self, bucket: Bucket, source: ObjectVersion, now: float, live: ObjectVersion | None
    ) -> ObjectVersion:
        if live is not None:
            self._retire_live(bucket, live, now)
        restored = ObjectVersion(
            bucket=bucket.name,
            name=source.name,
            generation=self._new_generation(now),
            metageneration=1,
            data=source.data,
            content_type=source.content_type,
            time_created=now,
            updated=now,
            fields=dict(source.fields),
            storage_class="STANDARD",
            md5=source.md5,
            crc32c=source.crc32c,
        )
        versions = bucket.objects.setdefault(source.name, [])
        versions.append(restored)
        if not self.keep_soft_deleted_on_restore and source in versions:
            versions.remove(source)
        return restored

    def restore_object(
        self,
        bucket_name: str,
        name: str,
        generation: str | None,
        preconditions: Preconditions,
    ) -> ObjectVersion:
        with self.lock:
            bucket = self.bucket(bucket_name)
            if generation is None or generation == "":
                raise GcsError(400, "required", "Required parameter: generation")
            gen = parse_int(generation, "generation")
            if not bucket.soft_delete_seconds:
                raise GcsError(
                    400,
                    "SoftDeletePolicyRequired",
                    "Restore is not allowed on a bucket that does not have a soft delete policy.",
                )
            now = self.now()
            source = bucket.find(name, gen)
            if source is None:
                raise not_found(f"No such object: {bucket_name}/{name}#{gen}")
            if source.state != SOFT_DELETED:
                raise GcsError(
                    412,
                    "objectNotSoftDeleted",
                    f"The object {bucket_name}/{name}#{gen} is not soft-deleted; it is "
                    f"{source.state}.",
                )
            if bucket.retention_seconds and now - source.time_created < bucket.retention_seconds:
                raise GcsError(
                    403,
                    "retentionPolicyNotMet",
                    f"Object '{bucket_name}/{name}' is subject to the bucket's retention policy "
                    "and cannot be restored until its retention period has passed.",
                )
            live = bucket.live(name)
            preconditions.check_write(live)
            return self._restore_version(bucket, source, now, live)

    # -- bulk restore --------------------------------------------------------------------------

    def start_bulk_restore(self, bucket_name: str, body: Mapping[str, Any]) -> Operation:
        with self.lock:
            bucket = self.bucket(bucket_name)
            if not isinstance(body, Mapping):
                raise invalid("The request body must be a JSON object.")
            if not bucket.soft_delete_seconds:
                raise GcsError(
                    400,
                    "SoftDeletePolicyRequired",
                    "Bulk restore is not allowed on a bucket that does not have a soft delete "
                    "policy.",
                )
            globs = body.get("matchGlobs") or []
            if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
                raise invalid("matchGlobs must be a list of strings")
            request: dict[str, Any] = {
                "allowOverwrite": parse_bool(body.get("allowOverwrite", False)),
                "copySourceAcl": parse_bool(body.get("copySourceAcl", False)),
                "matchGlobs": list(globs),
            }
            for key in (
                "softDeletedAfterTime",
                "softDeletedBeforeTime",
                "createdAfterTime",
                "createdBeforeTime",
            ):
                if body.get(key) is not None:
                    request[key] = parse_rfc3339(body[key], key)
            now = self.now()
            op = Operation(
                id=uuid.uuid4().hex,
                bucket=bucket_name,
                request=request,
                create_time=now,
                update_time=now,
                body=dict(body),
            )
            bucket.operations[op.id] = op
            return op

    def _run_bulk_restore(self, bucket: Bucket, op: Operation, now: float) -> None:
        self._purge(bucket, now)
        req = op.request
        globs = [glob_to_regex(g) for g in req["matchGlobs"]]
        chosen: dict[str, ObjectVersion] = {}
        considered = 0
        for v in bucket.versions():
            if v.state != SOFT_DELETED:
                continue
            considered += 1
            if globs and not any(g.match(v.name) for g in globs):
                continue
            sdt = v.soft_delete_time or 0.0
            if "softDeletedAfterTime" in req and not sdt > req["softDeletedAfterTime"]:
                continue
            if "softDeletedBeforeTime" in req and not sdt < req["softDeletedBeforeTime"]:
                continue
            if "createdAfterTime" in req and not v.time_created > req["createdAfterTime"]:
                continue
            if "createdBeforeTime" in req and not v.time_created < req["createdBeforeTime"]:
                continue
            # "If multiple generations of an object match the criteria, only the latest
            # generation is restored and the rest are skipped."
            best = chosen.get(v.name)
            if best is None or v.generation > best.generation:
                chosen[v.name] = v
        for name in sorted(chosen):
            source = chosen[name]
            live = bucket.live(name)
            if live is not None and not req["allowOverwrite"]:
                op.failed_count += 1
                op.failures.append(
                    {"name": name, "generation": source.generation, "reason": "liveObjectExists"}
                )
                continue
            try:
                if bucket.retention_seconds and (
                    now - source.time_created < bucket.retention_seconds
                ):
                    raise GcsError(403, "retentionPolicyNotMet", "retention policy not met")
                self._restore_version(bucket, source, now, live)
            except GcsError as exc:
                op.failed_count += 1
                op.failures.append(
                    {"name": name, "generation": source.generation, "reason": exc.reason}
                )
                continue
            op.success_count += 1
            op.bytes_restored += source.size
        op.skipped_count = considered - op.success_count - op.failed_count
        op.done = True
        op.end_time = now
        op.update_time = now

    def get_operation(self, bucket_name: str, op_id: str) -> Operation:
        with self.lock:
            bucket = self.bucket(bucket_name)
            try:
                return bucket.operations[op_id]
            except KeyError:
                raise not_found("The specified long-running operation does not exist.") from None

    def cancel_operation(self, bucket_name: str, op_id: str) -> Operation:
        with self.lock:
            op = self.get_operation(bucket_name, op_id)
            if op.done:
                raise GcsError(
                    412, "conditionNotMet", "The long-running operation is already done."
                )
            now = self.now()
            op.cancelled = True
            op.done = True
            op.end_time = now
            op.update_time = now
            return op

    def fail_operation(
        self, bucket_name: str, op_id: str, code: int = 13, message: str = "Internal error."
    ) -> Operation:
        """End a running operation with an error (a google.rpc.Status), for tests."""
        with self.lock:
            op = self.get_operation(bucket_name, op_id)
            now = self.now()
            op.error = {"code": code, "message": message}
            op.done = True
            op.end_time = now
            op.update_time = now
            return op

    def operations(self, bucket_name: str) -> list[Operation]:
        with self.lock:
            return list(self.bucket(bucket_name).operations.values())

    # -- inspection ----------------------------------------------------------------------------

    def generations(self, bucket_name: str, name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            bucket = self.bucket(bucket_name)
            versions = bucket.versions() if name is None else bucket.objects.get(name, [])
            return [v.summary() for v in sorted(versions, key=lambda o: (o.name, o.generation))]

    def reset(self) -> None:
        with self.lock:
            self.buckets.clear()


def _encode_token(key: tuple[str, int]) -> str:
    raw = f"{key[1]}:{key[0]}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
        gen, _, name = raw.partition(":")
        return name, int(gen)
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"Invalid pageToken: {token!r}") from None
