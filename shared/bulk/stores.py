"""Where a job's report lives: a bucket of the job's own provider, through its SDK.

Three operations are enough (``get``, ``put``, ``keys``): every report file is written whole by
one writer, and a file written twice holds the same rows, so no backend needs create-if-absent
here (the job-completed event's once-only claim goes through the service's ledger).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import IO, Any, Protocol

from shared.ledger.stores import StoreError


class ReportStore(Protocol):
    def get(self, key: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    def put(self, key: str, value: bytes | IO[bytes],
            content_type: str = "application/json") -> None:
        """Write the file whole, replacing any (a file object is streamed, not read whole)."""

    def keys(self, prefix: str) -> Iterator[str]:
        """Names under ``prefix``, in name order, streamed page by page."""


class MemoryReportStore:
    """For tests and dry runs: files in a dict."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self.files.get(key)

    def put(self, key: str, value: bytes | IO[bytes],
            content_type: str = "application/json") -> None:
        data = value if isinstance(value, bytes) else value.read()
        with self._lock:
            self.files[key] = data

    def keys(self, prefix: str) -> Iterator[str]:
        with self._lock:
            names = sorted(k for k in self.files if k.startswith(prefix))
        yield from names


class CosReportStore:
    """Files in a COS bucket (cos-python-sdk-v5 client of the job's region)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def get(self, key: str) -> bytes | None:
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
            data: bytes = response["Body"].get_raw_stream().read()
        except CosServiceError as exc:
            if int(exc.get_status_code()) == 404:
                return None
            raise StoreError(f"report read failed: COS {exc.get_status_code()}") from None
        except CosClientError as exc:
            raise StoreError(f"report read failed: {type(exc).__name__}") from None
        return data

    def put(self, key: str, value: bytes | IO[bytes],
            content_type: str = "application/json") -> None:
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=value,
                                    ContentType=content_type)
        except CosServiceError as exc:
            raise StoreError(f"report write failed: COS {exc.get_status_code()}") from None
        except CosClientError as exc:
            raise StoreError(f"report write failed: {type(exc).__name__}") from None

    def keys(self, prefix: str) -> Iterator[str]:
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        marker = ""
        while True:
            try:
                page = self._client.list_objects(Bucket=self._bucket, Prefix=prefix,
                                                 Marker=marker, MaxKeys=1000)
            except (CosServiceError, CosClientError) as exc:
                raise StoreError(f"report listing failed: {type(exc).__name__}") from None
            contents = page.get("Contents") or []
            for entry in contents:
                yield str(entry["Key"])
            if str(page.get("IsTruncated", "false")).lower() != "true" or not contents:
                return
            marker = str(page.get("NextMarker") or contents[-1]["Key"])


class GcsReportStore:
    """Files in a GCS bucket (google-cloud-storage)."""

    def __init__(self, client: Any, bucket: str, timeout: float = 30.0) -> None:
        self._bucket = client.bucket(bucket)
        self._client = client
        self._timeout = timeout

    def get(self, key: str) -> bytes | None:
        from google.api_core import exceptions

        try:
            data: bytes = self._bucket.blob(key).download_as_bytes(timeout=self._timeout)
        except exceptions.NotFound:
            return None
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"report read failed: {type(exc).__name__}") from None
        return data

    def put(self, key: str, value: bytes | IO[bytes],
            content_type: str = "application/json") -> None:
        from google.api_core import exceptions

        blob = self._bucket.blob(key)
        try:
            if isinstance(value, bytes):
                blob.upload_from_string(value, content_type=content_type, timeout=self._timeout)
            else:
                blob.upload_from_file(value, content_type=content_type, timeout=self._timeout)
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"report write failed: {type(exc).__name__}") from None

    def keys(self, prefix: str) -> Iterator[str]:
        from google.api_core import exceptions

        try:
            for blob in self._client.list_blobs(self._bucket, prefix=prefix,
                                                timeout=self._timeout):
                yield str(blob.name)
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"report listing failed: {type(exc).__name__}") from None
