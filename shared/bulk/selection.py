"""A job's objects as a stream: listings page by page, manifests line by line.

Nothing here holds more than one listing page or one manifest line at a time, so a selection of
millions of objects costs the same memory as one of ten. Objects the job must not restore are
counted by reason (``Skips``) instead of being yielded.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.bulk.schemas import BulkJob, ObjectRef
from shared.tiers import ARCHIVE_CLASSES

Skips = Counter[str]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """GCS ``matchGlob`` semantics, so a glob selects here what it selects on the server:

    ``*`` and ``?`` stay within a path segment; ``**`` crosses segments, and ``**/`` also matches
    no segment at all (``a/**/b`` matches ``a/b``); ``[abc]``, ``[a-z]``, ``[!a]`` / ``[^a]`` are
    character classes that never match ``/``; ``{x,y}`` is an alternation of globs; ``\\``
    escapes the next character.
    """
    return re.compile(_glob_body(pattern) + r"\Z", re.DOTALL)


def _glob_body(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":  # a leading ] is a member, not the end
                j += 1
            j = pattern.find("]", j)
            if j < 0:
                out.append(re.escape(ch))
                i += 1
                continue
            body = pattern[i + 1:j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            for special in ("\\", "^", "[", "]"):
                body = body.replace(special, "\\" + special)
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = j + 1
        elif ch == "{":
            j = pattern.find("}", i)
            if j < 0:
                out.append(re.escape(ch))
                i += 1
                continue
            alternatives = pattern[i + 1:j].split(",")
            out.append("(?:" + "|".join(_glob_body(a) for a in alternatives) + ")")
            i = j + 1
        elif ch == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


GLOB_SPECIALS = "*?[{\\"


def literal_prefix(glob: str) -> str:
    """The part of a glob before its first wildcard (or escape): every match starts with it."""
    return re.split(r"[*?\[{\\]", glob, maxsplit=1)[0]


class NameFilter:
    """Prefix and globs: an object is selected when it has the prefix and matches any glob."""

    def __init__(self, prefix: str, globs: Iterable[str]) -> None:
        self.prefix = prefix
        self._globs = [glob_regex(g) for g in globs]

    def __call__(self, name: str) -> bool:
        if not name.startswith(self.prefix):
            return False
        return not self._globs or any(g.match(name) for g in self._globs)


def listing_prefix(job: BulkJob) -> str:
    """The longest literal prefix the listing can ask the server for."""
    sel = job.selection
    if sel.prefix or not sel.globs:
        return sel.prefix
    literal = [literal_prefix(g) for g in sel.globs]
    common = literal[0]
    for other in literal[1:]:
        while not other.startswith(common):
            common = common[:-1]
    return common


# -- COS ----------------------------------------------------------------------------------------
def cos_listing(client: Any, job: BulkJob, skips: Skips) -> Iterator[ObjectRef]:
    """Archived objects under the job's prefix/globs, by ``GET Bucket`` pages of 1,000."""
    wanted = set(job.selection.storage_classes or ARCHIVE_CLASSES)
    selected = NameFilter(job.selection.prefix, job.selection.globs)
    marker = ""
    while True:
        page = client.list_objects(Bucket=job.bucket, Prefix=listing_prefix(job), Marker=marker,
                                   MaxKeys=1000)
        contents = page.get("Contents") or []
        for entry in contents:
            key = str(entry["Key"])
            if not selected(key):
                continue
            storage_class = str(entry.get("StorageClass") or "STANDARD").upper()
            if storage_class not in wanted:
                skips["not_archived" if storage_class not in ARCHIVE_CLASSES
                      else "storage_class_not_selected"] += 1
                continue
            yield ObjectRef(key=key, storage_class=storage_class)
        if str(page.get("IsTruncated", "false")).lower() != "true" or not contents:
            return
        marker = str(page.get("NextMarker") or contents[-1]["Key"])


# -- GCS ----------------------------------------------------------------------------------------
# Only what the selection needs from each listed object, not the whole resource.
_SOFT_DELETED_FIELDS = ("items(name,generation,storageClass,timeCreated,softDeleteTime),"
                        "nextPageToken")
_LIVE_FIELDS = "items(name),nextPageToken"


def _within(value: datetime | None, after: datetime | None, before: datetime | None) -> bool:
    """Both bounds exclusive, as objects.bulkRestore reads its ``*AfterTime``/``*BeforeTime``."""
    if after is None and before is None:
        return True
    if value is None:
        return False
    return (after is None or value > after) and (before is None or value < before)


class _LiveNames:
    """The live listing walked alongside the soft-deleted one: ``has(name)`` for names asked in
    ascending order, holding one name (and the SDK one page) at a time."""

    def __init__(self, names: Iterator[str]) -> None:
        self._names = names
        self._current: str | None = None
        self._started = False

    def has(self, name: str) -> bool:
        if not self._started:  # listed on first use: a job whose deletions all fall outside
            self._started = True  # its filters never asks
            self._current = next(self._names, None)
        while self._current is not None and self._current < name:
            self._current = next(self._names, None)
        return self._current == name


