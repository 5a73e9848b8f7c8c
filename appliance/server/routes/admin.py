"""Admin operations: a consistent backup of everything, streamed as a tar.gz."""

from __future__ import annotations

import contextlib
from pathlib import Path

from litestar import Controller, post
from litestar.background_tasks import BackgroundTask
from litestar.response import File

from appliance.security.audit import CallerAudit
from appliance.security.keys import Role
from appliance.server.backup import Backups
from appliance.server.openapi import errors


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class AdminController(Controller):
    path = "/v1"
    tags = ("admin",)
    opt = {"role": Role.ADMIN}  # noqa: RUF012 - Litestar's own attribute

    @post(
        "/backup",
        status_code=200,
        summary="Make and download a consistent backup archive (admin)",
        description=(
            "The journal, the vector store, the key table, the settings and a manifest "
            "of checksums (models included), as application/gzip. Made while the server "
            "runs; restore it with `appliance restore PATH` on a stopped server."
        ),
        media_type="application/gzip",
        responses=errors(409, 503),
    )
    async def backup(self, backups: Backups, audit: CallerAudit) -> File:
        archive = await backups.make()
        audit.record("backup", archive=archive.name)
        return File(
            archive,
            filename=archive.name,
            media_type="application/gzip",
            background=BackgroundTask(_remove, archive),
        )
