"""What the admin console's dashboard and Logs screen read: status and recent log lines."""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Annotated, Literal
from urllib.parse import urlsplit

from litestar import Controller, get
from litestar.params import Parameter

import appliance
from appliance.config.schema import GenerationSettings
from appliance.engine.remote.client import public_url
from appliance.ingest.sniff import SUPPORTED_EXTENSIONS
from appliance.models.sizing import ModelPlan
from appliance.security.keys import Role
from appliance.server.auth import ANY_KEY
from appliance.server.openapi import errors
from appliance.server.services import Services, data_dir
from appliance.wire.api import LogPage, ModelStatus, StatusRead


def _external(g: GenerationSettings) -> ModelStatus:
    """The chat model of an external server: its name, where, its context and the
    requests in flight to it at most."""
    return ModelStatus(
        role="chat",
        name=f"{g.model} ({public_url(g.url)})",
        file_size_bytes=0,
        context_tokens=g.n_ctx,
        slots=g.external_slots(),
        threads=0,
    )


def _model(plan: ModelPlan, role: Literal["chat", "embedding"]) -> ModelStatus:
    return ModelStatus(
        role=role,
        name=plan.info.name,
        file_size_bytes=plan.info.file_size,
        context_tokens=plan.n_ctx,
        slots=plan.slots if role == "chat" else plan.contexts,
        threads=plan.n_threads,
    )


class StatusController(Controller):
    path = "/v1"
    tags = ("status",)

    @get(
        "/status", summary="Version, uptime, models, disk (any key)", opt={"role": ANY_KEY},
        responses=errors(),
    )  # fmt: skip
    async def status(self, services: Services) -> StatusRead:
        root = data_dir(services.settings)
        disk = await asyncio.to_thread(shutil.disk_usage, root)
        url = services.settings.storage.qdrant_url
        plan = services.plan
        return StatusRead(
            version=appliance.__version__,
            started_at=services.started_at,
            uptime_s=time.time() - services.started_at,
            models=[
                _model(plan.chat, "chat")
                if plan.chat.loaded
                else _external(services.settings.generation),
                _model(plan.embedding, "embedding"),
            ],
            ram_budget_bytes=plan.budget_bytes,
            ram_planned_bytes=plan.total_bytes,
            store=(urlsplit(url).hostname or url) if url else "embedded",
            documents=len(await services.journal.document_ids()),
            data_dir_bytes=await services.data_dir_size.get(),
            disk_free_bytes=disk.free,
            disk_total_bytes=disk.total,
            supported_extensions=list(SUPPORTED_EXTENSIONS),
        )

    @get(
        "/logs", summary="Recent server log lines, to follow (admin)", opt={"role": Role.ADMIN},
        responses=errors(400),
    )  # fmt: skip
    async def logs(
        self,
        services: Services,
        after: Annotated[
            int, Parameter(ge=0, description="Only lines numbered after this (`last_seq`).")
        ] = 0,
        level: Annotated[
            Literal["debug", "info", "warning", "error"],
            Parameter(description="Lowest level shown."),
        ] = "debug",
        limit: Annotated[int, Parameter(ge=1, le=2000, description="At most this many.")] = 500,
    ) -> LogPage:
        lines = services.logs.since(after, level, limit)
        return LogPage(lines=lines, last_seq=services.logs.last_seq)
