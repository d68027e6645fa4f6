"""Which bulk message a payload is, by its ``kind``: no pydantic here, so the entry points can
tell bulk messages apart without loading the bulk schemas on their cold path."""

from __future__ import annotations

from typing import Any

JOB_KIND = "restorefn.bulk.v1"
CHUNK_KIND = "restorefn.bulk.chunk.v1"
POLL_KIND = "restorefn.bulk.poll.v1"


def _kind(payload: Any) -> Any:
    return payload.get("kind") if isinstance(payload, dict) else None


def is_bulk_job(payload: Any) -> bool:
    return bool(_kind(payload) == JOB_KIND)


def is_bulk_chunk(payload: Any) -> bool:
    return bool(_kind(payload) == CHUNK_KIND)


def is_bulk_poll(payload: Any) -> bool:
    return bool(_kind(payload) == POLL_KIND)
