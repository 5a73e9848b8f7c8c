"""The journal's part for collections: their names and the documents in each.

A collection's `id` never changes (chunks, documents and key scopes refer to it), so a
rename is one row; `default` is the id of the collection every document without one
belongs to, and of every document stored before collections existed."""

from __future__ import annotations

import sqlite3

import msgspec

from appliance.store.journal_thread import JournalThread


class CollectionRow(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: float


class CollectionJournal(JournalThread):
    async def collection_rows(self) -> list[CollectionRow]:
        rows = await self._rows("SELECT id, name, created_at FROM collections ORDER BY created_at")
        return [CollectionRow(str(i), str(name), float(str(at))) for i, name, at in rows]

    async def documents_per_collection(self) -> dict[str, int]:
        counted = "SELECT collection, count(*) FROM documents WHERE state = 'indexed' GROUP BY 1"
        return {str(name): int(str(n)) for name, n in await self._rows(counted)}

    async def add_collection(self, row: CollectionRow) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO collections (id, name, created_at) VALUES (?, ?, ?)",
                msgspec.structs.astuple(row),
            )

        await self._transaction(body)

    async def rename_collection(self, collection_id: str, name: str) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE collections SET name = ? WHERE id = ?", (name, collection_id))

        await self._transaction(body)

    async def remove_collection(self, collection_id: str) -> None:
        """The collection's row; its documents must be deleted first."""

        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM collections WHERE id = ?", (collection_id,))

        await self._transaction(body)

    async def documents_in(self, collection_id: str) -> list[str]:
        """Ids of the collection's documents, indexed or being deleted."""
        rows = await self._rows("SELECT id FROM documents WHERE collection = ?", collection_id)
        return [str(r[0]) for r in rows]
