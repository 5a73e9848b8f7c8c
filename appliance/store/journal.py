"""The journal: the source of truth for documents, jobs and chunk texts (SQLite, one thread).

WAL mode with `synchronous=FULL`: a commit is on disk when it returns. An upload is
journaled before the API answers 202; each file then moves `received` → `parsed`
(its chunk texts stored here, so the index can always be rebuilt) → `indexed` (its
document row written in the same transaction). A delete marks the document
`deleting`, then the chunks leave the store, then the rows go. On start the
reconciler reads what was left half-done and finishes it (`ingest/reconcile.py`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from appliance.domain.types import Section
from appliance.engine.worker import ThreadWorker
from appliance.fileutil import copy_sqlite

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
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS files (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    upload_path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    stage TEXT NOT NULL,
    state TEXT NOT NULL,
    document_id TEXT,
    content_hash TEXT,
    content_type TEXT,
    pages INTEGER,
    chunks_total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    note TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS chunks (
    document_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    page INTEGER,
    heading TEXT,
    PRIMARY KEY (document_id, chunk_index)
);
"""
_DOC_COLUMNS = "id, file_name, content_hash, content_type, size_bytes, chunks, pages, created_at"
FILE_COLUMNS = (
    "job_id, idx, file_name, upload_path, size_bytes, stage, state, document_id, "
    "content_hash, content_type, pages, chunks_total, error, note"
)
JOB_COLUMNS = "id, state, created_at, started_at, finished_at"


class DocumentRow(msgspec.Struct, frozen=True):
    id: str
    file_name: str
    content_hash: str
    content_type: str
    size_bytes: int
    chunks: int
    pages: int | None
    created_at: float


class JobRow(msgspec.Struct, frozen=True):
    id: str
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None


class FileRow(msgspec.Struct, frozen=True):
    job_id: str
    idx: int
    file_name: str
    upload_path: str
    size_bytes: int
    stage: str  # received | parsed | indexed | ended (failed, skipped, cancelled)
    state: str  # the API's FileState
    document_id: str | None
    content_hash: str | None
    content_type: str | None
    pages: int | None
    chunks_total: int
    error: str | None
    note: str | None


