"""Tencent COS: restore an archived object through cos-python-sdk-v5.

Flow: HEAD the object (storage class and restore state), refuse what cannot work before spending
a rate-limited restore call (not archived; Expedited on DEEP_ARCHIVE), skip the call when a
restore is already running, then POST ``?restore`` keeping the HTTP status, because the SDK's
``restore_object`` returns None for both 202 (job created) and 200 (copy already readable).

The SDK is imported when the first COS request arrives, never at module import.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.config import CosSettings
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.providers.base import (
    code_for_status,
    failure,
    is_retryable_status,
    network_error,
    network_failure,
    outcome_for,
)
from shared.recheck import utcnow
from shared.records import frozen
from shared.restore_requests import CosRestoreRequest
from shared.tiers import ARCHIVE_CLASSES, TIERED_CLASSES, expected_window, supports_tier

if TYPE_CHECKING:  # the status models are pydantic's: imported by the status path only
    from shared.status import CosStatusQuery, ObjectStatus

_ONGOING = re.compile(r'ongoing-request\s*=\s*"(true|false)"', re.IGNORECASE)
_EXPIRY = re.compile(r'expiry-date\s*=\s*"([^"]+)"', re.IGNORECASE)
# x-cos-restore-status, sent while a restore runs: tier="bulk"; request-date="<HTTP date>"
_STATUS_TIER = re.compile(r'tier\s*=\s*"([^"]*)"', re.IGNORECASE)
_REQUEST_DATE = re.compile(r'request-date\s*=\s*"([^"]+)"', re.IGNORECASE)
_TIER_NAMES = {"expedited": "Expedited", "standard": "Standard", "bulk": "Bulk"}

# COS error codes -> (our code, outcome status). Anything unlisted falls back on the HTTP status.
_ERROR_CODES: dict[str, tuple[ErrorCode, OutcomeStatus]] = {
    "RestoreNonArchiveObject": (ErrorCode.NOT_ARCHIVED, OutcomeStatus.REJECTED),
    "NoSuchKey": (ErrorCode.NOT_FOUND, OutcomeStatus.FAILED),
    "NoSuchResource": (ErrorCode.NOT_FOUND, OutcomeStatus.FAILED),
    "NoSuchVersion": (ErrorCode.NOT_FOUND, OutcomeStatus.FAILED),
    "NoSuchBucket": (ErrorCode.NOT_FOUND, OutcomeStatus.FAILED),
    "AccessDenied": (ErrorCode.ACCESS_DENIED, OutcomeStatus.FAILED),
    "SignatureDoesNotMatch": (ErrorCode.ACCESS_DENIED, OutcomeStatus.FAILED),
    "InvalidAccessKeyId": (ErrorCode.ACCESS_DENIED, OutcomeStatus.FAILED),
    "RequestTimeTooSkewed": (ErrorCode.ACCESS_DENIED, OutcomeStatus.FAILED),
    "MalformedXML": (ErrorCode.BAD_REQUEST, OutcomeStatus.FAILED),
    "InvalidArgument": (ErrorCode.BAD_REQUEST, OutcomeStatus.FAILED),
    "SlowDown": (ErrorCode.THROTTLED, OutcomeStatus.FAILED),
}


@frozen
class RestoreState:
    """What ``x-cos-restore`` says: never requested, running, or readable until ``expiry``."""

    requested: bool
    ongoing: bool = False
    expiry: datetime | None = None


def _http_date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return None


def parse_restore_header(value: str | None) -> RestoreState:
    if not value:
        return RestoreState(requested=False)
    ongoing = _ONGOING.search(value)
    expiry_match = _EXPIRY.search(value)
    expiry = _http_date(expiry_match.group(1)) if expiry_match else None
    return RestoreState(
        requested=True, ongoing=bool(ongoing and ongoing.group(1).lower() == "true"), expiry=expiry
    )


def parse_restore_status_header(value: str | None) -> tuple[str | None, datetime | None]:
    """(tier, request date) from ``x-cos-restore-status``; None for what it does not say."""
    if not value:
        return None, None
    tier_match = _STATUS_TIER.search(value)
    tier = None
    if tier_match and tier_match.group(1).strip():
        raw = tier_match.group(1).strip()
        tier = _TIER_NAMES.get(raw.lower(), raw)
    date_match = _REQUEST_DATE.search(value)
    return tier, _http_date(date_match.group(1)) if date_match else None


def _header(headers: dict[str, Any], name: str) -> str | None:
    # head_object returns the headers as a plain dict with the server's spelling.
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return str(value)
    return None


class CosAdapter:
    def __init__(
        self,
        settings: CosSettings,
        *,
        timeout: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        # What "now" is when an expiry is compared: COS's own clock is what expires copies, so
        # this must agree with it (tests point it at the emulator's virtual clock).
        self.clock = clock
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        # The SDK logs request headers (signatures, tokens) at DEBUG and stack traces at ERROR;
        # our outcomes carry the status, code and request id instead.
        logging.getLogger("qcloud_cos").setLevel(logging.CRITICAL)

    # -- client -----------------------------------------------------------------------------
    def _client(self, region: str) -> Any:
        client = self._clients.get(region)
        if client is not None:
            return client
        with self._lock:
            if region not in self._clients:
                from qcloud_cos import CosConfig, CosS3Client

                settings = self._settings
                options: dict[str, Any] = {
                    "Region": region,
                    "SecretId": _reveal(settings.secret_id),
                    "SecretKey": _reveal(settings.secret_key),
                    "Token": _reveal(settings.session_token),
                    "Scheme": settings.scheme,
                    "Timeout": self._timeout,
                    "PoolConnections": settings.pool_size,
                    "PoolMaxSize": settings.pool_size,
                }
                if settings.endpoint:
                    endpoint = urlsplit(settings.endpoint)
                    options.update(
                        Scheme=endpoint.scheme or "http", IP=endpoint.hostname, Port=endpoint.port
                    )
                # retry=0: retries are ours (shared.retry), bounded by the invocation's deadline,
                # instead of the SDK's fixed 1 s, 2 s, 3 s sleeps.
                self._clients[region] = CosS3Client(CosConfig(**options), retry=0)
            return self._clients[region]

    # -- operations --------------------------------------------------------------------------
    def restore(self, request: CosRestoreRequest) -> Outcome:
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        client = self._client(request.region)
        looked = self._look(client, request)
        if isinstance(looked, Outcome):
            return looked
        head, storage_class, state = looked
        refusal = _refusal(request, storage_class, _header(head, "x-cos-storage-tier"))
        if refusal is not None:
            return refusal
        if state.ongoing:
            return outcome_for(request, OutcomeStatus.IN_PROGRESS, storage_class=storage_class)

        try:
            status = self._post_restore(client, request)
        except CosServiceError as exc:
            return self._service_failure(request, exc, storage_class=storage_class)
        except CosClientError as exc:
            return network_failure(request, exc, storage_class=storage_class)

        if status == 202:
            return self._initiated(request, storage_class)
        # 200: the copy was already readable and the new Days moved its expiry. Read it back.
        expiry = state.expiry
        # The restore itself succeeded: if this read fails, the older expiry is still worth it.
        with contextlib.suppress(CosServiceError, CosClientError):
            head = self._head(client, request)
            expiry = parse_restore_header(_header(head, "x-cos-restore")).expiry or expiry
        return outcome_for(
            request, OutcomeStatus.ALREADY_RESTORED, storage_class=storage_class,
            expiry_time=expiry,
        )

    def restore_listed(self, request: CosRestoreRequest, storage_class: str) -> Outcome:
        """Restore an object whose storage class a listing already gave: no HEAD first.

        One request per object is what lets a bulk job run at the provider's rate limit; the
        restore's own answer still tells initiated (202), already restored (200) and in
        progress (409) apart.
        """
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        refusal = _refusal(request, storage_class, None)
        if refusal is not None:
            return refusal
        try:
            status = self._post_restore(self.client(request.region), request)
        except CosServiceError as exc:
            return self._service_failure(request, exc, storage_class=storage_class)
        except CosClientError as exc:
            return network_failure(request, exc, storage_class=storage_class)
        if status == 202:
            return self._initiated(request, storage_class)
        return outcome_for(request, OutcomeStatus.ALREADY_RESTORED, storage_class=storage_class)

    def client(self, region: str) -> Any:
        """The region's CosS3Client (one per region, shared by every caller)."""
        return self._client(region)

    def check(self, request: CosRestoreRequest) -> Outcome:
        looked = self._look(self._client(request.region), request)
        if isinstance(looked, Outcome):
            return looked
        _, storage_class, state = looked
        if state.ongoing:
            return outcome_for(request, OutcomeStatus.IN_PROGRESS, storage_class=storage_class)
        if state.requested:
            return outcome_for(
                request, OutcomeStatus.COMPLETED, storage_class=storage_class,
                expiry_time=state.expiry,
            )
        if storage_class not in ARCHIVE_CLASSES | TIERED_CLASSES:
            return failure(
                request, ErrorCode.NOT_ARCHIVED, f"object is {storage_class}, readable as it is",
                status=OutcomeStatus.REJECTED, storage_class=storage_class,
            )
        return failure(
            request, ErrorCode.NOT_RESTORED,
            "object is archived and no restored copy exists (never requested, or expired)",
            storage_class=storage_class,
        )

    def status(
        self, query: CosStatusQuery, *, previous_expiry: datetime | None = None
    ) -> ObjectStatus:
        """One HEAD: not_found, not_archived, archived, restoring, restored or restore_expired.

        ``previous_expiry`` (else ``query.previous_expiry``) is the expiry of an earlier restore
        from the caller's records: COS drops ``x-cos-restore`` when a restored copy expires, so
        without it an expired restore reads as ``archived``.
        """
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        from shared.status import StatusState, as_utc, status_error, status_of

        previous = as_utc(previous_expiry or query.previous_expiry)
        try:
            head, storage_class, state = self._head_state(self._client(query.region), query)
        except CosServiceError as exc:
            if int(exc.get_status_code()) == 404:  # HEAD has no body: key or bucket
                return status_of(
                    query, StatusState.NOT_FOUND, checked_at=self.clock(),
                    message="no such key (or no such bucket, or version)",
                )
            return status_error(query, self._service_error(exc)[0], checked_at=self.clock())
        except CosClientError as exc:
            return status_error(query, network_error("cos", exc), checked_at=self.clock())

        now = self.clock()
        storage_tier = _header(head, "x-cos-storage-tier")
        length = _header(head, "Content-Length")
        facts: dict[str, Any] = {
            "storage_class": storage_class,
            "storage_tier": storage_tier,
            "size": int(length) if length and length.isdigit() else None,
            "checked_at": now,
        }
        if state.ongoing:
            tier, requested_at = parse_restore_status_header(
                _header(head, "x-cos-restore-status")
            )
            return status_of(
                query, StatusState.RESTORING, tier=tier, requested_at=requested_at,
                message="a restore is running", **facts,
            )
        if state.requested:
            if state.expiry is not None and state.expiry <= now:
                return status_of(
                    query, StatusState.RESTORE_EXPIRED, expiry_time=state.expiry,
                    message="the restored copy has expired; restore again to read it", **facts,
                )
            return status_of(
                query, StatusState.RESTORED, expiry_time=state.expiry,
                message="a restored copy is readable", **facts,
            )
        if not _archived(storage_class, storage_tier):
            return status_of(
                query, StatusState.NOT_ARCHIVED,
                message=f"the object is {storage_class}, readable as it is", **facts,
            )
        if previous is not None and previous <= now:
            return status_of(
                query, StatusState.RESTORE_EXPIRED, expiry_time=previous,
                message="the restored copy has expired; restore again to read it", **facts,
            )
        return status_of(
            query, StatusState.ARCHIVED,
            message="archived, no restored copy: restore it to read it", **facts,
        )

    # -- wire --------------------------------------------------------------------------------
    def _look(
        self, client: Any, request: CosRestoreRequest
    ) -> tuple[dict[str, Any], str, RestoreState] | Outcome:
        """HEAD the object: its headers, storage class and restore state, or why that failed."""
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        try:
            return self._head_state(client, request)
        except CosServiceError as exc:
            return self._service_failure(request, exc)
        except CosClientError as exc:
            return network_failure(request, exc)

    def _head_state(
        self, client: Any, target: CosRestoreRequest | CosStatusQuery
    ) -> tuple[dict[str, Any], str, RestoreState]:
        """HEAD: headers, storage class and restore state. Raises the SDK's errors."""
        head = self._head(client, target)
        storage_class = (_header(head, "x-cos-storage-class") or "STANDARD").upper()
        return head, storage_class, parse_restore_header(_header(head, "x-cos-restore"))

    def _head(self, client: Any, target: CosRestoreRequest | CosStatusQuery) -> dict[str, Any]:
        extra = {"VersionId": target.version_id} if target.version_id else {}
        head: dict[str, Any] = client.head_object(Bucket=target.bucket, Key=target.key, **extra)
        return head

    def _post_restore(self, client: Any, request: CosRestoreRequest) -> int:
        """POST ?restore through the SDK's own signing and transport, keeping the status code."""
        from qcloud_cos.cos_auth import CosS3Auth
        from qcloud_cos.cos_comm import format_xml

        params = {"restore": ""}
        if request.version_id:
            params["versionId"] = request.version_id
        body = format_xml(
            data={"Days": request.days, "CASJobParameters": {"Tier": request.tier}},
            root="RestoreRequest",
        )
        conf = client.get_conf()
        response = client.send_request(
            method="POST",
            url=conf.uri(bucket=request.bucket, path=request.key),
            bucket=request.bucket,
            data=body,
            auth=CosS3Auth(conf, request.key, params=params),
            headers={},
            params=params,
        )
        return int(response.status_code)

    def _initiated(self, request: CosRestoreRequest, storage_class: str) -> Outcome:
        window = expected_window(storage_class, request.tier)
        fields: dict[str, Any] = {"storage_class": storage_class}
        if window is not None:
            now = datetime.now(timezone.utc)
            fields.update(
                expected_completion_after=now + window[0],
                expected_completion_before=now + window[1],
            )
        return outcome_for(request, OutcomeStatus.INITIATED, **fields)

    def _service_failure(
        self, request: CosRestoreRequest, exc: Any, **fields: Any
    ) -> Outcome:
        if int(exc.get_status_code()) == 409:  # RestoreAlreadyInProgress
            return outcome_for(request, OutcomeStatus.IN_PROGRESS, **fields)
        error, status = self._service_error(exc)
        return outcome_for(request, status, error=error, **fields)

    @staticmethod
    def _service_error(exc: Any) -> tuple[ErrorInfo, OutcomeStatus]:
        """A CosServiceError as our error, and the outcome status it calls for."""
        http_status = int(exc.get_status_code())
        provider_code = str(exc.get_error_code())
        try:
            provider_request_id = str(exc.get_request_id())
        except (KeyError, TypeError):
            provider_request_id = None
        code, status = _ERROR_CODES.get(provider_code, (None, OutcomeStatus.FAILED))
        if code is None:
            code = code_for_status(http_status)
        error = ErrorInfo(
            code=code,
            message=str(exc.get_error_msg() or provider_code),
            retryable=is_retryable_status(http_status),
            http_status=http_status,
            provider_code=provider_code,
            provider_request_id=provider_request_id,
        )
        return error, status


