"""Synced folders: list and scan (their owning role or admin); add and remove (admin)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from appliance.config.sources import SourceSettings
from appliance.ingest.sources import SourceNotFound, SourceService
from appliance.security.audit import CallerAudit
from appliance.security.keys import Role, allows
from appliance.server.errors import ApplianceError
from appliance.server.openapi import errors
from appliance.server.reader import Reader
from appliance.wire.sources import SourceList, SourceRead, SourceRemoved


class AdminOnly(ApplianceError):
    status, code = 403, "forbidden"


def _visible(
    request: Request[Any, Any, Any], spec: SourceSettings, sources: SourceService, reader: Reader
) -> bool:
    """Its role's keys (and admin's) see it, if they read the collection it fills."""
    if not allows(request.user.role, Role(spec.role)):
        return False
    collection = sources.collection_of(spec)
    return reader.scope.collections is None or (
        collection is not None and reader.admits(collection)
    )


class SourceController(Controller):
    path = "/v1/sources"
    tags = ("sources",)
    opt = {"role": Role.INGEST}  # noqa: RUF012 - Litestar's own attribute; admin passes too

    @get("/", summary="List synced folders and their last scan (their role, or admin)",
         responses=errors())  # fmt: skip
    async def list_sources(
        self, sources: SourceService, request: Request[Any, Any, Any], reader: Reader
    ) -> SourceList:
        return SourceList(
            [
                SourceRead(spec, origin, report)  # type: ignore[arg-type]
                for spec, origin, report in sources.listing()
                if _visible(request, spec, sources, reader)
            ]
        )

    @post(
        "/", status_code=HTTP_201_CREATED, summary="Add a synced folder (admin)",
        responses=errors(400, 409), opt={"role": Role.ADMIN},
    )  # fmt: skip
    async def add_source(
        self,
        data: SourceSettings,
        sources: SourceService,
        audit: CallerAudit,
    ) -> SourceRead:
        await sources.add(data)
        audit.record("source_added", source=data.id, path=data.path)
        spec, origin, report = sources.get(data.id)
        return SourceRead(spec, origin, report)  # type: ignore[arg-type]

    @post(
        "/{source_id:str}/scan", status_code=HTTP_202_ACCEPTED,
        summary="Scan a synced folder now (its role, or admin); poll GET /v1/sources",
        description=(
            "A scan deletes nothing when the folder is on another device than when it was "
            "added (a share not mounted) or holds no file where the last scan found some; "
            "its report says why. `purge=true` (admin): the folder as it is now is the truth "
            "(a share moved for good, or emptied on purpose): its device is recorded anew and "
            "what the scan does not see is deleted. A purge applies to the scan it starts "
            "only: asked while a scan of the folder runs, it is refused (409)."
        ),
        responses=errors(403, 404, 409),
    )  # fmt: skip
    async def scan_source(
        self, source_id: str, sources: SourceService, audit: CallerAudit,
        request: Request[Any, Any, Any], reader: Reader, purge: bool = False,
    ) -> SourceRead:  # fmt: skip
        spec, origin, _ = sources.get(source_id)
        if not _visible(request, spec, sources, reader):
            raise SourceNotFound(f"no source named {source_id!r}")
        if purge and not allows(request.user.role, Role.ADMIN):
            raise AdminOnly("`purge`: only an admin key may purge a source", field="purge")
        report = sources.scan(source_id, purge=purge)  # ScanRunning (409) if purge comes late
        if purge:
            audit.record("source_purged", source=source_id)
        return SourceRead(spec, origin, report)  # type: ignore[arg-type]

    @delete(
        "/{source_id:str}", status_code=200,
        summary="Stop syncing a folder and delete its documents (admin)",
        responses=errors(404, 409), opt={"role": Role.ADMIN},
    )  # fmt: skip
    async def remove_source(
        self,
        source_id: str,
        sources: SourceService,
        audit: CallerAudit,
    ) -> SourceRemoved:
        deleted = await sources.remove(source_id)
        audit.record("source_removed", source=source_id)
        return SourceRemoved(source_id, deleted)
