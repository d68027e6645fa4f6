"""What every envelope parser shares: a problem found in the outer event, and the merging of
per-record results into one answer for the invocation."""

from __future__ import annotations

from collections.abc import Iterable

from shared.queue import QueueResult
from shared.records import frozen

Loc = tuple[str | int, ...]


@frozen
class EnvelopeProblem:
    """Why (part of) an event cannot be used, in the shape of a validation problem: ``loc``
    points into the event, ``type`` is a stable machine-readable reason. Never carries values
    from the event."""

    reason: str
    loc: Loc
    type: str


@frozen
class RecordProblem:
    """One record of a multi-record event that cannot be used; the others still are."""

    index: int
    source: str
    problem: EnvelopeProblem


def merge_results(results: Iterable[QueueResult]) -> QueueResult:
    """One result for several records: every outcome, and retry when any record needs it."""
    merged = QueueResult()
    for result in results:
        merged.outcomes.extend(result.outcomes)
        merged.retry = merged.retry or result.retry
    return merged
