"""Google Cloud Storage: restore a soft-deleted object through google-cloud-storage.

Safety first: unless the caller set ``allow_overwrite``, the restore is sent with
``ifGenerationMatch=0`` so it succeeds only when no live object of that name exists. A retried or
duplicated request therefore cannot replace the copy the first attempt made; instead it meets a
412, and we compare the live object with the soft-deleted source (size, CRC32C, MD5): the same
bytes mean the first restore succeeded (``already_restored``), different bytes are a real
conflict.

The SDK is imported when the first GCS request arrives, never at module import.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.config import GcsSettings
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.providers.base import (
    code_for_status,
    failure,
    is_retryable_status,
    network_error,
    network_failure,
    outcome_for,
)
from shared.restore_requests import GcsRestoreRequest

if TYPE_CHECKING:  # the status models are pydantic's: imported by the status path only
    from shared.status import GcsStatusQuery, ObjectStatus

_REASONS: dict[str, ErrorCode] = {
    "softdeletepolicyrequired": ErrorCode.SOFT_DELETE_NOT_ENABLED,
    "softdeletepolicynotset": ErrorCode.SOFT_DELETE_NOT_ENABLED,
    "notfound": ErrorCode.NOT_FOUND,
    "objectnotsoftdeleted": ErrorCode.OBJECT_NOT_SOFT_DELETED,
    "conditionnotmet": ErrorCode.PRECONDITION_FAILED,
    "retentionpolicynotmet": ErrorCode.RETENTION_POLICY_NOT_MET,
    "forbidden": ErrorCode.ACCESS_DENIED,
    "required": ErrorCode.BAD_REQUEST,
    "invalid": ErrorCode.BAD_REQUEST,
    "ratelimitexceeded": ErrorCode.THROTTLED,
    "toomanyrequests": ErrorCode.THROTTLED,
}


class GcsAdapter:
    def __init__(self, settings: GcsSettings, *, timeout: float = 10.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._client_instance: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        if self._client_instance is None:
            with self._lock:
                if self._client_instance is None:
                    from google.cloud import storage

                    endpoint = self._settings.endpoint
                    if endpoint:
                        from google.auth.credentials import AnonymousCredentials

                        if "://" not in endpoint:
                            endpoint = f"http://{endpoint}"
                        self._client_instance = storage.Client(
                            project=self._settings.project or "local-emulator",
                            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                            client_options={"api_endpoint": endpoint},
                        )
                    else:
                        self._client_instance = storage.Client(project=self._settings.project)
        return self._client_instance

    def client(self) -> Any:
        """The google-cloud-storage client (one per process, shared by every caller)."""
        return self._client()

    # -- operations --------------------------------------------------------------------------
    def restore(self, request: GcsRestoreRequest) -> Outcome:
        from google.api_core.exceptions import GoogleAPICallError

        network = _network_errors()

        client = self._client()
        bucket = client.bucket(request.bucket)
        try:
            generation = request.generation or self._newest_soft_deleted(bucket, request.object)
        except GoogleAPICallError as exc:
            return self._api_failure(request, exc)
        except network as exc:
            return network_failure(request, exc)
        if generation is None:
            return failure(
                request, ErrorCode.NOT_FOUND,
                f"no soft-deleted generation of {request.object!r} exists (never deleted, "
                "restored and purged, or past its hard-delete time)",
                http_status=404,
            )
        try:
            restored = self._post_restore(client, bucket, request, generation)
        except GoogleAPICallError as exc:
            blocked_by_live_object = exc.code == 412 and _reason(exc) == "conditionnotmet"
            if blocked_by_live_object and self._sent_no_overwrite(request):
                return self._explain_live_object(request, bucket, generation, exc)
            return self._api_failure(request, exc, generation=generation)
        except network as exc:
            return network_failure(request, exc, generation=generation)
        return outcome_for(
            request, OutcomeStatus.COMPLETED, generation=generation,
            restored_generation=int(restored["generation"]),
            storage_class=restored.get("storageClass"),
        )

    def check(self, request: GcsRestoreRequest) -> Outcome:
        """A GCS restore is synchronous: the object is restored exactly when a live copy exists."""
        from google.api_core.exceptions import GoogleAPICallError

        network = _network_errors()

        bucket = self._client().bucket(request.bucket)
        try:
            live = bucket.get_blob(request.object, timeout=self._timeout, retry=None)
        except GoogleAPICallError as exc:
            return self._api_failure(request, exc)
        except network as exc:
            return network_failure(request, exc)
        if live is None:
            return failure(
                request, ErrorCode.NOT_RESTORED, "no live object of that name", http_status=404
            )
        return outcome_for(
            request, OutcomeStatus.COMPLETED, restored_generation=live.generation,
            storage_class=live.storage_class,
        )

    def status(
        self, query: GcsStatusQuery, *, previous_expiry: datetime | None = None
    ) -> ObjectStatus:
        """live, soft_deleted, soft_delete_disabled or not_found.

        The live object (objects.get), then the soft-deleted generations of exactly that name
        (objects.list softDeleted=true); only when neither exists is the bucket read, to tell
        "soft delete is off" from "nothing to restore". ``previous_expiry`` is a COS notion and
        is ignored.
        """
        from google.api_core.exceptions import Forbidden, GoogleAPICallError, NotFound

        from shared.status import SoftDeletedGeneration, StatusState, status_error, status_of

        network = _network_errors()

        bucket = self._client().bucket(query.bucket)
        try:
            live = bucket.get_blob(query.object, timeout=self._timeout, retry=None)
            soft = [
                SoftDeletedGeneration(
                    generation=int(blob.generation),
                    soft_delete_time=blob.soft_delete_time,
                    hard_delete_time=blob.hard_delete_time,
                    size=blob.size,
                    restore_token=blob._properties.get("restoreToken"),
                )
                for blob in self._soft_deleted_blobs(bucket, query.object)
            ]
        except NotFound:  # get_blob answers None for a missing object: the bucket is missing
            return status_of(query, StatusState.NOT_FOUND, message="no such bucket")
        except GoogleAPICallError as exc:
            return status_error(query, self._api_error(exc))
        except network as exc:
            return status_error(query, network_error("gcs", exc))
        soft.sort(key=lambda g: g.generation, reverse=True)

        if live is not None:
            return status_of(
                query, StatusState.LIVE, live_generation=int(live.generation),
                storage_class=live.storage_class, size=live.size, soft_deleted_generations=soft,
                message="a live object exists",
            )
        if soft:
            return status_of(
                query, StatusState.SOFT_DELETED, soft_deleted_generations=soft,
                message=f"no live object; {len(soft)} soft-deleted generation(s) can be restored",
            )
        try:
            bucket.reload(timeout=self._timeout, retry=None)
        except Forbidden:
            # Reading the bucket needs storage.buckets.get, which object roles lack: the object
            # is gone either way, only the reason stays unknown.
            return status_of(
                query, StatusState.NOT_FOUND, soft_deleted_generations=soft,
                message="no live or soft-deleted object (the bucket's soft delete policy could "
                "not be read: storage.buckets.get denied)",
            )
        except NotFound:
            return status_of(query, StatusState.NOT_FOUND, message="no such bucket")
        except GoogleAPICallError as exc:
            return status_error(query, self._api_error(exc))
        except network as exc:
            return status_error(query, network_error("gcs", exc))
        retention = bucket.soft_delete_policy.retention_duration_seconds or 0
        if retention == 0:
            return status_of(
                query, StatusState.SOFT_DELETE_DISABLED, soft_deleted_generations=soft,
                soft_delete_retention_seconds=0,
                message="no live object, and the bucket's soft delete is off: a deleted object "
                "cannot be restored",
            )
        return status_of(
            query, StatusState.NOT_FOUND, soft_deleted_generations=soft,
            soft_delete_retention_seconds=retention,
            message="no live or soft-deleted object (never written, or past its hard-delete "
            "time)",
        )

    # -- wire --------------------------------------------------------------------------------
    def _soft_deleted_blobs(self, bucket: Any, name: str) -> list[Any]:
        """Every soft-deleted generation of exactly ``name`` (listed by prefix, then matched)."""
        blobs = bucket.list_blobs(
            prefix=name, soft_deleted=True, timeout=self._timeout, retry=None
        )
        return [blob for blob in blobs if blob.name == name]

    def _newest_soft_deleted(self, bucket: Any, name: str) -> int | None:
        generations = [int(blob.generation) for blob in self._soft_deleted_blobs(bucket, name)]
        return max(generations, default=None)

    @staticmethod
    def _sent_no_overwrite(request: GcsRestoreRequest) -> bool:
        return request.effective_if_generation_match() == 0

    def _post_restore(
        self, client: Any, bucket: Any, request: GcsRestoreRequest, generation: int
    ) -> dict[str, Any]:
        query: dict[str, Any] = {"generation": generation}
        optional = {
            "copySourceAcl": request.copy_source_acl,
            "projection": request.projection,
            "ifGenerationMatch": request.effective_if_generation_match(),
            "ifGenerationNotMatch": request.if_generation_not_match,
            "ifMetagenerationMatch": request.if_metageneration_match,
            "ifMetagenerationNotMatch": request.if_metageneration_not_match,
            "restoreToken": request.restore_token,
        }
        query.update({k: v for k, v in optional.items() if v is not None})
        if request.restore_token is None:
            blob = bucket.restore_blob(
                request.object,
                generation=generation,
                copy_source_acl=request.copy_source_acl,
                projection=request.projection,
                if_generation_match=query.get("ifGenerationMatch"),
                if_generation_not_match=request.if_generation_not_match,
                if_metageneration_match=request.if_metageneration_match,
                if_metageneration_not_match=request.if_metageneration_not_match,
                timeout=self._timeout,
                retry=None,  # ours, bounded by the deadline: see shared.retry
            )
            return {"generation": blob.generation, "storageClass": blob.storage_class}
        # restore_blob has no restoreToken parameter (3.17): send the documented call directly.
        path = f"/b/{quote(request.bucket, safe='')}/o/{quote(request.object, safe='')}/restore"
        resource: dict[str, Any] = client._post_resource(
            path, None, query_params=query, timeout=self._timeout, retry=None
        )
        return resource

    def _explain_live_object(
        self, request: GcsRestoreRequest, bucket: Any, generation: int, exc: Any
    ) -> Outcome:
        """A live object blocked ifGenerationMatch=0: our earlier restore, or a real conflict?"""
        from google.api_core.exceptions import GoogleAPICallError

        network = _network_errors()

        try:
            live = bucket.get_blob(request.object, timeout=self._timeout, retry=None)
            source = bucket.get_blob(
                request.object, generation=generation, soft_deleted=True,
                timeout=self._timeout, retry=None,
            )
        except GoogleAPICallError as lookup_exc:
            return self._api_failure(request, lookup_exc, generation=generation)
        except network as lookup_exc:
            return network_failure(request, lookup_exc, generation=generation)
        if live is not None and source is not None and _same_bytes(live, source):
            return outcome_for(
                request, OutcomeStatus.ALREADY_RESTORED, generation=generation,
                restored_generation=live.generation, storage_class=live.storage_class,
            )
        live_generation = getattr(live, "generation", None)
        return failure(
            request, ErrorCode.CONFLICT,
            f"a different live object exists (generation {live_generation}); set "
            "allow_overwrite=true to replace it",
            http_status=412, provider_code="conditionNotMet", generation=generation,
        )

    def _api_failure(self, request: GcsRestoreRequest, exc: Any, **fields: Any) -> Outcome:
        error = self._api_error(exc)
        return outcome_for(request, OutcomeStatus.FAILED, error=error, **fields)

    @staticmethod
    def _api_error(exc: Any) -> ErrorInfo:
        """A GoogleAPICallError as our error (code from the reason, else the HTTP status)."""
        http_status = int(exc.code) if exc.code is not None else None
        reason = _reason(exc)
        code = _REASONS.get(reason or "") or code_for_status(http_status)
        provider_code = _original_reason(exc)
        if code is ErrorCode.SOFT_DELETE_NOT_ENABLED or (
            http_status == 400 and "soft" in str(exc.message).lower()
        ):
            code = ErrorCode.SOFT_DELETE_NOT_ENABLED
        response = getattr(exc, "response", None)
        request_id = None
        if response is not None:
            headers = getattr(response, "headers", {}) or {}
            request_id = headers.get("X-GUploader-UploadID") or headers.get("x-goog-request-id")
        return ErrorInfo(
            code=code,
            message=str(exc.message),
            retryable=is_retryable_status(http_status),
            http_status=http_status,
            provider_code=provider_code,
            provider_request_id=request_id,
        )


def _reason(exc: Any) -> str | None:
    original = _original_reason(exc)
    return original.lower() if original else None


def _original_reason(exc: Any) -> str | None:
    errors = getattr(exc, "errors", None) or []
    for error in errors:
        if isinstance(error, dict) and error.get("reason"):
            return str(error["reason"])
    return None


def _same_bytes(live: Any, source: Any) -> bool:
    return bool(
        live.size == source.size
        and live.crc32c == source.crc32c
        and (live.md5_hash == source.md5_hash or not (live.md5_hash and source.md5_hash))
        and live.crc32c is not None
    )


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests
    from google.auth.exceptions import TransportError

    return (requests.RequestException, TransportError, ConnectionError, TimeoutError)
