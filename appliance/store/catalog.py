"""The document catalog: one SQLite row per stored document, owned by one thread.

The vector store holds chunks; the catalog answers "which documents are there"
without scanning vectors. A document row is written only after all its chunks
are stored, and removed only after its chunks are deleted.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from appliance.engine.worker import ThreadWorker

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    file_name TEXT NOT NULL,
    content_hash TEXT NOT NULL UNIQUE,
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    pages INTEGER,
    created_at REAL NOT NULL
)
"""
_COLUMNS = "id, file_name, content_hash, content_type, size_bytes, chunks, pages, created_at"


class DocumentRow(msgspec.Struct, frozen=True):
    id: str
    file_name: str
    content_hash: str
    content_type: str
    size_bytes: int
    chunks: int
    pages: int | None
    created_at: float


def _row(values: tuple[Any, ...]) -> DocumentRow:
    return DocumentRow(*values)


class Catalog:
    def __init__(self, path: Path, queue_size: int = 256) -> None:
        self._path = path
        self._worker: ThreadWorker[sqlite3.Connection] = ThreadWorker(
            "catalog", self._open, queue_size
        )

    def _open(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        conn.commit()
        return conn

    def start(self) -> None:
        self._worker.start()

    async def close(self) -> None:
        self._worker.stop()

    @property
    def alive(self) -> bool:
        return self._worker.alive

    async def add(self, doc: DocumentRow) -> None:
        def job(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    f"INSERT OR REPLACE INTO documents ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                    msgspec.structs.astuple(doc),
                )

        await self._worker.call(job)

    async def get(self, document_id: str) -> DocumentRow | None:
        def job(conn: sqlite3.Connection) -> DocumentRow | None:
            cur = conn.execute(f"SELECT {_COLUMNS} FROM documents WHERE id = ?", (document_id,))
            found = cur.fetchone()
            return _row(found) if found else None

        return await self._worker.call(job)

    async def list(self) -> list[DocumentRow]:
        def job(conn: sqlite3.Connection) -> list[DocumentRow]:
            cur = conn.execute(f"SELECT {_COLUMNS} FROM documents ORDER BY created_at, id")
            return [_row(r) for r in cur.fetchall()]

        return await self._worker.call(job)

    async def delete(self, document_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            with conn:
                cur = conn.execute("DELETE FROM documents WHERE id = ?", (document_id,))
            return cur.rowcount > 0

        return await self._worker.call(job)

    async def ping(self) -> None:
        await self._worker.call(lambda conn: conn.execute("SELECT 1").fetchone())
