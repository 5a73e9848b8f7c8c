"""Collections as the admin manages them: create, rename, delete (with their documents).

A rename changes one row: chunks, documents and key scopes hold the collection's id.
A collection a synced folder fills is neither renamed nor deleted while the source
names it (the next scan would make it again under the old name)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.domain.access import ReadScope
from appliance.domain.errors import ApplianceError
from appliance.ingest.service import IngestionService
from appliance.ingest.sources import SourceService
from appliance.store.collections import (
    CollectionConflict,
    CollectionNotEmpty,
    CollectionRegistry,
)
from appliance.store.journal import Journal
from appliance.store.journal_collections import CollectionRow
from appliance.wire.collections import DEFAULT_COLLECTION


class CollectionNotFound(ApplianceError):
    """No such collection, or one the key may not read: the same answer, so a scoped
    key cannot learn which collections exist."""

    status, code = 404, "collection_not_found"

    def __init__(self, name: str, field: str | None = None) -> None:
        super().__init__(f"collection {name} not found", field=field)


@dataclass(frozen=True)
class CollectionService:
    registry: CollectionRegistry
    _journal: Journal
    _ingestion: IngestionService
    _sources: SourceService | None

    async def listing(self, scope: ReadScope) -> list[tuple[CollectionRow, int]]:
        """The collections `scope` reads, each with its number of documents."""
        counts = await self._journal.documents_per_collection()
        return [(r, counts.get(r.id, 0)) for r in self.registry.all() if scope.admits(r.id)]

    def get(self, name: str, scope: ReadScope, field: str | None = None) -> CollectionRow:
        row = self.registry.named(name)
        if row is None or not scope.admits(row.id):
            raise CollectionNotFound(name, field)
        return row

    async def create(self, name: str) -> tuple[CollectionRow, int]:
        return await self.registry.create(name), 0

    async def rename(self, name: str, new_name: str) -> tuple[CollectionRow, int]:
        row = self.get(name, ReadScope())
        self._not_a_source_target(row, "renamed")
        renamed = await self.registry.rename(row, new_name)
        return renamed, (await self._journal.documents_per_collection()).get(row.id, 0)

    async def delete(self, name: str, *, force: bool) -> int:
        """Delete the collection; with `force`, its documents first. Their number."""
        row = self.get(name, ReadScope())
        if row.id == DEFAULT_COLLECTION:
            raise CollectionConflict(
                "the default collection cannot be deleted: uploads that name none go there"
            )
        self._not_a_source_target(row, "deleted")
        documents = await self._journal.documents_in(row.id)
        if documents and not force:
            raise CollectionNotEmpty(
                f"collection {name} holds {len(documents)} documents: delete with force=true "
                "to delete them too"
            )
        for document_id in documents:
            await self._ingestion.delete_document(document_id)
        await self.registry.forget(row)
        return len(documents)

    def _not_a_source_target(self, row: CollectionRow, change: str) -> None:
        if self._sources is None:
            return
        named = [s.id for s, _, _ in self._sources.listing() if s.collection == row.name]
        if named:
            raise CollectionConflict(
                f"collection {row.name} cannot be {change}: the source(s) "
                f"{', '.join(named)} put their documents there; change or remove them first"
            )
