"""What the admin console's dashboard and Logs screen read: status and recent log lines."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.params import Parameter

from appliance.observability.log_buffer import LogBuffer
from appliance.security.keys import Role
from appliance.server.auth import ANY_KEY
from appliance.server.openapi import errors
from appliance.server.reader import Reader
from appliance.server.status_report import StatusReport
from appliance.wire.status import LogPage, StatusRead


class StatusController(Controller):
    path = "/v1"
    tags = ("status",)

    @get(
        "/status", summary="Version, uptime, models, disk, documents the key reads (any key)",
        opt={"role": ANY_KEY}, responses=errors(),
    )  # fmt: skip
    async def status(self, status_report: StatusReport, reader: Reader) -> StatusRead:
        return await status_report.read(reader.scope.collections)

    @get(
        "/logs", summary="Recent server log lines, to follow (admin)", opt={"role": Role.ADMIN},
        responses=errors(400),
    )  # fmt: skip
    async def logs(
        self,
        logs: LogBuffer,
        after: Annotated[
            int, Parameter(ge=0, description="Only lines numbered after this (`last_seq`).")
        ] = 0,
        level: Annotated[
            Literal["debug", "info", "warning", "error"],
            Parameter(description="Lowest level shown."),
        ] = "debug",
        limit: Annotated[int, Parameter(ge=1, le=2000, description="At most this many.")] = 500,
    ) -> LogPage:
        return logs.page(after, level, limit)
