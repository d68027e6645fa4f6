"""Example: act when restorefn says a COS object has been restored.

An SCF function subscribed (CMQ topic trigger) to restorefn's TDMQ completion topic, the topic
restorefn publishes every CloudEvent to (``RESTORE_EVENT_SINK=tdmq``). Each record's
``msgBody`` is one structured-mode CloudEvent; this function acts on
``restorefn.object.restore.v1.completed`` events for COS objects and ignores every other phase
(``initiated``, ``failed``...), which arrive on the same topic (their CMQ tags are
``[<phase>, <provider>]``).

What it does with a restored object:

- always: one JSON log line naming the object, its restore expiry and the request's ``context``
  (what the requester attached, e.g. a ticket number);
- with ``COPY_TO_BUCKET`` set: a server-side copy of the restored object into that bucket (same
  region), under ``COPY_TO_PREFIX`` (default ``restored/``) and in the ``STANDARD`` class, so the
  data stays readable after the temporary restored copy expires. A failed copy raises: SCF
  retries the invocation (twice), and a repeated copy is harmless.

Credentials are the function's execution role (SCF sets ``TENCENTCLOUD_SECRETID``,
``TENCENTCLOUD_SECRETKEY``, ``TENCENTCLOUD_SESSIONTOKEN``); the role needs ``GetObject`` on the
source bucket and ``PutObject`` on the destination. ``COS_ENDPOINT`` (e.g.
``http://127.0.0.1:9000``) points it at a local emulator. Dependency: ``cos-python-sdk-v5``
(packaged with the function; only needed when copying).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any
from urllib.parse import urlsplit

COMPLETED = "restorefn.object.restore.v1.completed"


def _log(message: str, **fields: Any) -> None:
    print(json.dumps({"message": message, **fields}, default=str), file=sys.stderr, flush=True)


def _cloud_event(record: Any) -> dict[str, Any] | None:
    cmq = record.get("CMQ") if isinstance(record, dict) else None
    body = cmq.get("msgBody") if isinstance(cmq, dict) else None
    try:
        event = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("data"), dict) else None


def _cos_client(region: str) -> Any:
    from qcloud_cos import CosConfig, CosS3Client

    options: dict[str, Any] = {
        "Region": region,
        "SecretId": os.environ.get("TENCENTCLOUD_SECRETID"),
        "SecretKey": os.environ.get("TENCENTCLOUD_SECRETKEY"),
        "Token": os.environ.get("TENCENTCLOUD_SESSIONTOKEN") or None,
        "Scheme": "https",
    }
    endpoint = os.environ.get("COS_ENDPOINT")
    if endpoint:
        parts = urlsplit(endpoint)
        options.update(Scheme=parts.scheme or "http", IP=parts.hostname, Port=parts.port)
    # retry=0: a failed copy fails the invocation, and SCF retries the whole invocation.
    return CosS3Client(CosConfig(**options), retry=0)


def copy_restored(data: dict[str, Any], bucket: str, prefix: str) -> str:
    """Server-side copy of the restored object into ``bucket`` as STANDARD; the new key."""
    target = prefix + str(data["key"])
    source: dict[str, Any] = {"Bucket": data["bucket"], "Key": data["key"],
                              "Region": data["region"]}
    if data.get("version_id"):
        source["VersionId"] = data["version_id"]
    _cos_client(data["region"]).copy_object(
        Bucket=bucket, Key=target, CopySource=source, StorageClass="STANDARD",
    )
    return target


def main_handler(event: Any, context: Any = None) -> dict[str, int]:
    records = event.get("Records") if isinstance(event, dict) else None
    counts = {"completed": 0, "copied": 0, "ignored": 0}
    for record in records if isinstance(records, list) else []:
        cloud_event = _cloud_event(record)
        if cloud_event is None or cloud_event.get("type") != COMPLETED:
            counts["ignored"] += 1  # another phase, or not a restorefn event at all
            continue
        data = cloud_event["data"]
        if data.get("provider") != "cos":
            counts["ignored"] += 1
            continue
        counts["completed"] += 1
        _log("object restored", event_id=cloud_event.get("id"), bucket=data.get("bucket"),
             key=data.get("key"), region=data.get("region"), tier=data.get("tier"),
             expiry_time=data.get("expiry_time"), request_id=data.get("request_id"),
             context=data.get("context"))
        destination = os.environ.get("COPY_TO_BUCKET")
        if destination:
            prefix = os.environ.get("COPY_TO_PREFIX", "restored/")
            try:
                target = copy_restored(data, destination, prefix)
            except Exception as exc:  # the SDK's text can carry request details: the type only
                _log("copy failed; the invocation will be retried", bucket=data.get("bucket"),
                     key=data.get("key"), error_type=type(exc).__name__)
                raise
            counts["copied"] += 1
            _log("restored object copied", bucket=destination, key=target)
    return counts
