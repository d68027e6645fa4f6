"""Where the ledger keeps its records: a tiny create-if-absent key/value interface.

A few operations, each one request on any backend: create-if-absent is atomic (GCS
``ifGenerationMatch=0`` on upload, memory with a lock). Phase records are never updated in
place, so no backend needs compare-and-swap; ``put`` only serves records that a later restore
may supersede (which request started the restore of an object).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class StoreError(RuntimeError):
    """The store could not be read or written; the caller must not acknowledge the request."""


class LedgerStore(Protocol):
    def get(self, key: str) -> bytes | None:
        """The record's bytes, or None when there is none."""

    def create(self, key: str, value: bytes) -> bool:
        """Write the record unless one exists; True when this call created it."""

    def delete(self, key: str) -> None:
        """Remove the record; absent records are fine."""

    def put(self, key: str, value: bytes) -> None:
        """Write the record, replacing any (only for records that may be superseded)."""


class MemoryStore:
    """Per-instance records: duplicates that reach the same instance are caught, others not.

    The default, because it needs no configuration; deployments that run more than one instance
    should point ``RESTORE_LEDGER`` at a bucket.
    """

    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._records.get(key)

    def create(self, key: str, value: bytes) -> bool:
        with self._lock:
            if key in self._records:
                return False
            self._records[key] = value
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._records[key] = value

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._records)


class GcsStore:
    """Records as small objects under ``gs://BUCKET/PREFIX``, created with ifGenerationMatch=0."""

    def __init__(self, bucket: str, prefix: str, client_factory: Any, timeout: float) -> None:
        self._bucket_name = bucket
        self._prefix = prefix.strip("/")
        self._client_factory = client_factory
        self._timeout = timeout
        self._bucket: Any = None
        self._lock = threading.Lock()

    def _name(self, key: str) -> str:
        return f"{self._prefix}/{key}" if self._prefix else key

    def _get_bucket(self) -> Any:
        with self._lock:
            if self._bucket is None:
                self._bucket = self._client_factory().bucket(self._bucket_name)
            return self._bucket

    def get(self, key: str) -> bytes | None:
        from google.api_core import exceptions

        try:
            data: bytes = self._get_bucket().blob(self._name(key)).download_as_bytes(
                timeout=self._timeout, retry=None
            )
        except exceptions.NotFound:
            return None
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"ledger read failed: {type(exc).__name__}") from None
        return data

    def create(self, key: str, value: bytes) -> bool:
        from google.api_core import exceptions

        blob = self._get_bucket().blob(self._name(key))
        try:
            blob.upload_from_string(
                value, content_type="application/json", if_generation_match=0,
                timeout=self._timeout, retry=None,
            )
        except exceptions.PreconditionFailed:
            return False
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"ledger write failed: {type(exc).__name__}") from None
        return True

    def put(self, key: str, value: bytes) -> None:
        from google.api_core import exceptions

        blob = self._get_bucket().blob(self._name(key))
        try:
            blob.upload_from_string(value, content_type="application/json",
                                    timeout=self._timeout, retry=None)
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"ledger write failed: {type(exc).__name__}") from None

    def delete(self, key: str) -> None:
        from google.api_core import exceptions

        try:
            self._get_bucket().blob(self._name(key)).delete(timeout=self._timeout, retry=None)
        except exceptions.NotFound:
            return
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"ledger delete failed: {type(exc).__name__}") from None
