"""The embedding-model switch (admin): re-embed in the background, then swap."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from litestar import Controller, Request, get, post

from appliance.config.paths import models_dir
from appliance.domain.errors import ApplianceError
from appliance.ingest.embedding_switch import SwitchStatus
from appliance.models.registry import REGISTRY, Registry, RegistryError
from appliance.models.sizing import ModelPlan, read_gguf_info
from appliance.security.keys import Role
from appliance.server.openapi import errors
from appliance.server.services import Services
from appliance.wire.api import EmbeddingSwitchRead, EmbeddingSwitchRequest

MiB = 1024 * 1024


def _read(services: Services, status: SwitchStatus) -> EmbeddingSwitchRead:
    return EmbeddingSwitchRead(
        collection=services.collection, state=status.state,  # type: ignore[arg-type]
        model=status.model, target_collection=status.collection,
        documents_total=status.documents_total, documents_done=status.documents_done,
        chunks_done=status.chunks_done, started_at=status.started_at,
        finished_at=status.finished_at, error=status.error,
    )  # fmt: skip


class ModelController(Controller):
    path = "/v1/models/embedding"
    tags = ("admin",)
    opt = {"role": Role.ADMIN}  # noqa: RUF012 - Litestar's own attribute

    @get(summary="The live collection and the embedding switch's progress (admin)",
         responses=errors())  # fmt: skip
    async def switch_status(self, services: Services) -> EmbeddingSwitchRead:
        return _read(services, services.embedding_switch.status)

    @post(
        status_code=202,
        summary="Switch the embedding model: re-embed every chunk, then swap (admin)",
        description=(
            "The model must have been added with `appliance models add` (role embedding). "
            "Its vectors go to a new collection while search and uploads go on with the "
            "current model; when every chunk is re-embedded, search, answers and ingestion "
            "swap together and the next start keeps the new model. Poll GET for progress."
        ),
        responses=errors(400, 404, 409, 503),
    )
    async def switch(
        self, data: EmbeddingSwitchRequest, services: Services, request: Request[Any, Any, Any]
    ) -> EmbeddingSwitchRead:
        directory = models_dir(services.settings)
        registry = await asyncio.to_thread(Registry.load, directory)
        entry = registry.models.get(data.name)
        if entry is None:
            raise ApplianceError(
                f"no embedding model {data.name!r} is registered (appliance models add FILE)",
                status=404, code="unknown_model", field="name",
            )  # fmt: skip
        if entry.role != "embedding":
            raise ApplianceError(
                f"{data.name!r} is a {entry.role} model", status=400, code="wrong_role",
                field="name",
            )  # fmt: skip
        try:  # the file must still be what `models add` checked
            path = await asyncio.to_thread(registry.path_of, data.name)
        except RegistryError as exc:
            raise ApplianceError(str(exc), status=409, code="model_changed") from exc
        if not os.access(directory, os.W_OK) or not os.access(directory / REGISTRY, os.W_OK):
            raise ApplianceError(
                f"{directory}: the server cannot write the model registry there (owner or "
                "mode); `chown -R` it to the service user",
                status=409, code="registry_read_only",
            )  # fmt: skip
        await asyncio.to_thread(_check_fit, services, path)

        def activate() -> Callable[[], None]:
            """Make the model active; returns what restores the one active before."""
            previous = Registry.load(directory).active.get("embedding")
            Registry.load(directory).use(data.name)

            def undo() -> None:
                restored = Registry.load(directory)
                if previous is None:
                    restored.active.pop("embedding", None)
                else:
                    restored.active["embedding"] = previous
                restored.save()

            return undo

        status = services.embedding_switch.start(data.name, path, entry.sha256, activate)
        services.audit.record("embedding_switch", by=request.user.id, model=data.name)
        return _read(services, status)


def _check_fit(services: Services, path: Path) -> None:
    """The switch loads the new model beside the running ones: it must fit the budget."""
    info = read_gguf_info(path)
    current = services.plan.embedding
    extra = ModelPlan("embedding", info, min(info.train_ctx, 512), 512, current.n_threads)
    need = services.plan.total_bytes + extra.estimated_bytes
    if need > services.plan.budget_bytes:
        raise ApplianceError(
            f"re-embedding loads {info.name} ({extra.estimated_bytes / MiB:.0f} MiB) beside "
            f"the running models: ~{need / MiB:.0f} MiB of a {services.plan.budget_bytes / MiB:.0f}"
            " MiB budget. Stop, set models.embedding_model, delete and re-ingest instead, or "
            "raise models.ram_budget_fraction",
            status=409, code="does_not_fit",
        )  # fmt: skip
