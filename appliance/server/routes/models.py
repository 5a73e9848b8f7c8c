"""The embedding-model switch (admin): re-embed in the background, then swap."""

from __future__ import annotations

from litestar import Controller, get, post

from appliance.ingest.embedding_switch import SwitchStatus
from appliance.security.audit import CallerAudit
from appliance.security.keys import Role
from appliance.server.embedding_models import EmbeddingModels
from appliance.server.openapi import errors
from appliance.wire.embedding_switch import EmbeddingSwitchRead, EmbeddingSwitchRequest


def _read(collection: str, status: SwitchStatus) -> EmbeddingSwitchRead:
    return EmbeddingSwitchRead(
        collection=collection, state=status.state,  # type: ignore[arg-type]
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
    async def switch_status(self, embedding_models: EmbeddingModels) -> EmbeddingSwitchRead:
        return _read(embedding_models.collection, embedding_models.status)

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
        self,
        data: EmbeddingSwitchRequest,
        embedding_models: EmbeddingModels,
        audit: CallerAudit,
    ) -> EmbeddingSwitchRead:
        status = await embedding_models.switch_to(data.name)
        audit.record("embedding_switch", model=data.name)
        return _read(embedding_models.collection, status)
