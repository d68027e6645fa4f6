"""A local sink: one CloudEvent JSON per line, appended to a file (``RESTORE_EVENT_SINK=file``).

Meant for a workstation and the CLI (``restorefn events --follow FILE``), not for a function:
a function's filesystem is not where anyone would look. Each event is written with a single
``write`` on a file opened with ``O_APPEND``, so lines from several processes never interleave.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from shared.events import CloudEvent
from shared.sinks.base import SinkError


class FileSink:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def publish(self, event: CloudEvent) -> None:
        line = (event.to_json() + "\n").encode()
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    written = os.write(fd, line)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise SinkError(f"could not append the event to {self.path}: {exc.strerror}") from None
        if written != len(line):
            raise SinkError(f"short write appending the event to {self.path}")