def gcs_listing(client: Any, job: BulkJob, skips: Skips) -> Iterator[ObjectRef]:
    """The newest soft-deleted generation of each selected name, in name order.

    Both listings (``softDeleted=true`` and live) come back in lexicographic name order (UTF-8
    bytes, which is Python's code-point order), soft-deleted generations of one name adjacent
    (oldest first), across page boundaries too. So a name's generations are grouped as they
    stream by, and names with a live object are skipped (unless ``allow_overwrite``) by walking
    the live listing alongside: no set of names is ever held.

    Among a name's generations inside the time filters the newest (highest generation) is
    chosen, as objects.bulkRestore does ("only the latest generation is restored").
    """
    sel = job.selection
    selected = NameFilter(sel.prefix, sel.globs)
    prefix = listing_prefix(job) or None
    # One glob can be matched by the server (with the prefix, if any, as well); several are
    # matched here, on the listing of their common literal prefix.
    match_glob = sel.globs[0] if len(sel.globs) == 1 else None
    deleted = client.list_blobs(job.bucket, prefix=prefix, soft_deleted=True,
                                match_glob=match_glob, fields=_SOFT_DELETED_FIELDS)
    live = None if job.allow_overwrite else _LiveNames(
        b.name for b in client.list_blobs(job.bucket, prefix=prefix, match_glob=match_glob,
                                          fields=_LIVE_FIELDS)
    )

    def newest(group: list[Any]) -> ObjectRef | None:
        candidates = [
            b for b in group
            if _within(b.soft_delete_time, sel.soft_deleted_after, sel.soft_deleted_before)
            and _within(b.time_created, sel.created_after, sel.created_before)
        ]
        if not candidates:
            skips["outside_time_filters"] += 1
            return None
        name = group[0].name
        if live is not None and live.has(name):
            skips["live_object_exists"] += 1
            return None
        best = max(candidates, key=lambda b: int(b.generation))
        return ObjectRef(key=name, generation=int(best.generation),
                         storage_class=best.storage_class)

    group: list[Any] = []
    for blob in deleted:
        if not selected(blob.name):
            continue
        if group and blob.name != group[0].name:
            ref = newest(group)
            if ref is not None:
                yield ref
            group = []
        group.append(blob)
    if group:
        ref = newest(group)
        if ref is not None:
            yield ref


# -- manifests ----------------------------------------------------------------------------------
_KEY_COLUMNS = ("key", "object", "name")
_VERSION_COLUMNS = ("version_id", "versionid", "version")


def manifest_refs(lines: Iterable[str], fmt: str, job_bucket: str,
                  skips: Skips) -> Iterator[ObjectRef]:
    """Objects named by a manifest's lines. CSV without a header: ``key``, or S3 Batch
    Operations' ``bucket,key[,version]`` (a GCS generation is a number in the version column);
    with a header: columns named key/object/name, version_id, generation, bucket. JSONL: one
    object per line (``{"key": .., "version_id": .., "generation": ..}``)."""
    if fmt == "jsonl":
        for line in lines:
            if not line.strip():
                continue
            try:
                yield ObjectRef.model_validate(json.loads(line))
            except (ValueError, ValidationError):
                skips["manifest_line_invalid"] += 1
        return
    rows = csv.reader(lines)
    header: list[str] | None = None
    for row in rows:
        if not row or not any(cell.strip() for cell in row):
            continue
        lowered = [cell.strip().lower() for cell in row]
        if header is None and any(c in _KEY_COLUMNS for c in lowered):
            header = lowered
            continue
        ref = _csv_ref(row, header, job_bucket)
        if isinstance(ref, str):
            skips[ref] += 1
        else:
            yield ref


def _csv_ref(row: list[str], header: list[str] | None, job_bucket: str) -> ObjectRef | str:
    """The row's object, or why it was skipped (``other_bucket``, ``manifest_line_invalid``)."""
    try:
        if header is not None:
            values = dict(zip(header, row, strict=False))
            if values.get("bucket", job_bucket) != job_bucket:
                return "other_bucket"
            key = next(values[c] for c in _KEY_COLUMNS if values.get(c))
            version = next((values[c] for c in _VERSION_COLUMNS if values.get(c)), None)
            generation = values.get("generation") or ""
            return ObjectRef(key=key, version_id=version,
                             generation=int(generation) if generation.isdigit() else None)
        if len(row) == 1:
            return ObjectRef(key=row[0])
        if len(row) in (2, 3):  # S3 Batch Operations' layout: bucket,key[,version]
            if row[0] != job_bucket:
                return "other_bucket"
            version = row[2] if len(row) == 3 and row[2] else None
            if version is not None and version.isdigit():
                return ObjectRef(key=row[1], generation=int(version))
            return ObjectRef(key=row[1], version_id=version)
    except (ValidationError, StopIteration):
        return "manifest_line_invalid"
    return "manifest_line_invalid"


def text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Decode a byte stream as UTF-8 lines without reading it whole."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        yield from (line.rstrip("\r") for line in complete)
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending.rstrip("\r")


def cos_object_chunks(client: Any, bucket: str, key: str, size: int = 256 * 1024
                      ) -> Iterator[bytes]:
    stream = client.get_object(Bucket=bucket, Key=key)["Body"].get_raw_stream()
    while True:
        data = stream.read(size)
        if not data:
            return
        yield data


def gcs_object_chunks(client: Any, bucket: str, key: str, size: int = 256 * 1024
                      ) -> Iterator[bytes]:
    with client.bucket(bucket).blob(key).open("rb", chunk_size=size) as reader:
        while True:
            data = reader.read(size)
            if not data:
                return
            yield data
