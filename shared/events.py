"""Completion events: CloudEvents 1.0 in structured-mode JSON, one type per outcome status.

The event id is a UUIDv5 of the request id and the phase, so a redelivered request produces an
event with the same id and consumers can drop the duplicate.
"""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import datetime, timezone
from typing import ClassVar
from urllib.parse import quote

from shared.outcome import Outcome, OutcomeStatus, RestoreFacts
from shared.records import Readers, Record, read_datetime, record

SPEC_VERSION = "1.0"
TYPE_PREFIX = "restorefn.object.restore.v1"
EVENT_ID_NAMESPACE = uuid.UUID("5b0f0c1e-4d0c-4a55-9b33-2f7c6a2d9e41")
REJECTED_SOURCE = "//restorefn/requests"


def event_type(status: OutcomeStatus) -> str:
    return f"{TYPE_PREFIX}.{status.value}"



@record
class RestoreEventData(RestoreFacts):
    """The ``data`` of every restore event: the outcome's facts, with its status as ``outcome``."""

    _readers: ClassVar[Readers] = {**RestoreFacts._readers, "outcome": OutcomeStatus}

    outcome: OutcomeStatus


@record
class CloudEvent(Record):
    _readers: ClassVar[Readers] = {"time": read_datetime, "data": RestoreEventData.model_validate}

    specversion: str = SPEC_VERSION
    id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime
    datacontenttype: str = "application/json"
    # A bulk job's event carries a subclass with its counts (shared.bulk.report); its dump has
    # them: a record dumps the fields of its own class.
    data: RestoreEventData

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


def event_id(request_id: str, status: OutcomeStatus) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{request_id}/{status.value}"))


def event_source(provider: str | None, bucket: str | None, region: str | None) -> str:
    if provider == "gcs" and bucket:
        return f"//storage.googleapis.com/projects/_/buckets/{bucket}"
    if provider == "cos" and bucket:
        return f"//cos.{region or 'unknown'}.myqcloud.com/buckets/{bucket}"
    return REJECTED_SOURCE


_FACTS = tuple(item.name for item in fields(RestoreFacts))


def build_event(outcome: Outcome, now: datetime | None = None) -> CloudEvent:
    data = RestoreEventData(
        outcome=outcome.status,
        **{name: getattr(outcome, name) for name in _FACTS},
    )
    subject = f"objects/{quote(outcome.key, safe='/')}" if outcome.key else None
    return CloudEvent(
        id=event_id(outcome.request_id, outcome.status),
        source=event_source(outcome.provider, outcome.bucket, outcome.region),
        type=event_type(outcome.status),
        subject=subject,
        time=now or datetime.now(timezone.utc),
        data=data,
    )
