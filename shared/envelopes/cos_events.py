"""COS bucket event notifications about restores: parse one record, and act on it.

COS sends ``cos:ObjectRestore:Post`` when a restore job is created and
``cos:ObjectRestore:Completed`` when it finishes (REFERENCE.md section 1). A record looks like::

    {"cos": {"cosSchemaVersion": "1.0",
             "cosObject": {"url": "http://b-1250000000.cos.ap-chengdu.myqcloud.com/k", "meta": {..},
                           "vid": "", "key": "/1250000000/b/k", "size": 1029},
             "cosBucket": {"region": "cd", "name": "b", "appid": "1250000000",
                           "s3Region": "ap-chengdu", "cosRegion": "ap-chengdu"},
             "cosNotificationId": "..."},
     "event": {"eventName": "cos:ObjectRestore:Completed", "eventTime": 1545205770, ...}}

Decoding: the bucket is ``<name>-<appid>``; the key is ``cosObject.key`` without its
``/<appid>/<name>/`` prefix, URL-decoded; the region is the first long form found in
``cosBucket.s3Region``, ``cosBucket.cosRegion``, the host of ``cosObject.url``, or the short code
in ``cosBucket.region`` (``gz`` -> ``ap-guangzhou``); ``vid`` (when not empty) is the version.

Acting (``handle_restore_notice``):

* **Completed**: ``RestoreService.check`` HEADs the object (after validation and the bucket
  allowlist). A readable copy publishes ``completed`` with its expiry; a terminal answer
  (bucket not allowed, not found, not restored, not archived) is published too; a retryable
  failure, or a HEAD that still says "in progress" although COS said the job finished, asks for
  a retry (the platform redelivers the event) and publishes nothing.
* **Post**: acknowledged, nothing published and no provider call. The notification does not
  carry the restore request's ``request_id``, so an ``initiated`` event built from it would get
  a different event id from the one the request already published: consumers would see the
  same restore initiated twice. Restores started outside restorefn get their ``completed``
  event all the same.
* **Another ObjectRestore name** (e.g. the configured pattern ``cos:ObjectRestore:*``, if COS
  ever sends that instead of the concrete name): checked like Completed, but "in progress" is
  then acknowledged as a Post.

When restorefn itself started the restore (the ledger remembers which request started the
restore of each object), the ``completed`` event is that request's: its ``request_id``,
``context`` and callback, published under the same ledger phase as the re-checks', so the
trigger and a re-check racing each other publish one ``completed`` between them. Otherwise the
``completed`` event's ``request_id`` is derived from the notification (bucket, key, version,
event name and time), so a redelivered notification produces the same event id, and the ledger
(``shared.ledger``) publishes it once: a redelivery after the event went out neither HEADs the
object nor publishes again. ``days`` and ``tier`` are left out of its data: the notification
does not say what the request asked for. Copies of a notification delivered at once to several
instances each HEAD (a notification never restores anything); one publishes, the others find
the phase claimed and ask for a retry, which then finds it recorded.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from shared.envelopes.base import EnvelopeProblem, Loc, RecordProblem
from shared.ledger import DONE, DuplicateInFlight, StoreError
from shared.outcome import Outcome, OutcomeStatus
from shared.queue import QueueResult
from shared.recheck_runner import pending_request
from shared.records import frozen
from shared.service import RestoreService
from shared.sinks import SinkError

logger = logging.getLogger("restorefn.envelopes.cos")

RESTORE_POST = "cos:ObjectRestore:Post"
RESTORE_COMPLETED = "cos:ObjectRestore:Completed"
RESTORE_PREFIX = "cos:ObjectRestore:"
NOTICE_ID_NAMESPACE = uuid.UUID("0d3c2f1e-8f1b-5c8e-9a4e-6f2b7c1d0e53")

# The short codes COS puts in cosBucket.region, for events that carry no long region name.
SHORT_REGIONS = {
    "gz": "ap-guangzhou",
    "sh": "ap-shanghai",
    "bj": "ap-beijing",
    "cd": "ap-chengdu",
    "cq": "ap-chongqing",
    "nj": "ap-nanjing",
    "hk": "ap-hongkong",
    "sg": "ap-singapore",
    "tj": "ap-beijing-1",
}
_LONG_REGION = re.compile(r"^[a-z]{2,}-[a-z0-9]+(?:-[a-z0-9]+)*$")
_HOST_REGION = re.compile(r"^[a-z0-9-]+\.cos(?:-internal|-website)?\.(?P<region>[a-z0-9-]+)\.")
_APPID = re.compile(r"^[0-9]{5,12}$")

Phase = Literal["posted", "completed", "other"]


@frozen
class CosRestoreNotice:
    """A COS restore notification, decoded."""

    index: int
    event_name: str
    phase: Phase
    bucket: str
    region: str
    key: str
    version_id: str | None
    event_time: datetime | None
    notice_id: str

    def check_payload(self) -> dict[str, Any]:
        """What ``RestoreService.check`` needs. ``days`` only satisfies the request model: a
        check sends no restore and the outcome drops it (the notification does not say)."""
        payload: dict[str, Any] = {
            "provider": "cos", "bucket": self.bucket, "region": self.region, "key": self.key,
            "days": 1, "request_id": self.notice_id,
        }
        if self.version_id:
            payload["version_id"] = self.version_id
        return payload


def is_cos_record(record: object) -> bool:
    return isinstance(record, Mapping) and isinstance(record.get("cos"), Mapping)


def parse_cos_record(record: Mapping[str, Any], index: int) -> CosRestoreNotice | RecordProblem:
    """Decode one ``Records[index]`` entry that has a ``cos`` member."""
    at: Loc = ("Records", index)

    def problem(reason: str, loc: Loc, type_: str) -> RecordProblem:
        return RecordProblem(index, "cos", EnvelopeProblem(reason, at + loc, type_))

    cos = record.get("cos")
    event = record.get("event")
    if not isinstance(cos, Mapping):
        return problem("the record has no cos object", ("cos",), "missing")
    if not isinstance(event, Mapping):
        return problem("the COS record has no event object", ("event",), "missing")
    event_name = event.get("eventName")
    if not isinstance(event_name, str) or not event_name:
        return problem("the COS record has no eventName", ("event", "eventName"), "missing")
    if not event_name.startswith(RESTORE_PREFIX):
        return problem(
            f"only {RESTORE_POST} and {RESTORE_COMPLETED} notifications are handled",
            ("event", "eventName"), "unsupported_event_type",
        )
    bucket_info = cos.get("cosBucket")
    object_info = cos.get("cosObject")
    if not isinstance(bucket_info, Mapping):
        return problem("the COS record has no cosBucket", ("cos", "cosBucket"), "missing")
    if not isinstance(object_info, Mapping):
        return problem("the COS record has no cosObject", ("cos", "cosObject"), "missing")

    name = _text(bucket_info.get("name"))
    raw_key = _text(object_info.get("key"))
    appid = _text(bucket_info.get("appid")) or _text(cos.get("appid")) or _appid_of(raw_key)
    if not name:
        return problem("cosBucket.name is missing", ("cos", "cosBucket", "name"), "missing")
    if not _APPID.match(appid):
        return problem(
            "cosBucket.appid is missing or not numeric", ("cos", "cosBucket", "appid"),
            "missing",
        )
    url = _text(object_info.get("url"))
    key = decode_key(raw_key, name, appid, url)
    if key is None:
        return problem(
            "cosObject.key must be /<appid>/<bucket name>/<url-encoded key>",
            ("cos", "cosObject", "key"), "key_invalid",
        )
    region = resolve_region(bucket_info, url)
    if region is None:
        return problem(
            "the bucket's region cannot be told from cosBucket or cosObject.url",
            ("cos", "cosBucket", "region"), "region_unknown",
        )
    bucket = name if name.endswith(f"-{appid}") else f"{name}-{appid}"
    version_id = _text(object_info.get("vid")) or None
    raw_time = event.get("eventTime")
    phase: Phase = (
        "completed" if event_name == RESTORE_COMPLETED
        else "posted" if event_name == RESTORE_POST
        else "other"
    )
    identity = "\n".join(
        [bucket, key, version_id or "", event_name, str(raw_time), _text(
            _mapping(object_info.get("meta")).get("x-cos-request-id")
        )]
    )
    return CosRestoreNotice(
        index=index,
        event_name=event_name,
        phase=phase,
        bucket=bucket,
        region=region,
        key=key,
        version_id=version_id,
        event_time=_event_time(raw_time),
        notice_id=f"cos-notice-{uuid.uuid5(NOTICE_ID_NAMESPACE, identity).hex}",
    )


def decode_key(raw_key: str, name: str, appid: str, url: str = "") -> str | None:
    """The object key from ``cosObject.key`` (``/<appid>/<name>/<url-encoded key>``), or from
    the path of ``cosObject.url`` when the key has another form; None when neither works."""
    for prefix in (f"/{appid}/{name}/", f"/{appid}/{name}-{appid}/"):
        if raw_key.startswith(prefix) and len(raw_key) > len(prefix):
            return unquote(raw_key[len(prefix):])
    if not raw_key and url:
        path = urlsplit(url).path
        if len(path) > 1:
            return unquote(path[1:])
    return None


def resolve_region(bucket_info: Mapping[str, Any], url: str = "") -> str | None:
    """The long region name (``ap-guangzhou``) of the bucket, wherever the event carries it."""
    for field in ("s3Region", "cosRegion", "region"):
        value = _text(bucket_info.get(field))
        if _LONG_REGION.match(value):
            return value
    host = (urlsplit(url).hostname or "") if url else ""
    match = _HOST_REGION.match(host)
    if match:
        return match.group("region")
    short = _text(bucket_info.get("region")).lower()
    return SHORT_REGIONS.get(short)


def handle_restore_notice(service: RestoreService, notice: CosRestoreNotice) -> QueueResult:
    """Act on one notification (see the module docstring); publishes what it decides."""
    result = QueueResult()
    if notice.phase == "posted":
        return result
    try:
        # A restore this package started: complete *that* request (its request_id, context and
        # callback), under the same ledger phase the re-checks use, so one completed goes out.
        original = pending_request(service, "cos", notice.bucket, notice.key)
        request_id = original["request_id"] if original else notice.notice_id
        recorded = service.ledger.recall(str(request_id), DONE)
    except StoreError:
        logger.error("the ledger cannot be read; asking for a retry")
        result.retry = True
        return result
    if recorded is not None:  # a redelivered notification: its event already went out
        result.outcomes.append(recorded)
        return result
    try:
        checked = service.check(original or notice.check_payload(), publish=False)
    except Exception as exc:  # a bug, not a provider answer: let the platform redeliver
        logger.error("checking a restore raised %s; asking for a retry", type(exc).__name__)
        result.retry = True
        return result
    outcome = checked if original else checked.model_copy(update={"days": None, "tier": None})
    result.outcomes.append(outcome)
    if outcome.retryable:
        result.retry = True
        return result
    if outcome.status is OutcomeStatus.IN_PROGRESS:
        # COS said the job finished but HEAD still shows it running: look again later. For a
        # notification that is not a Completed, running is simply what a Post means.
        result.retry = notice.phase == "completed"
        return result
    _publish(service, outcome, result)
    return result


def _publish(service: RestoreService, outcome: Outcome, result: QueueResult) -> None:
    """Publish once per notification (the ledger): a redelivery publishes nothing again."""
    try:
        service.ledger.publish_once(outcome, service.publish)
    except DuplicateInFlight:
        result.retry = True  # another delivery of this notification is publishing right now
    except (SinkError, StoreError):
        logger.error("event for request %s not delivered; asking for a retry", outcome.request_id)
        result.retry = True


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _appid_of(raw_key: str) -> str:
    parts = raw_key.split("/", 2)
    return parts[1] if len(parts) > 2 and parts[0] == "" else ""


def _event_time(value: object) -> datetime | None:
    """``eventTime``: epoch seconds (documented), or an ISO 8601 string (older samples)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None
