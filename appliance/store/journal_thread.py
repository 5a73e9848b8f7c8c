"""What the journal's parts share: the SQLite connection's thread and its transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from appliance.runtime.worker import ThreadWorker

T = TypeVar("T")


class JournalThread:
    """The journal's owner thread; `Journal` sets `_worker` in its constructor."""

    _worker: ThreadWorker[sqlite3.Connection]

    async def _rows(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """The rows of one query, read on the journal's thread."""
        return await self._worker.call(lambda conn: conn.execute(sql, params).fetchall())

    async def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` in one transaction, committed (fsynced) before returning."""

        def job(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._worker.call(job)
