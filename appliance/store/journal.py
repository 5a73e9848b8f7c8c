"""The journal: the source of truth for documents, jobs and chunk texts (SQLite, one thread).

WAL mode with `synchronous=FULL`: a commit is on disk when it returns. An upload is
journaled before the API answers 202; each file then moves `received` → `parsed`
(its chunk texts stored here, so the index can always be rebuilt) → `indexed` (its
document row written in the same transaction). A delete marks the document
`deleting`, then the chunks leave the store, then the rows go. On start the
reconciler reads what was left half-done and finishes it (`ingest/reconcile.py`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import msgspec

from appliance.domain.types import Section
from appliance.runtime.files import copy_sqlite
from appliance.runtime.worker import ThreadWorker
from appliance.store.journal_catalog import CatalogQueries
from appliance.store.journal_collections import CollectionJournal
from appliance.store.journal_conversations import ConversationJournal
from appliance.store.journal_schema import (
    DOC_COLUMNS,
    FILE_COLUMNS,
    JOB_COLUMNS,
    DocumentRow,
    FileRow,
    JobRow,
    connect,
)
from appliance.store.journal_sources import SourceFile, SourceJournal

__all__ = ["DocumentRow", "FileRow", "JobRow", "Journal", "count_documents"]


def _insert_indexed(doc: DocumentRow) -> tuple[str, tuple[Any, ...]]:
    """The statement that writes `doc` as an indexed document."""
    marks = ",".join("?" * len(DocumentRow.__struct_fields__))
    return (
        f"INSERT OR REPLACE INTO documents ({DOC_COLUMNS}, state) VALUES ({marks},'indexed')",
        msgspec.structs.astuple(doc),
    )


class Journal(SourceJournal, ConversationJournal, CollectionJournal, CatalogQueries):
    def __init__(self, path: Path, queue_size: int = 256) -> None:
        self.path = path
        self._worker: ThreadWorker[sqlite3.Connection] = ThreadWorker(
            "journal", lambda: connect(path), queue_size
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
            f"SELECT {DOC_COLUMNS} FROM documents WHERE id = ? AND state = 'indexed'",
            (document_id,),
        )
        return DocumentRow(*rows[0]) if rows else None

    async def documents(self, collections: Collection[str] | None = None) -> list[DocumentRow]:
        """The indexed documents, of these collections (ids; None: all)."""
        where, params = _indexed_in(collections)
        rows = await self._read(
            f"SELECT {DOC_COLUMNS} FROM documents WHERE {where} ORDER BY created_at, id", params
        )
        return [DocumentRow(*r) for r in rows]

    async def indexed_count(self, collections: Collection[str] | None = None) -> int:
        """How many documents are indexed in these collections (ids; None: all)."""
        where, params = _indexed_in(collections)
        rows = await self._read(f"SELECT count(*) FROM documents WHERE {where}", params)
        return int(rows[0][0])

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

    async def add_files(self, files: Sequence[FileRow]) -> None:
        """Files added to a running job (a mail's attachments)."""
        marks = ",".join("?" * len(FileRow.__struct_fields__))
        await self._write(
            [
                (f"INSERT INTO files ({FILE_COLUMNS}) VALUES ({marks})", msgspec.structs.astuple(f))
                for f in files
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
        pages: int | None, chunks: Sequence[Section], extra: str = "{}",
    ) -> None:  # fmt: skip
        """The file's chunk texts, stored with its `parsed` stage in one transaction."""
        parsed_row: tuple[Any, ...] = (document_id, content_hash, content_type, pages)
        parsed_row += (len(chunks), extra, job_id, idx)
        await self._write(
            [
                ("DELETE FROM chunks WHERE document_id = ?", (document_id,)),
                *(
                    (
                        "INSERT OR REPLACE INTO chunks "
                        "(document_id, chunk_index, text, page, heading, location) "
                        "VALUES (?,?,?,?,?,?)",
                        (document_id, i, c.text, c.page, c.heading, c.location),
                    )
                    for i, c in enumerate(chunks)
                ),
                (
                    "UPDATE files SET stage = 'parsed', document_id = ?, content_hash = ?, "
                    "content_type = ?, pages = ?, chunks_total = ?, extra = ? "
                    "WHERE job_id = ? AND idx = ?",
                    parsed_row,
                ),
            ]
        )

    async def file_indexed(
        self, job_id: str, idx: int, doc: DocumentRow,
        source: SourceFile | None = None, replaces: str | None = None,
    ) -> list[str]:  # fmt: skip
        """Every chunk is in the store: the document row and the file's end, together; a
        synced file's row too, releasing the document it `replaces` (returned if now
        `deleting`: the caller removes its chunks)."""

        def body(conn: sqlite3.Connection) -> list[str]:
            conn.execute(*_insert_indexed(doc))
            conn.execute(
                "UPDATE files SET stage = 'indexed', state = 'done' WHERE job_id = ? AND idx = ?",
                (job_id, idx),
            )
            return self.settle_statements(conn, source, replaces) if source else []

        return await self._transaction(body)

    async def chunks_of(self, document_id: str) -> list[Section]:
        rows = await self._read(
            "SELECT text, page, heading, location FROM chunks WHERE document_id = ? "
            "ORDER BY chunk_index",
            (document_id,),
        )
        return [Section(t, page=p, heading=h, location=loc) for t, p, h, loc in rows]

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


def _indexed_in(collections: Collection[str] | None) -> tuple[str, list[str]]:
    """The WHERE clause (and its parameters) of the indexed documents of `collections`."""
    where, params = "state = 'indexed'", list(collections or ())
    if collections is not None:
        where += f" AND collection IN ({','.join('?' * len(params)) or 'NULL'})"
    return where, params


def count_documents(path: Path) -> int:
    """Documents the journal at `path` records, read-only (the server may be running)."""
    if not path.is_file():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
        return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
