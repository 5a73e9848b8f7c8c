"""`/v1/collections`: list (what the key reads), create, rename, delete (admin)."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.status_codes import HTTP_201_CREATED

from appliance.ingest.collections import CollectionService
from appliance.security.audit import CallerAudit
from appliance.security.keys import Role
from appliance.server.openapi import errors
from appliance.server.reader import Reader
from appliance.store.journal_collections import CollectionRow
from appliance.wire.collections import (
    CollectionCreate,
    CollectionDeleted,
    CollectionList,
    CollectionRead,
    CollectionRename,
)


def collection_read(row: CollectionRow, documents: int) -> CollectionRead:
    return CollectionRead(row.name, row.id, row.created_at, documents)


class CollectionController(Controller):
    path = "/v1/collections"
    tags = ("collections",)
    opt = {"role": Role.ADMIN}  # noqa: RUF012 - Litestar's own attribute

    @get(
        "/", summary="List the collections this key reads (query; admin: all)",
        opt={"role": Role.QUERY}, responses=errors(),
    )  # fmt: skip
    async def list_collections(
        self, collection_service: CollectionService, reader: Reader
    ) -> CollectionList:
        listed = await collection_service.listing(reader.scope)
        return CollectionList([collection_read(r, n) for r, n in listed])

    @post(
        "/", status_code=HTTP_201_CREATED, summary="Create a collection (admin)",
        responses=errors(400, 409),
    )  # fmt: skip
    async def create_collection(
        self, data: CollectionCreate, collection_service: CollectionService, audit: CallerAudit
    ) -> CollectionRead:
        row, documents = await collection_service.create(data.name)
        audit.record("collection_created", collection=row.name, collection_id=row.id)
        return collection_read(row, documents)

    @patch(
        "/{name:str}", summary="Rename a collection (admin); keys and documents follow it",
        responses=errors(400, 404, 409),
    )  # fmt: skip
    async def rename_collection(
        self, name: str, data: CollectionRename, collection_service: CollectionService,
        audit: CallerAudit,
    ) -> CollectionRead:  # fmt: skip
        row, documents = await collection_service.rename(name, data.name)
        audit.record("collection_renamed", collection=name, to=row.name, collection_id=row.id)
        return collection_read(row, documents)

    @delete(
        "/{name:str}", status_code=200,
        summary="Delete a collection (admin); one holding documents needs force=true, "
        "which deletes them too",
        responses=errors(404, 409),
    )  # fmt: skip
    async def delete_collection(
        self,
        name: str,
        collection_service: CollectionService,
        audit: CallerAudit,
        force: bool = False,
    ) -> CollectionDeleted:
        deleted = await collection_service.delete(name, force=force)
        audit.record("collection_deleted", collection=name, documents=deleted)
        return CollectionDeleted(name, deleted)
