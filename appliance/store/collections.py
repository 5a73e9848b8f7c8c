"""The collections, cached in memory over the journal: a request resolves names to ids
without touching the disk, and every change is written through before it is seen."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable

from appliance.domain.errors import ApplianceError
from appliance.store.journal_collections import CollectionJournal, CollectionRow
from appliance.wire.collections import DEFAULT_COLLECTION


class CollectionConflict(ApplianceError):
    status, code = 409, "collection_conflict"


class CollectionNotEmpty(ApplianceError):
    status, code = 409, "collection_not_empty"


class CollectionRegistry:
    def __init__(self, journal: CollectionJournal) -> None:
        self._journal = journal
        self._by_id: dict[str, CollectionRow] = {}
        self._changing = asyncio.Lock()  # a name check and its write, together

    async def load(self) -> None:
        self._by_id = {r.id: r for r in await self._journal.collection_rows()}

    def all(self) -> list[CollectionRow]:
        return sorted(self._by_id.values(), key=lambda r: (r.created_at, r.name))

    def named(self, name: str) -> CollectionRow | None:
        return next((r for r in self._by_id.values() if r.name == name), None)

    def name_of(self, collection_id: str) -> str:
        """Its name (a deleted collection's id is shown as the id)."""
        row = self._by_id.get(collection_id)
        return row.name if row is not None else collection_id

    def ids(self, names: Iterable[str]) -> dict[str, str | None]:
        """Each name's id (None: no such collection)."""
        return {n: (r.id if (r := self.named(n)) else None) for n in names}

    async def create(self, name: str) -> CollectionRow:
        async with self._changing:
            if self.named(name) is not None:
                raise CollectionConflict(f"collection {name} already exists")
            row = CollectionRow(secrets.token_hex(6), name, time.time())
            await self._journal.add_collection(row)
            self._by_id[row.id] = row
            return row

    async def rename(self, row: CollectionRow, name: str) -> CollectionRow:
        async with self._changing:
            if row.id == DEFAULT_COLLECTION:
                raise CollectionConflict(
                    "the default collection keeps its name: uploads that name none go there"
                )
            if self.named(name) is not None:
                raise CollectionConflict(f"collection {name} already exists")
            await self._journal.rename_collection(row.id, name)
            renamed = CollectionRow(row.id, name, row.created_at)
            self._by_id[row.id] = renamed
            return renamed

    async def forget(self, row: CollectionRow) -> None:
        """Its row (its documents are deleted by then)."""
        async with self._changing:
            await self._journal.remove_collection(row.id)
            self._by_id.pop(row.id, None)

    async def ensure(self, name: str) -> str:
        """The id of the collection `name`, made if it does not exist (a source's)."""
        row = self.named(name)
        if row is not None:
            return row.id
        try:
            return (await self.create(name)).id
        except CollectionConflict:  # made meanwhile
            made = self.named(name)
            assert made is not None
            return made.id
