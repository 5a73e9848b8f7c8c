"""What GET /v1/status reports: version, uptime, models, RAM plan, store, documents, disk.

The admin console's dashboard reads it. The chat model of an external server is shown
by name and address (without user:password@), with its context and the requests in
flight to it at most.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Collection
from typing import Literal
from urllib.parse import urlsplit

import appliance
from appliance.config.generation import GenerationSettings
from appliance.config.paths import data_dir
from appliance.engine.remote.client import public_url
from appliance.ingest.sniff import SUPPORTED_EXTENSIONS
from appliance.models.sizing import ModelPlan
from appliance.server.services import Services
from appliance.wire.status import ModelStatus, StatusRead


class StatusReport:
    """GET /v1/status, read from the running services at each call."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def read(self, collections: Collection[str] | None = None) -> StatusRead:
        """`collections`: those the caller reads (ids; None: all): `documents` counts
        only theirs, so a key learns nothing of the others'."""
        services = self._services
        root = data_dir(services.settings)
        disk = await asyncio.to_thread(shutil.disk_usage, root)
        url = services.settings.storage.qdrant_url
        plan = services.plan
        return StatusRead(
            version=appliance.__version__,
            started_at=services.started_at,
            uptime_s=time.time() - services.started_at,
            models=[
                model_status(plan.chat, "chat")
                if plan.chat.loaded
                else external_model_status(services.settings.generation),
                model_status(plan.embedding, "embedding"),
            ],
            ram_budget_bytes=plan.budget_bytes,
            ram_planned_bytes=plan.total_bytes,
            store=(urlsplit(url).hostname or url) if url else "embedded",
            documents=await services.journal.indexed_count(collections),
            data_dir_bytes=await services.data_dir_size.get(),
            disk_free_bytes=disk.free,
            disk_total_bytes=disk.total,
            supported_extensions=list(SUPPORTED_EXTENSIONS),
        )


def external_model_status(g: GenerationSettings) -> ModelStatus:
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


def model_status(plan: ModelPlan, role: Literal["chat", "embedding"]) -> ModelStatus:
    return ModelStatus(
        role=role,
        name=plan.info.name,
        file_size_bytes=plan.info.file_size,
        context_tokens=plan.n_ctx,
        slots=plan.slots if role == "chat" else plan.contexts,
        threads=plan.n_threads,
    )