def _insert_indexed(doc: DocumentRow) -> tuple[str, tuple[Any, ...]]:
    """The statement that writes `doc` as an indexed document."""
    return (
        f"INSERT OR REPLACE INTO documents ({_DOC_COLUMNS}, state) "
        "VALUES (?,?,?,?,?,?,?,?,'indexed')",
        msgspec.structs.astuple(doc),
    )


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.with_name("catalog.sqlite3")  # before the journal, documents lived there
    if not path.exists() and old.exists():
        # through SQLite, so rows still in the old file's WAL come along
        source = sqlite3.connect(old)
        try:
            copy_sqlite(source, path.with_suffix(".migrating"))
        finally:
            source.close()
        os.replace(path.with_suffix(".migrating"), path)
        for suffix in ("", "-wal", "-shm"):
            old.with_name(old.name + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(_SCHEMA)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(documents)")}
    if "state" not in columns:
        conn.execute("ALTER TABLE documents ADD COLUMN state TEXT NOT NULL DEFAULT 'indexed'")
    if "cancel_requested" not in {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}:
        conn.execute("ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0")
    return conn


class Journal:
    def __init__(self, path: Path, queue_size: int = 256) -> None:
        self.path = path
        self._worker: ThreadWorker[sqlite3.Connection] = ThreadWorker(
            "journal", lambda: _connect(path), queue_size
        )

    def start(self) -> None:
        self._worker.start()

    async def close(self) -> None:
        self._worker.stop()

    @property
    def alive(self) -> bool:
        return self._worker.alive

    async def ping(self) -> None:
        await self._worker.call(lambda conn: conn.execute("SELECT 1").fetchone())

    async def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run `statements` in one transaction, committed (fsynced) before returning."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    conn.execute(sql, params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._worker.call(job)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._worker.call(lambda conn: conn.execute(sql, params).fetchall())

    # ---- documents ---------------------------------------------------------
    async def get(self, document_id: str) -> DocumentRow | None:
        rows = await self._read(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE id = ? AND state = 'indexed'",
            (document_id,),
        )
        return DocumentRow(*rows[0]) if rows else None

    async def documents(self) -> list[DocumentRow]:
        rows = await self._read(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE state = 'indexed' ORDER BY created_at, id"
        )
        return [DocumentRow(*r) for r in rows]

    async def document_ids(self) -> set[str]:
        """Every document the journal knows: indexed, being deleted, or parsed and on its
        way into the store."""
        rows = await self._read(
            "SELECT id FROM documents UNION SELECT document_id FROM files "
            "WHERE stage = 'parsed' AND document_id IS NOT NULL"
        )
        return {r[0] for r in rows}

    async def deleting(self) -> list[str]:
        return [r[0] for r in await self._read("SELECT id FROM documents WHERE state='deleting'")]

    async def mark_deleting(self, document_id: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                # a delete that failed halfway may be asked again: it is finished then
                "UPDATE documents SET state = 'deleting' WHERE id = ?",
                (document_id,),
            )
            return cur.rowcount > 0

        return await self._worker.call(job)

    async def forget_document(self, document_id: str) -> None:
        """The last step of a delete: its chunks are gone from the store."""
        await self._write(
            [
                ("DELETE FROM chunks WHERE document_id = ?", (document_id,)),
                ("DELETE FROM documents WHERE id = ?", (document_id,)),
            ]
        )

    async def add(self, doc: DocumentRow) -> None:
        """A document row on its own (benchmarks that build an index directly)."""
        await self._write([_insert_indexed(doc)])

    # ---- jobs and files ----------------------------------------------------
    async def add_job(self, job: JobRow, files: Sequence[FileRow]) -> None:
        marks = ",".join("?" * len(FileRow.__struct_fields__))
        await self._write(
            [
                (
                    f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?,?,?,?,?)",
                    msgspec.structs.astuple(job),
                ),
                *(
                    (
                        f"INSERT INTO files ({FILE_COLUMNS}) VALUES ({marks})",
                        msgspec.structs.astuple(f),
                    )
                    for f in files
                ),
            ]
        )

    async def request_cancel(self, job_id: str) -> None:
        """A cancel of a running job, kept so that a restart does not resume it."""
        await self._write([("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))])

    async def cancel_requested(self) -> set[str]:
        return {r[0] for r in await self._read("SELECT id FROM jobs WHERE cancel_requested = 1")}

    async def set_job(
        self, job_id: str, state: str, started_at: float | None, finished_at: float | None
    ) -> None:
        await self._write(
            [
                (
                    "UPDATE jobs SET state = ?, started_at = ?, finished_at = ? WHERE id = ?",
                    (state, started_at, finished_at, job_id),
                )
            ]
        )

    async def end_file(
        self, job_id: str, idx: int, state: str, error: str | None = None,
        note: str | None = None, document_id: str | None = None,
    ) -> None:  # fmt: skip
        """The file failed, was skipped or cancelled: nothing more to do for it."""
        await self._write(
            [
                (  # chunk texts of a file that never got indexed are of no use
                    "DELETE FROM chunks WHERE document_id = (SELECT document_id FROM files "
                    "WHERE job_id = ? AND idx = ?) AND document_id NOT IN "
                    "(SELECT id FROM documents)",
                    (job_id, idx),
                ),
                (
                    "UPDATE files SET stage = 'ended', state = ?, error = ?, note = ?, "
                    "document_id = COALESCE(?, document_id) WHERE job_id = ? AND idx = ?",
                    (state, error, note, document_id, job_id, idx),
                ),
            ]
        )

    async def file_parsed(
        self, job_id: str, idx: int, document_id: str, content_hash: str, content_type: str,
        pages: int | None, chunks: Sequence[Section],
    ) -> None:  # fmt: skip
        """The file's chunk texts, stored with its `parsed` stage in one transaction."""
        await self._write(
            [
                ("DELETE FROM chunks WHERE document_id = ?", (document_id,)),
                *(
                    (
                        "INSERT OR REPLACE INTO chunks VALUES (?,?,?,?,?)",
                        (document_id, i, c.text, c.page, c.heading),
                    )
                    for i, c in enumerate(chunks)
                ),
                (
                    "UPDATE files SET stage = 'parsed', document_id = ?, content_hash = ?, "
                    "content_type = ?, pages = ?, chunks_total = ? WHERE job_id = ? AND idx = ?",
                    (document_id, content_hash, content_type, pages, len(chunks), job_id, idx),
                ),
            ]
        )

    async def file_indexed(self, job_id: str, idx: int, doc: DocumentRow) -> None:
        """Every chunk is in the store: the document row and the file's end, together."""
        await self._write(
            [
                _insert_indexed(doc),
                (
                    "UPDATE files SET stage = 'indexed', state = 'done' "
                    "WHERE job_id = ? AND idx = ?",
                    (job_id, idx),
                ),
            ]
        )

    async def chunks_of(self, document_id: str) -> list[Section]:
        rows = await self._read(
            "SELECT text, page, heading FROM chunks WHERE document_id = ? ORDER BY chunk_index",
            (document_id,),
        )
        return [Section(t, page=p, heading=h) for t, p, h in rows]

    async def chunk_page(
        self, document_id: str, offset: int, limit: int
    ) -> tuple[int, list[tuple[int, str, int | None, str | None]]]:
        """How many chunks the document has, and (index, text, page, heading) of `limit`
        of them from `offset`, in order."""
        total = await self._read(
            "SELECT COUNT(*) FROM chunks WHERE document_id = ?", (document_id,)
        )
        rows = await self._read(
            "SELECT chunk_index, text, page, heading FROM chunks WHERE document_id = ? "
            "ORDER BY chunk_index LIMIT ? OFFSET ?",
            (document_id, limit, offset),
        )
        return int(total[0][0]), [(int(i), t, p, h) for i, t, p, h in rows]

    async def jobs(self, limit: int) -> list[tuple[JobRow, list[FileRow]]]:
        """Every unfinished job, and the `limit` most recent finished ones, oldest first."""

        def job(conn: sqlite3.Connection) -> list[tuple[JobRow, list[FileRow]]]:
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running') "
                f"UNION SELECT * FROM (SELECT {JOB_COLUMNS} FROM jobs "
                "WHERE state NOT IN ('queued', 'running') ORDER BY created_at DESC LIMIT ?) "
                "ORDER BY created_at",
                (limit,),
            ).fetchall()
            out = []
            for r in rows:
                files = conn.execute(
                    f"SELECT {FILE_COLUMNS} FROM files WHERE job_id = ? ORDER BY idx", (r[0],)
                ).fetchall()
                out.append((JobRow(*r), [FileRow(*f) for f in files]))
            return out

        return await self._worker.call(job)

    async def prune_jobs(self, keep: int) -> None:
        """Forget finished jobs beyond the `keep` most recent (their files cascade)."""
        await self._write(
            [
                (
                    "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') AND id NOT IN "
                    "(SELECT id FROM jobs WHERE state NOT IN ('queued', 'running') "
                    "ORDER BY created_at DESC LIMIT ?)",
                    (keep,),
                )
            ]
        )

    async def backup_to(self, target: Path) -> None:
        """A consistent copy of the journal (SQLite's online backup) at `target`."""

        await self._worker.call(lambda conn: copy_sqlite(conn, target))


def count_documents(path: Path) -> int:
    """Documents the journal at `path` records, read-only (the server may be running)."""
    if not path.is_file():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
        return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
