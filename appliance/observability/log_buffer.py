"""The server's recent log lines, kept in memory for the admin console's Logs screen.

A logging handler on the root and `uvicorn` loggers appends each record to a bounded
deque with a sequence number; `GET /v1/logs?after=N` returns the lines after N, so a
follower polls without repeats and sees a gap (first seq > after + 1) when lines were
dropped. Access-log lines are not kept: the console's own polling would fill it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from appliance.wire.status import LogLine, LogPage

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip
WATCHED_LOGGERS = ("", "uvicorn", "litestar")


class LogBuffer(logging.Handler):
    def __init__(self, capacity: int) -> None:
        super().__init__(level=logging.DEBUG)
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._seq = 0
        self._guard = threading.Lock()  # records arrive from every thread
        self._attached: list[logging.Logger] = []
        self._last: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[0] is not None:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a bad format string must not break the caller
            message = str(record.msg)
        with self._guard:
            if record is self._last:  # seen on a child logger, then again on the root
                return
            self._last = record
            self._seq += 1
            self._lines.append(
                LogLine(self._seq, record.created, record.levelname.lower(), record.name, message)
            )

    def attach(self) -> None:
        for name in WATCHED_LOGGERS:
            logger = logging.getLogger(name)
            if self not in logger.handlers:
                logger.addHandler(self)
                self._attached.append(logger)

    def detach(self) -> None:
        for logger in self._attached:
            logger.removeHandler(self)
        self._attached.clear()

    @property
    def last_seq(self) -> int:
        return self._seq

    def since(self, after: int, level: str = "debug", limit: int = 500) -> list[LogLine]:
        """Lines with seq > after at `level` or above, oldest first, at most `limit`
        (the newest ones when more matched)."""
        floor = LEVELS.get(level, logging.DEBUG)
        with self._guard:
            lines = [
                line for line in self._lines
                if line.seq > after and LEVELS.get(line.level, logging.CRITICAL) >= floor
            ]  # fmt: skip
        return lines[-limit:]

    def page(self, after: int, level: str = "debug", limit: int = 500) -> LogPage:
        """`since(after, level, limit)` and the last line's number (GET /v1/logs)."""
        return LogPage(lines=self.since(after, level, limit), last_seq=self.last_seq)