def _refusal(
    request: CosRestoreRequest, storage_class: str, storage_tier: str | None
) -> Outcome | None:
    """Storage-class rules checked before the restore call."""
    # Intelligent tiering is archived only in an archive tier; when COS does not say, let it
    # decide (405 RestoreNonArchiveObject).
    if storage_class in TIERED_CLASSES and (
        storage_tier is None or "ARCHIVE" in storage_tier.upper()
    ):
        return None
    if storage_class not in ARCHIVE_CLASSES | TIERED_CLASSES:
        return failure(
            request, ErrorCode.NOT_ARCHIVED,
            f"object is {storage_class}: only archived objects need a restore",
            status=OutcomeStatus.REJECTED, storage_class=storage_class,
        )
    if not supports_tier(storage_class, request.tier):
        return failure(
            request, ErrorCode.TIER_NOT_SUPPORTED,
            f"{storage_class} objects cannot be restored with the {request.tier} tier "
            "(use Standard or Bulk)",
            status=OutcomeStatus.REJECTED, storage_class=storage_class,
        )
    return None


def _archived(storage_class: str, storage_tier: str | None) -> bool:
    """Whether reading the object needs a restore. Intelligent tiering: only in an archive tier
    (when COS does not say which tier, the object is taken to be readable)."""
    if storage_class in TIERED_CLASSES:
        return storage_tier is not None and "ARCHIVE" in storage_tier.upper()
    return storage_class in ARCHIVE_CLASSES


def _reveal(secret: Any) -> str | None:
    return None if secret is None else str(secret.get_secret_value())
