"""API keys (admin): list, create (the key is shown once), revoke."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.status_codes import HTTP_201_CREATED

from appliance.domain.access import ReadScope
from appliance.ingest.collections import CollectionService
from appliance.security.audit import CallerAudit
from appliance.security.key_store import KeyStore, LastAdminKey
from appliance.security.keys import KeyRecord, Role
from appliance.server.errors import ApplianceError, found
from appliance.server.openapi import errors
from appliance.wire.collections import ALL_COLLECTIONS
from appliance.wire.keys import KeyCreate, KeyCreated, KeyList, KeyRead


class KeyConflict(ApplianceError):
    status = 409
    code = "last_admin_key"


def key_read(r: KeyRecord, collection_service: CollectionService) -> KeyRead:
    names = [
        c if c == ALL_COLLECTIONS else collection_service.registry.name_of(c) for c in r.collections
    ]
    return KeyRead(r.id, r.name, r.role.value, r.created_at, r.revoked_at, names)


class KeyController(Controller):
    path = "/v1/keys"
    tags = ("keys",)
    opt = {"role": Role.ADMIN}  # noqa: RUF012 - Litestar's own attribute

    @get("/", summary="List API keys (admin; never their secrets)", responses=errors())
    async def list_keys(self, keys: KeyStore, collection_service: CollectionService) -> KeyList:
        return KeyList([key_read(r, collection_service) for r in keys.list()])

    @post(
        "/", status_code=HTTP_201_CREATED, summary="Create an API key (admin)",
        responses=errors(400, 404),
    )  # fmt: skip
    async def create_key(
        self,
        data: KeyCreate,
        keys: KeyStore,
        audit: CallerAudit,
        collection_service: CollectionService,
    ) -> KeyCreated:
        granted = tuple(
            c if c == ALL_COLLECTIONS else collection_service.get(c, ReadScope(), "collections").id
            for c in dict.fromkeys(data.collections)
        )
        if ALL_COLLECTIONS in granted:
            granted = (ALL_COLLECTIONS,)
        key, r = await keys.create(data.name, Role(data.role), granted)
        audit.record("key_created", key_id=r.id, role=r.role.value, collections=list(granted))
        return KeyCreated(
            r.id,
            r.name,
            r.role.value,
            r.created_at,
            key,
            key_read(r, collection_service).collections,
        )

    @delete(
        "/{key_id:str}", status_code=200, summary="Revoke an API key (admin)",
        responses=errors(404, 409),
    )  # fmt: skip
    async def revoke_key(
        self, key_id: str, keys: KeyStore, audit: CallerAudit, collection_service: CollectionService
    ) -> KeyRead:
        try:
            r = await keys.revoke(key_id)
        except LastAdminKey as exc:
            raise KeyConflict(str(exc)) from None
        revoked = found(r, f"key {key_id}")
        audit.record("key_revoked", key_id=key_id)
        return key_read(revoked, collection_service)
