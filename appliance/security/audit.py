"""The audit log: admin actions and authentication failures, one JSON object per line.

Appended to `<data_dir>/audit.log` by a listener thread (the event loop only queues a
record). The queue is bounded: under a flood of failed logins, records beyond it are
counted as dropped rather than growing memory. Keys are named by id, never by value.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import time
from pathlib import Path
from typing import Any

QUEUE_SIZE = 10_000


class _DropWhenFull(logging.handlers.QueueHandler):
    def __init__(self, q: queue.Queue[Any]) -> None:
        super().__init__(q)
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        """`path` None: audit records are discarded (`security.audit_log = false`)."""
        self.path = path
        self._logger = logging.getLogger(f"appliance.audit.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_SIZE)
        self._handler = _DropWhenFull(self._queue)
        self._listener: logging.handlers.QueueListener | None = None

    def start(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(self.path, encoding="utf-8")
        file.setFormatter(logging.Formatter("%(message)s"))
        self._listener = logging.handlers.QueueListener(self._queue, file)
        self._listener.start()
        self._logger.addHandler(self._handler)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()  # writes what is queued, then closes the file
            for handler in self._listener.handlers:
                handler.close()
            self._listener = None
        self._logger.removeHandler(self._handler)

    @property
    def dropped(self) -> int:
        return self._handler.dropped

    def record(self, event: str, **fields: Any) -> None:
        if self._listener is None:
            return
        entry = {"ts": round(time.time(), 3), "event": event, **fields}
        self._logger.info(json.dumps(entry, ensure_ascii=True, default=str))


class CallerAudit:
    """The audit log as a route writes it: every record signed `by` the calling key.
    A plain class: Litestar passes a dependency of a plain class through as it is."""

    __slots__ = ("_by", "_log")

    def __init__(self, log: AuditLog, by: str) -> None:
        self._log, self._by = log, by

    def record(self, event: str, **fields: Any) -> None:
        self._log.record(event, by=self._by, **fields)
