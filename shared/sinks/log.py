"""The default sink: one JSON line per event on stdout, which both platforms ship to their logs."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from shared.events import CloudEvent


class LogSink:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def publish(self, event: CloudEvent) -> None:
        stream = self._stream or sys.stdout
        line = event.to_json()
        with self._lock:  # whole lines, even with concurrent invocations
            stream.write(line + "\n")
            stream.flush()
