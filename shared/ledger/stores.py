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

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

# Transient store failures (5xx, 429, a reset or timed-out connection) are retried this many
# times in all, after ~0.05, 0.1, 0.2 s (jittered): a ledger call that gives up makes its request
# redelivered, and each request makes about 20 of them.
STORE_ATTEMPTS = 4
STORE_BACKOFF_SECONDS = 0.05


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
    """Records as small objects under ``gs://BUCKET/PREFIX``, created with ifGenerationMatch=0.

    Every call retries transient failures. A write whose answer was lost may have happened, so
    a retried conditional write reads the record back before deciding: a create that finds
    its own bytes created them, a replace that finds its new bytes replaced them, and a
    conditional delete that finds nothing deleted it (claims, the only records replaced or
    deleted this way, carry a unique holder, so no other copy writes the same bytes).
    """

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

    def _retried(self, what: str, call: Callable[[int], T]) -> T:
        """``call(attempt)`` until it returns, retrying transient failures; StoreError after
        the last attempt or on a permanent one (403, 400...)."""
        from google.api_core import exceptions

        for attempt in range(STORE_ATTEMPTS):
            try:
                return call(attempt)
            except (exceptions.ServerError, exceptions.TooManyRequests, OSError) as exc:
                if attempt + 1 == STORE_ATTEMPTS:
                    raise StoreError(f"ledger {what} failed: {type(exc).__name__}") from None
            except exceptions.GoogleAPIError as exc:
                raise StoreError(f"ledger {what} failed: {type(exc).__name__}") from None
            time.sleep(STORE_BACKOFF_SECONDS * 2**attempt * (0.5 + random.random()))  # noqa: S311
        raise AssertionError("unreachable")

    def _download(self, blob: Any) -> bytes | None:
        from google.api_core import exceptions

        try:
            data: bytes = blob.download_as_bytes(timeout=self._timeout, retry=None)
        except exceptions.NotFound:
            return None
        return data

    def get(self, key: str) -> bytes | None:
        return self._retried("read", lambda _: self._download(
            self._get_bucket().blob(self._name(key))))

    def create(self, key: str, value: bytes) -> bool:
        from google.api_core import exceptions

        def attempt(number: int) -> bool:
            blob = self._get_bucket().blob(self._name(key))
            try:
                blob.upload_from_string(
                    value, content_type="application/json", if_generation_match=0,
                    timeout=self._timeout, retry=None,
                )
            except exceptions.PreconditionFailed:
                # After a lost answer the record may be our own write.
                return number > 0 and self._download(blob) == value
            return True

        return self._retried("write", attempt)

    def put(self, key: str, value: bytes) -> None:
        self._retried("write", lambda _: self._get_bucket().blob(self._name(key))
                      .upload_from_string(value, content_type="application/json",
                                          timeout=self._timeout, retry=None))

    def delete(self, key: str) -> None:
        from google.api_core import exceptions

        def attempt(_: int) -> None:
            try:
                self._get_bucket().blob(self._name(key)).delete(timeout=self._timeout,
                                                                retry=None)
            except exceptions.NotFound:
                return

        self._retried("delete", attempt)

    def _read_versioned(self, key: str) -> tuple[Any, bytes] | None:
        """The blob (its ``generation`` set from the download's headers) and its bytes."""
        blob = self._get_bucket().blob(self._name(key))
        data = self._download(blob)
        if data is None:
            return None
        if blob.generation is None:  # cannot condition the write: refuse rather than guess
            raise StoreError("ledger read failed: no generation on the record")
        return blob, data

    def replace(self, key: str, expected: bytes, value: bytes) -> bool:
        from google.api_core import exceptions

        def attempt(number: int) -> bool:
            found = self._read_versioned(key)
            if found is not None and number > 0 and found[1] == value:
                return True  # our write of an earlier attempt landed
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
            return True

        return self._retried("write", attempt)

    def delete_if(self, key: str, expected: bytes) -> bool:
        from google.api_core import exceptions

        def attempt(number: int) -> bool:
            found = self._read_versioned(key)
            if found is None:
                return number > 0  # gone after our lost delete: ours
            if found[1] != expected:
                return False
            blob = found[0]
            try:
                blob.delete(if_generation_match=int(blob.generation), timeout=self._timeout,
                            retry=None)
            except (exceptions.PreconditionFailed, exceptions.NotFound):
                return False
            return True

        return self._retried("delete", attempt)
