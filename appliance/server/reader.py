"""`Reader`: what the calling key may read, as routes use it.

Routes that return document content take a `reader` and pass its collections down to
the one store query or journal read (`ReadScope`); a document, job, source or
collection outside them is answered 404, as if it did not exist. A request naming a
collection it may not read is refused the same way and written to the audit log with
the key's id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request
from litestar.datastructures import State

from appliance.domain.errors import ApplianceError
from appliance.domain.types import DocumentFilter
from appliance.ingest.collections import CollectionNotFound, CollectionService
from appliance.security.audit import CallerAudit
from appliance.security.keys import KeyRecord
from appliance.server.startup import running_services
from appliance.store.journal_collections import CollectionRow
from appliance.wire.collections import DEFAULT_COLLECTION


class CollectionsOff(ApplianceError):
    """The services were built without collections (never once the server has started):
    answered as `starting`, like the synced folders before they start."""

    status, code = 503, "starting"


class Reader:
    """A plain class: Litestar passes a dependency of a plain class through as it is."""

    __slots__ = ("_audit", "_collections", "key", "scope")

    def __init__(self, key: KeyRecord, collections: CollectionService, audit: CallerAudit) -> None:
        self.key, self.scope = key, key.scope
        self._collections, self._audit = collections, audit

    def admits(self, collection_id: str) -> bool:
        return self.scope.admits(collection_id)

    def name_of(self, collection_id: str) -> str:
        return self._collections.registry.name_of(collection_id)

    def collection(self, name: str | None, field: str) -> CollectionRow:
        """The named collection (None: `default`), if the key reads it."""
        try:
            return self._collections.get(name or DEFAULT_COLLECTION, self.scope, field)
        except CollectionNotFound:
            self._audit.record("collection_refused", collection=name, field=field)
            raise

    def collections(self, names: Sequence[str] | None, field: str) -> frozenset[str] | None:
        """The ids a request reads: the key's, narrowed to `names` if given."""
        if names is None:
            return self.scope.collections
        return frozenset(self.collection(n, field).id for n in names)

    def searched(self, filters: DocumentFilter | None) -> frozenset[str] | None:
        """The collections a search reads: the key's, narrowed by `filters.collections`."""
        return self.collections(
            filters.collections if filters is not None else None, "filters.collections"
        )


def reader_for(state: State, key: KeyRecord) -> Reader:
    services = running_services(state)
    if services.collections is None:
        raise CollectionsOff("collections are not set up")
    return Reader(key, services.collections, CallerAudit(services.audit, key.id))


def caller_reader(state: State, request: Request[KeyRecord, Any, Any]) -> Reader:
    return reader_for(state, request.user)
