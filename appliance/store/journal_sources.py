"""The journal's part for synced folders: sources, and the files each scan saw.

A document that came from a source lives while some source file refers to it
(`source_files.document_id`); when the last reference goes (the file vanished, or
changed and was re-ingested as another document) it is marked `deleting` in the same
transaction, and the caller removes its chunks then forgets it (the reconciler
finishes that after a crash). Uploaded documents are never deleted by a sync.

A file's row is written only while its source exists: a job that ends after its source
was removed (or resumes after a restart) records nothing, and the document it just
stored is released at once instead of living on without a source.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from appliance.store.journal_thread import JournalThread

T = TypeVar("T")
_RELEASE = (
    "UPDATE documents SET state = 'deleting' WHERE id = ? AND source_id IS NOT NULL "
    "AND state = 'indexed' AND NOT EXISTS (SELECT 1 FROM source_files WHERE document_id = ?)"
)


class SourceFile(msgspec.Struct, frozen=True):
    """A file of a source as a scan saw it (`path` relative to the source's root)."""

    source_id: str
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None = None
    document_id: str | None = None
    seen: int = 0
    error: str | None = None


class SourceRecord(msgspec.Struct, frozen=True):
    id: str
    spec: str  # JSON of the source's settings
    origin: str  # "config" or "api"
    created_at: float
    last_scan: str | None  # JSON of the last scan's report
    device: int | None = None  # st_dev of the folder when it was added


def _release(conn: sqlite3.Connection, document_ids: Sequence[str | None]) -> list[str]:
    """Mark each document no source file refers to any more `deleting`; return those."""
    released = []
    for document_id in {d for d in document_ids if d}:
        if conn.execute(_RELEASE, (document_id, document_id)).rowcount:
            released.append(document_id)
    return released


def _upsert(conn: sqlite3.Connection, row: SourceFile) -> bool:
    """Record the file, if its source still exists; False if it does not."""
    return bool(
        conn.execute(
            "INSERT OR REPLACE INTO source_files SELECT ?,?,?,?,?,?,?,? "
            "WHERE EXISTS (SELECT 1 FROM sources WHERE id = ?)",
            (*msgspec.structs.astuple(row), row.source_id),
        ).rowcount
    )


def _settle(conn: sqlite3.Connection, row: SourceFile, replaces: str | None) -> list[str]:
    if not _upsert(conn, row):  # the source was removed meanwhile: keep nothing of it
        return _release(conn, [row.document_id, replaces])
    return _release(conn, [replaces] if replaces != row.document_id else [])


class SourceJournal(JournalThread):
    """Mixed into `Journal`: the same SQLite connection and thread."""

    # ---- sources -----------------------------------------------------------
    async def sources(self) -> list[SourceRecord]:
        rows = await self._worker.call(
            lambda c: c.execute(
                "SELECT id, spec, origin, created_at, last_scan, device FROM sources ORDER BY id"
            ).fetchall()
        )
        return [SourceRecord(*r) for r in rows]

    async def save_source(
        self, source_id: str, spec: str, origin: str, now: float, device: int | None = None
    ) -> None:
        """Add or update a source; its recorded device is kept while its settings are
        the same (a config source saved again at each start), else replaced."""

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO sources (id, spec, origin, created_at, device) VALUES (?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET device = CASE WHEN sources.spec = excluded.spec "
                "AND sources.device IS NOT NULL THEN sources.device ELSE excluded.device END, "
                "spec = excluded.spec, origin = excluded.origin",
                (source_id, spec, origin, now, device),
            )

        await self._transaction(body)

    async def set_device(self, source_id: str, device: int) -> None:
        await self._transaction(
            lambda c: c.execute("UPDATE sources SET device = ? WHERE id = ?", (device, source_id))
        )

    async def source_file_count(self, source_id: str) -> int:
        rows = await self._worker.call(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM source_files WHERE source_id = ?", (source_id,)
            ).fetchall()
        )
        return int(rows[0][0])

    async def set_last_scan(self, source_id: str, report: str) -> None:
        await self._transaction(
            lambda c: c.execute(
                "UPDATE sources SET last_scan = ? WHERE id = ?", (report, source_id)
            )
        )

    async def remove_source(self, source_id: str) -> list[str]:
        """Forget the source and its files; returns its documents now `deleting`."""

        def body(conn: sqlite3.Connection) -> list[str]:
            docs = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT document_id FROM source_files WHERE source_id = ?",
                    (source_id,),
                )
            ]
            conn.execute("DELETE FROM source_files WHERE source_id = ?", (source_id,))
            conn.execute("DELETE FROM sources WHERE id = ?", (source_id,))
            return _release(conn, docs)

        return await self._transaction(body)

    # ---- what a scan saw ---------------------------------------------------
    async def source_files(self, source_id: str, paths: Sequence[str]) -> dict[str, SourceFile]:
        """The recorded rows of these paths (a batch of a walk)."""

        def job(conn: sqlite3.Connection) -> dict[str, SourceFile]:
            marks = ",".join("?" * len(paths))
            rows = conn.execute(
                "SELECT source_id, path, size, mtime_ns, content_hash, document_id, seen, error "
                f"FROM source_files WHERE source_id = ? AND path IN ({marks})",
                (source_id, *paths),
            ).fetchall()
            return {r[1]: SourceFile(*r) for r in rows}

        return await self._worker.call(job) if paths else {}

    async def files_elsewhere(self, source_id: str, collection: str) -> set[str]:
        """The source's paths whose document is in another collection than `collection`
        (the source was moved to it: each is ingested anew there, the old one dropped)."""
        rows = await self._worker.call(
            lambda conn: conn.execute(
                "SELECT f.path FROM source_files f JOIN documents d ON d.id = f.document_id "
                "WHERE f.source_id = ? AND d.collection != ?",
                (source_id, collection),
            ).fetchall()
        )
        return {r[0] for r in rows}

    async def mark_seen(self, source_id: str, paths: Sequence[str], scan: int) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE source_files SET seen = ? WHERE source_id = ? AND path = ?",
                [(scan, source_id, p) for p in paths],
            )

        if paths:
            await self._transaction(body)

    async def last_scan_number(self, source_id: str) -> int:
        rows = await self._worker.call(
            lambda c: c.execute(
                "SELECT COALESCE(MAX(seen), 0) FROM source_files WHERE source_id = ?",
                (source_id,),
            ).fetchall()
        )
        return int(rows[0][0])

    async def drop_unseen(
        self, source_id: str, scan: int, limit: int = 500
    ) -> tuple[int, list[str]]:
        """Forget up to `limit` files the scan `scan` did not see (they vanished); returns
        how many, and their documents now `deleting`."""

        def body(conn: sqlite3.Connection) -> tuple[int, list[str]]:
            rows = conn.execute(
                "SELECT path, document_id FROM source_files WHERE source_id = ? AND seen < ? "
                "LIMIT ?",
                (source_id, scan, limit),
            ).fetchall()
            conn.executemany(
                "DELETE FROM source_files WHERE source_id = ? AND path = ?",
                [(source_id, p) for p, _ in rows],
            )
            return len(rows), _release(conn, [d for _, d in rows])

        return await self._transaction(body)

    async def settle_source_file(self, row: SourceFile, replaces: str | None) -> list[str]:
        """Record what became of a scanned file (ingested, same content, or failed); the
        document it had before is released. Returns the documents now `deleting`."""

        return await self._transaction(lambda conn: _settle(conn, row, replaces))

    @staticmethod
    def settle_statements(
        conn: sqlite3.Connection, row: SourceFile, replaces: str | None
    ) -> list[str]:
        """`settle_source_file` inside a transaction the caller holds."""
        return _settle(conn, row, replaces)


def decode_spec(record: SourceRecord) -> dict[str, Any]:
    return dict(msgspec.json.decode(record.spec))
