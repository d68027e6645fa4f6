"""Where chunk messages go: the platform queue the restore functions already consume.

- ``pubsub``: the restore topic (``RESTORE_BULK_PUBSUB_TOPIC``), whose push subscription or
  Eventarc trigger runs ``restore_pubsub``;
- ``tdmq``: the CMQ topic (``RESTORE_BULK_TDMQ_TOPIC``) whose trigger runs ``main_handler``;
- ``InProcessQueue``: a bounded in-memory queue with worker threads, for the CLI's ``--local``
  mode and the tests: it stands in for the platform's queue and its autoscaled instances.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from shared.bulk.kinds import CHUNK_KIND
from shared.bulk.schemas import BulkChunk

logger = logging.getLogger("restorefn.bulk")


class QueueError(RuntimeError):
    """The chunk could not be handed to the queue; the caller must not report it as sent."""


class ChunkQueue(Protocol):
    def send(self, chunk: BulkChunk) -> None:
        """Publish one chunk message (raises QueueError)."""


class PubSubChunkQueue:
    def __init__(self, sink: Any) -> None:
        self._sink = sink  # shared.sinks.pubsub.PubSubSink pointed at the restore topic

    def send(self, chunk: BulkChunk) -> None:
        from shared.sinks import SinkError

        message = {
            "data": base64.b64encode(chunk.model_dump_json().encode()).decode("ascii"),
            "attributes": {"restorefn-kind": CHUNK_KIND, "restorefn-job": chunk.job.job_id},
        }
        try:
            self._sink.publish_message(message, f"chunk {chunk.chunk_id}")
        except SinkError as exc:
            raise QueueError(str(exc)) from None


class TdmqChunkQueue:
    """Chunks as CMQ messages on the restore request topic, whose trigger runs main_handler."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink  # shared.sinks.tdmq.TdmqSink pointed at the request topic

    def send(self, chunk: BulkChunk) -> None:
        from shared.sinks import SinkError

        try:
            self._sink.publish_message(chunk.model_dump_json(), ["bulk-chunk"],
                                       f"chunk {chunk.chunk_id}")
        except SinkError as exc:
            raise QueueError(str(exc)) from None


class InProcessQueue:
    """A queue drained by ``instances`` threads, each one a worker "instance".

    ``send`` from outside the workers (the planner) blocks while ``capacity`` messages wait, so
    a planner that lists faster than workers restore cannot pile chunks up in memory; workers'
    own sends (leftover chunks) never block. A handler that raises gets its message redelivered
    (at most ``redeliveries`` times), like the platform's at-least-once queue.
    """

    def __init__(self, handler: Callable[[bytes], Any], *, instances: int = 4,
                 capacity: int = 8, redeliveries: int = 5) -> None:
        self._handler = handler
        self._queue: queue.Queue[tuple[bytes, int] | None] = queue.Queue()
        self._capacity = capacity
        self._room = threading.Condition()
        self._redeliveries = redeliveries
        self.delivered = 0
        self.redelivered = 0
        self.failures: list[str] = []
        self._threads = [threading.Thread(target=self._run, name=f"bulk-worker-{i}", daemon=True)
                         for i in range(instances)]
        self._workers = {id(t) for t in self._threads}
        for thread in self._threads:
            thread.start()

    def send(self, chunk: BulkChunk) -> None:
        self.send_raw(chunk.model_dump_json().encode())

    def send_raw(self, data: bytes) -> None:
        if id(threading.current_thread()) not in self._workers:
            with self._room:
                self._room.wait_for(lambda: self._queue.qsize() < self._capacity)
        self._queue.put((data, 0))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            with self._room:
                self._room.notify_all()
            if item is None:
                self._queue.task_done()
                return
            data, attempt = item
            try:
                self._handler(data)
                with self._room:
                    self.delivered += 1
            except Exception as exc:  # the platform would redeliver
                with self._room:
                    if attempt < self._redeliveries:
                        self.redelivered += 1
                        self._queue.put((data, attempt + 1))
                    else:
                        self.failures.append(type(exc).__name__)
            finally:
                self._queue.task_done()

    def join(self) -> None:
        """Wait until every message (and every leftover chunk it produced) is handled."""
        self._queue.join()

    def close(self) -> None:
        self.join()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
