"""Google Cloud Storage JSON-API emulator: the HTTP surface over ``store.Store``.

Routes (``/storage/v1``; uploads under ``/upload/storage/v1``; downloads also under
``/download/storage/v1``): buckets insert/get/patch/delete/list; objects upload (multipart, media,
resumable), get (``softDeleted``, ``generation``, ``alt=media`` with Range), patch, delete, list
(prefix, delimiter, versions, softDeleted, matchGlob, paging), restore, bulkRestore; bucket
operations get/list/cancel. Errors use the GCS JSON error body.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from .._http import Request, Response, VirtualClock
from .store import (
    SETTABLE_FIELDS,
    GcsError,
    ObjectVersion,
    Preconditions,
    Store,
    invalid,
    not_found,
    parse_bool,
    parse_int,
    rfc3339,
)

API_PREFIX = "/storage/v1/"
UPLOAD_PREFIX = "/upload/storage/v1/"
DOWNLOAD_PREFIX = "/download/storage/v1/"

_FAULT_REASONS = {
    400: "invalid",
    401: "required",
    403: "forbidden",
    404: "notFound",
    408: "requestTimeout",
    409: "conflict",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    502: "backendError",
    503: "backendError",
    504: "backendError",
}

_FAULT_MESSAGES = {
    429: "The rate of change requests to the object has exceeded the rate limit. "
    "Please reduce the rate of create, update, and delete requests.",
    500: "Backend Error",
    503: "Backend Error",
}


def error_response(status: int, reason: str, message: str) -> Response:
    if status == 304:
        return Response(304)
    return Response.json(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
            }
        },
    )


@dataclass
class _ResumableSession:
    id: str
    bucket: str
    name: str
    content_type: str
    fields: dict[str, Any]
    preconditions: Preconditions
    total: int | None
    expected_crc32c: str | None = None
    expected_md5: str | None = None
    data: bytearray = field(default_factory=bytearray)
    result: ObjectVersion | None = None


_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")


class GcsEmulator:
    """An in-memory GCS JSON API with soft delete, restore and bulk restore.

    ``keep_soft_deleted_on_restore`` decides whether a restored soft-deleted generation stays
    listed as soft-deleted (True, the default) or disappears (False): real GCS behaviour here is
    unconfirmed. ``bulk_restore_seconds`` is how much emulated time a bulkRestore operation takes.
    """

    def __init__(
        self,
        clock_factor: float = 1.0,
        keep_soft_deleted_on_restore: bool = True,
        project: str = "emulator-project",
        bulk_restore_seconds: float = 1.0,
    ) -> None:
        self.clock = VirtualClock(clock_factor)
        self.project = project
        self.store = Store(
            self.clock,
            project,
            keep_soft_deleted_on_restore=keep_soft_deleted_on_restore,
            bulk_restore_seconds=bulk_restore_seconds,
        )
        self._lock = self.store.lock
        self._uploads: dict[str, _ResumableSession] = {}
        self._uploads_lock = threading.Lock()

    # -- python API for tests and seeding ------------------------------------------------------

    @property
    def keep_soft_deleted_on_restore(self) -> bool:
        return self.store.keep_soft_deleted_on_restore

    @keep_soft_deleted_on_restore.setter
    def keep_soft_deleted_on_restore(self, value: bool) -> None:
        self.store.keep_soft_deleted_on_restore = value

    def create_bucket(
        self,
        name: str,
        soft_delete_seconds: int = 604_800,
        versioning: bool = False,
        retention_seconds: int | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": name,
            "softDeletePolicy": {"retentionDurationSeconds": soft_delete_seconds},
            "versioning": {"enabled": versioning},
        }
        if retention_seconds is not None:
            spec["retentionPolicy"] = {"retentionPeriod": retention_seconds}
        return self.store.create_bucket(spec).resource("")

    def put_object(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> int:
        self.store.tick()
        fields = {"metadata": dict(metadata)} if metadata else {}
        return self.store.insert_object(bucket, name, data, content_type, fields).generation

    def delete_object(self, bucket: str, name: str, generation: int | None = None) -> None:
        self.store.tick()
        self.store.delete_object(bucket, name, generation)

    def generations(self, bucket: str, name: str | None = None) -> list[dict[str, Any]]:
        """Every stored generation (oldest first) with ``state`` live/noncurrent/soft-deleted."""
        self.store.tick()
        return self.store.generations(bucket, name)

    def operations(self, bucket: str) -> list[dict[str, Any]]:
        """Every bulkRestore operation of the bucket as the API shows it, plus the request
        ``body`` as received and the per-object ``failures``."""
        self.store.tick()
        with self._lock:
            return [
                {**op.resource(""), "body": op.body, "failures": op.failures}
                for op in self.store.operations(bucket)
            ]

    def fail_operation(
        self, bucket: str, operation: str, code: int = 13, message: str = "Internal error."
    ) -> dict[str, Any]:
        """End a running operation (its name or id) with an error, as a failed one would."""
        op = self.store.fail_operation(bucket, operation.rsplit("/", 1)[-1], code, message)
        return op.resource("")

    # -- Emulator protocol ---------------------------------------------------------------------

    def fault_response(self, status: int, request: Request) -> Response:
        reason = _FAULT_REASONS.get(status, "backendError" if status >= 500 else "invalid")
        message = _FAULT_MESSAGES.get(status, f"Injected fault {status}")
        return error_response(status, reason, message)

    def handle(self, request: Request) -> Response:
        try:
            self.store.tick()
            with self._lock:
                return self._route(request)
        except GcsError as exc:
            return error_response(exc.status, exc.reason, exc.message)
        except json.JSONDecodeError as exc:
            return error_response(400, "parseError", f"Parse Error: {exc}")
        except UnicodeDecodeError as exc:
            return error_response(400, "invalid", f"Invalid UTF-8 in request: {exc}")

    def control(self, verb: str, request: Request) -> Response | None:
        base = _base_url(request)
        try:
            self.store.tick()
            if verb == "buckets" and request.method == "GET":
                with self._lock:
                    items = [b.resource(base) for b in self.store.buckets.values()]
                return Response.json(200, items)
            if verb == "buckets" and request.method == "POST":
                spec = request.json() or {}
                if not isinstance(spec, dict):
                    raise invalid("body must be a JSON object")
                return Response.json(200, self.store.create_bucket(spec).resource(base))
            if verb == "objects" and request.method == "GET":
                bucket = request.query.get("bucket", "")
                return Response.json(
                    200, self.store.generations(bucket, request.query.get("name") or None)
                )
            if verb == "objects" and request.method == "POST":
                payload = request.json() or {}
                if not isinstance(payload, dict):
                    raise invalid("body must be a JSON object")
                if "data_base64" in payload:
                    data = base64.b64decode(payload["data_base64"])
                else:
                    data = str(payload.get("data", "")).encode()
                fields = {k: payload[k] for k in SETTABLE_FIELDS if k in payload}
                version = self.store.insert_object(
                    payload.get("bucket", ""),
                    payload.get("name", ""),
                    data,
                    payload.get("contentType", "application/octet-stream"),
                    fields,
                )
                return Response.json(200, version.summary())
            if verb == "objects" and request.method == "DELETE":
                gen = request.query.get("generation")
                self.store.delete_object(
                    request.query.get("bucket", ""),
                    request.query.get("name", ""),
                    parse_int(gen, "generation") if gen else None,
                )
                return Response.json(200, {"deleted": True})
            if verb == "operations" and request.method == "GET":
                bucket = request.query.get("bucket", "")
                with self._lock:
                    ops = self.store.operations(bucket)
                    body = [
                        {**op.resource(base), "body": op.body, "failures": op.failures}
                        for op in ops
                    ]
                return Response.json(200, body)
            if verb == "reset" and request.method == "POST":
                self.store.reset()
                with self._uploads_lock:
                    self._uploads.clear()
                return Response.json(200, {"reset": True})
        except GcsError as exc:
            return error_response(exc.status, exc.reason, exc.message)
        return None

    # -- routing -------------------------------------------------------------------------------

    def _route(self, request: Request) -> Response:
        raw = request.raw_path
        if raw.startswith(UPLOAD_PREFIX):
            return self._route_upload(request, _segments(raw[len(UPLOAD_PREFIX) :]))
        if raw.startswith(DOWNLOAD_PREFIX):
            segs = _segments(raw[len(DOWNLOAD_PREFIX) :])
            if request.method == "GET" and len(segs) >= 4 and segs[0] == "b" and segs[2] == "o":
                return self._get_object(request, segs[1], "/".join(segs[3:]), media=True)
            raise not_found()
        if not raw.startswith(API_PREFIX):
            raise not_found(f"Unknown path {raw}")
        segs = _segments(raw[len(API_PREFIX) :])
        method = request.method
        if segs == ["b"]:
            if method == "GET":
                return self._list_buckets(request)
            if method == "POST":
                return self._create_bucket(request)
        elif len(segs) == 2 and segs[0] == "b":
            return self._bucket_route(request, segs[1])
        elif len(segs) >= 3 and segs[0] == "b" and segs[2] == "o":
            return self._object_route(request, segs[1], segs[3:])
        elif len(segs) >= 3 and segs[0] == "b" and segs[2] == "operations":
            return self._operations_route(request, segs[1], segs[3:])
        raise not_found(f"No route for {method} {raw}")

    def _bucket_route(self, request: Request, bucket: str) -> Response:
        base = _base_url(request)
        if request.method == "GET":
            return Response.json(200, self.store.bucket(bucket).resource(base))
        if request.method in ("PATCH", "PUT"):
            body = request.json() or {}
            if not isinstance(body, dict):
                raise invalid("body must be a JSON object")
            return Response.json(200, self.store.patch_bucket(bucket, body).resource(base))
        if request.method == "DELETE":
            self.store.delete_bucket(bucket)
            return Response(204)
        raise _method_not_allowed()

    def _object_route(self, request: Request, bucket: str, rest: list[str]) -> Response:
        method = request.method
        if not rest or rest == [""]:
            if method == "GET":
                return self._list_objects(request, bucket)
            raise _method_not_allowed()
        if method == "POST" and rest == ["bulkRestore"]:
            return self._bulk_restore(request, bucket)
        if method == "POST" and len(rest) >= 2 and rest[-1] == "restore":
            return self._restore(request, bucket, "/".join(rest[:-1]))
        name = "/".join(rest)
        if method == "GET":
            media = request.query.get("alt") == "media"
            return self._get_object(request, bucket, name, media=media)
        if method == "PATCH":
            return self._patch_object(request, bucket, name)
        if method == "DELETE":
            self.store.delete_object(
                bucket, name, _generation(request), Preconditions.from_query(request.query)
            )
            return Response(204)
        raise _method_not_allowed()

    def _operations_route(self, request: Request, bucket: str, rest: list[str]) -> Response:
        base = _base_url(request)
        if not rest and request.method == "GET":
            ops = self.store.operations(bucket)
            return Response.json(
                200,
                {"kind": "storage#operations", "operations": [op.resource(base) for op in ops]},
            )
        if len(rest) == 1 and request.method == "GET":
            return Response.json(200, self.store.get_operation(bucket, rest[0]).resource(base))
        if len(rest) == 2 and rest[1] == "cancel" and request.method == "POST":
            self.store.cancel_operation(bucket, rest[0])
            return Response(204)
        raise not_found()

    # -- buckets -------------------------------------------------------------------------------

    def _create_bucket(self, request: Request) -> Response:
        if not request.query.get("project"):
            raise GcsError(400, "required", "Required parameter: project")
        spec = request.json() or {}
        if not isinstance(spec, dict):
            raise invalid("body must be a JSON object")
        bucket = self.store.create_bucket(spec, request.query["project"])
        return Response.json(200, bucket.resource(_base_url(request)))

    def _list_buckets(self, request: Request) -> Response:
        base = _base_url(request)
        prefix = request.query.get("prefix", "")
        items = [
            b.resource(base)
            for name, b in sorted(self.store.buckets.items())
            if name.startswith(prefix)
        ]
        body: dict[str, Any] = {"kind": "storage#buckets"}
        if items:
            body["items"] = items
        return Response.json(200, body)

    # -- objects -------------------------------------------------------------------------------

    def _object_resource(self, version: ObjectVersion, request: Request) -> dict[str, Any]:
        bucket = self.store.buckets.get(version.bucket)
        retention = bucket.retention_seconds if bucket else None
        return version.resource(_base_url(request), retention)

    def _get_object(self, request: Request, bucket: str, name: str, media: bool) -> Response:
        soft = parse_bool(request.query.get("softDeleted", "false"))
        version = self.store.get_object(
            bucket, name, _generation(request), soft, Preconditions.from_query(request.query)
        )
        if not media:
            return Response.json(200, self._object_resource(version, request))
        if soft:
            raise invalid("Soft-deleted objects cannot be downloaded; restore them first.")
        return _media_response(version, request)

    def _patch_object(self, request: Request, bucket: str, name: str) -> Response:
        body = request.json() or {}
        if not isinstance(body, dict):
            raise invalid("body must be a JSON object")
        version = self.store.patch_object(
            bucket, name, body, _generation(request), Preconditions.from_query(request.query)
        )
        return Response.json(200, self._object_resource(version, request))

    def _list_objects(self, request: Request, bucket: str) -> Response:
        q = request.query
        max_results = parse_int(q["maxResults"], "maxResults") if q.get("maxResults") else None
        if max_results is not None and max_results < 0:
            raise invalid("maxResults must be non-negative")
        items, prefixes, token = self.store.list_objects(
            bucket,
            prefix=q.get("prefix", ""),
            delimiter=q.get("delimiter", ""),
            versions=parse_bool(q.get("versions", "false")),
            soft_deleted=parse_bool(q.get("softDeleted", "false")),
            match_glob=q.get("matchGlob") or None,
            max_results=max_results,
            page_token=q.get("pageToken") or None,
            start_offset=q.get("startOffset", ""),
            end_offset=q.get("endOffset", ""),
            include_trailing_delimiter=parse_bool(q.get("includeTrailingDelimiter", "false")),
        )
        body: dict[str, Any] = {"kind": "storage#objects"}
        if items:
            body["items"] = [self._object_resource(v, request) for v in items]
        if prefixes:
            body["prefixes"] = prefixes
        if token:
            body["nextPageToken"] = token
        return Response.json(200, body)

    def _restore(self, request: Request, bucket: str, name: str) -> Response:
        version = self.store.restore_object(
            bucket,
            name,
            request.query.get("generation"),
            Preconditions.from_query(request.query),
        )
        return Response.json(200, self._object_resource(version, request))

    def _bulk_restore(self, request: Request, bucket: str) -> Response:
        body = request.json() or {}
        op = self.store.start_bulk_restore(bucket, body)
        return Response.json(200, op.resource(_base_url(request)))

    # -- uploads -------------------------------------------------------------------------------

    def _route_upload(self, request: Request, segs: list[str]) -> Response:
        if len(segs) != 3 or segs[0] != "b" or segs[2] != "o":
            raise not_found()
        bucket = segs[1]
        upload_id = request.query.get("upload_id")
        if upload_id:
            if request.method == "PUT" or request.method == "POST":
                return self._resumable_chunk(request, upload_id)
            if request.method == "DELETE":
                with self._uploads_lock:
                    self._uploads.pop(upload_id, None)
                return Response(499)
            raise _method_not_allowed()
        if request.method != "POST":
            raise _method_not_allowed()
        self.store.bucket(bucket)
        upload_type = request.query.get("uploadType", "")
        if upload_type == "multipart":
            return self._multipart_upload(request, bucket)
        if upload_type == "media":
            return self._media_upload(request, bucket)
        if upload_type == "resumable":
            return self._initiate_resumable(request, bucket)
        raise invalid(f"Invalid uploadType: {upload_type!r}")

    def _media_upload(self, request: Request, bucket: str) -> Response:
        name = request.query.get("name", "")
        if not name:
            raise GcsError(400, "required", "Required parameter: name")
        version = self.store.insert_object(
            bucket,
            name,
            request.body,
            request.header("Content-Type", "application/octet-stream"),
            {},
            Preconditions.from_query(request.query),
        )
        return Response.json(200, self._object_resource(version, request))

    def _multipart_upload(self, request: Request, bucket: str) -> Response:
        parts = _parse_multipart(request.header("Content-Type"), request.body)
        if len(parts) != 2:
            raise invalid("A multipart upload needs exactly two parts: metadata and media.")
        (_, meta_body), (media_headers, data) = parts
        metadata = json.loads(meta_body or b"{}")
        if not isinstance(metadata, dict):
            raise invalid("Upload metadata must be a JSON object")
        name = metadata.get("name") or request.query.get("name", "")
        if not name:
            raise GcsError(400, "required", "Required parameter: name")
        content_type = (
            metadata.get("contentType")
            or media_headers.get("content-type")
            or "application/octet-stream"
        )
        version = self.store.insert_object(
            bucket,
            name,
            data,
            content_type,
            metadata,
            Preconditions.from_query(request.query),
            expected_md5=metadata.get("md5Hash"),
            expected_crc32c=metadata.get("crc32c"),
        )
        return Response.json(200, self._object_resource(version, request))

    def _initiate_resumable(self, request: Request, bucket: str) -> Response:
        metadata = request.json() if request.body else {}
        metadata = metadata or {}
        if not isinstance(metadata, dict):
            raise invalid("Upload metadata must be a JSON object")
        name = metadata.get("name") or request.query.get("name", "")
        if not name:
            raise GcsError(400, "required", "Required parameter: name")
        preconditions = Preconditions.from_query(request.query)
        self.store.check_insert_preconditions(bucket, name, preconditions)
        total_header = request.header("X-Upload-Content-Length")
        session = _ResumableSession(
            id=uuid.uuid4().hex,
            bucket=bucket,
            name=name,
            content_type=(
                metadata.get("contentType")
                or request.header("X-Upload-Content-Type")
                or "application/octet-stream"
            ),
            fields={k: v for k, v in metadata.items() if k in SETTABLE_FIELDS},
            preconditions=preconditions,
            total=int(total_header) if total_header.isdigit() else None,
            expected_crc32c=metadata.get("crc32c"),
            expected_md5=metadata.get("md5Hash"),
        )
        with self._uploads_lock:
            self._uploads[session.id] = session
        location = (
            f"{_base_url(request)}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
            f"?uploadType=resumable&upload_id={session.id}"
        )
        return Response(200, b"", {"Location": location, "X-GUploader-UploadID": session.id})

    def _resumable_chunk(self, request: Request, upload_id: str) -> Response:
        with self._uploads_lock:
            session = self._uploads.get(upload_id)
        if session is None:
            raise not_found(f"No such upload: {upload_id}")
        if session.result is not None:
            return Response.json(200, self._object_resource(session.result, request))
        content_range = request.header("Content-Range").strip()
        body = request.body
        total: int | None
        if not content_range:
            start, total = len(session.data), len(session.data) + len(body)
        else:
            match = _CONTENT_RANGE.match(content_range)
            if match is None:
                raise invalid(f"Invalid Content-Range: {content_range!r}")
            first, last, total_text = match.groups()
            total = None if total_text == "*" else int(total_text)
            if first is None:
                start = len(session.data)
                body = b""
            else:
                start = int(first)
                if int(last) - start + 1 != len(body):
                    raise invalid("Content-Range does not match the request body length.")
        if start > len(session.data):
            return self._resumable_incomplete(session)
        session.data.extend(body[len(session.data) - start :])
        if total is not None:
            session.total = total
        if session.total is not None and len(session.data) >= session.total:
            if len(session.data) != session.total:
                raise invalid("Upload is larger than the declared total size.")
            return self._finish_resumable(session, request)
        return self._resumable_incomplete(session)

    @staticmethod
    def _resumable_incomplete(session: _ResumableSession) -> Response:
        headers = {"X-GUploader-UploadID": session.id}
        if session.data:
            headers["Range"] = f"bytes=0-{len(session.data) - 1}"
        return Response(308, b"", headers)

    def _finish_resumable(self, session: _ResumableSession, request: Request) -> Response:
        expected_crc32c, expected_md5 = session.expected_crc32c, session.expected_md5
        for item in request.header("X-Goog-Hash").split(","):
            algo, _, value = item.strip().partition("=")
            if algo == "crc32c" and value:
                expected_crc32c = value
            elif algo == "md5" and value:
                expected_md5 = value
        try:
            version = self.store.insert_object(
                session.bucket,
                session.name,
                bytes(session.data),
                session.content_type,
                session.fields,
                session.preconditions,
                expected_md5=expected_md5,
                expected_crc32c=expected_crc32c,
            )
        except GcsError:
            with self._uploads_lock:
                self._uploads.pop(session.id, None)
            raise
        session.result = version
        session.data = bytearray()
        return Response.json(200, self._object_resource(version, request))


# ---------------------------------------------------------------------------------------------
# helpers


def _segments(raw: str) -> list[str]:
    raw = raw.rstrip("/") if raw.endswith("/o/") else raw
    return [unquote(s, encoding="utf-8", errors="strict") for s in raw.split("/")]


def _base_url(request: Request) -> str:
    host = request.header("Host") or request.host or "127.0.0.1"
    return f"http://{host}"


def _generation(request: Request) -> int | None:
    value = request.query.get("generation")
    return parse_int(value, "generation") if value else None


def _method_not_allowed() -> GcsError:
    return GcsError(405, "methodNotAllowed", "Method not allowed for this resource.")


def _parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None or "multipart/related" not in content_type.lower():
        raise invalid("A multipart upload needs Content-Type multipart/related with a boundary.")
    delimiter = b"--" + match.group(1).encode()
    chunks = body.split(delimiter)
    parts: list[tuple[dict[str, str], bytes]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise invalid("Malformed multipart body.")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip():
                headers[key.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def _media_response(version: ObjectVersion, request: Request) -> Response:
    data = version.data
    headers = {
        "Content-Type": version.content_type,
        "ETag": f'"{base64.b64decode(version.md5).hex()}"',
        "Last-Modified": rfc3339(version.updated),
        "x-goog-generation": str(version.generation),
        "x-goog-metageneration": str(version.metageneration),
        "x-goog-hash": f"crc32c={version.crc32c},md5={version.md5}",
        "x-goog-stored-content-length": str(version.size),
        "x-goog-stored-content-encoding": version.fields.get("contentEncoding") or "identity",
        "x-goog-storage-class": version.storage_class,
        "Accept-Ranges": "bytes",
    }
    range_header = request.header("Range").strip()
    if not range_header:
        return Response(200, data, headers)
    match = re.match(r"^bytes=(\d*)-(\d*)$", range_header)
    if match is None:
        return Response(200, data, headers)
    first, last = match.groups()
    size = len(data)
    if first == "":
        if last == "":
            return Response(200, data, headers)
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or start > end:
        if size == 0:
            return Response(200, data, headers)
        err = error_response(
            416, "requestedRangeNotSatisfiable", "The requested range cannot be satisfied."
        )
        err.headers["Content-Range"] = f"bytes */{size}"
        return err
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(206, data[start : end + 1], headers)


__all__ = ["GcsEmulator", "error_response", "not_found"]
