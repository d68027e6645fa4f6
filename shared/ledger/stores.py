"""Where the ledger keeps its records: a tiny create-if-absent key/value interface.

A few operations, each one or two requests on any backend: create-if-absent is atomic (GCS
``ifGenerationMatch=0`` on upload, memory with a lock). Phase records are never updated in
place; ``put`` only serves records that a later restore may supersede (which request started
the restore of an object). Claims (``shared.ledger.Ledger.claim``) are the one thing that
changes hands, so they alone use the compare-and-swap pair ``replace`` / ``delete_if``: two
copies taking over the same stale claim cannot both win, and a holder that overran its claim
cannot drop the claim of the copy that took it over (GCS: the generation read with the bytes,
then ``ifGenerationMatch`` on the write or delete).
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

    def replace(self, key: str, expected: bytes, value: bytes) -> bool:
        """Write ``value`` only if the record still holds exactly ``expected``; True if so."""

    def delete_if(self, key: str, expected: bytes) -> bool:
        """Remove the record only if it still holds exactly ``expected``; True if so."""


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

    def replace(self, key: str, expected: bytes, value: bytes) -> bool:
        with self._lock:
            if self._records.get(key) != expected:
                return False
            self._records[key] = value
            return True

    def delete_if(self, key: str, expected: bytes) -> bool:
        with self._lock:
            if self._records.get(key) != expected:
                return False
            del self._records[key]
            return True

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

    def _read_versioned(self, key: str) -> tuple[Any, bytes] | None:
        """The blob (its ``generation`` set from the download's headers) and its bytes."""
        from google.api_core import exceptions

        blob = self._get_bucket().blob(self._name(key))
        try:
            data: bytes = blob.download_as_bytes(timeout=self._timeout, retry=None)
        except exceptions.NotFound:
            return None
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"ledger read failed: {type(exc).__name__}") from None
        if blob.generation is None:  # cannot condition the write: refuse rather than guess
            raise StoreError("ledger read failed: no generation on the record")
        return blob, data

    def replace(self, key: str, expected: bytes, value: bytes) -> bool:
        from google.api_core import exceptions

        found = self._read_versioned(key)
        if found is None or found[1] != expected:
            return False
        blob = found[0]
        try:
            blob.upload_from_string(
                value, content_type="application/json",
                if_generation_match=int(blob.generation), timeout=self._timeout, retry=None,
            )
        except exceptions.PreconditionFailed:
            return False
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"ledger write failed: {type(exc).__name__}") from None
        return True

    def delete_if(self, key: str, expected: bytes) -> bool:
        from google.api_core import exceptions

        found = self._read_versioned(key)
        if found is None or found[1] != expected:
            return False
        blob = found[0]
        try:
            blob.delete(if_generation_match=int(blob.generation), timeout=self._timeout,
                        retry=None)
        except (exceptions.PreconditionFailed, exceptions.NotFound):
            return False
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"ledger delete failed: {type(exc).__name__}") from None
        return True
