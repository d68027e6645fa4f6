"""The sink interface every event destination implements."""

from __future__ import annotations

from typing import Protocol

from shared.events import CloudEvent


class SinkError(RuntimeError):
    """An event could not be delivered; the caller must not acknowledge the request."""


class EventSink(Protocol):
    def publish(self, event: CloudEvent) -> None:
        """Deliver the event or raise SinkError."""
