"""The services container: everything the server's routes use, built once by
`server/build.py` and closed at shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, InitVar, dataclass
from pathlib import Path
from typing import Any

from appliance.config.paths import data_dir, models_dir
from appliance.config.schema import Settings
from appliance.domain.protocols import Embedder, Generator
from appliance.engine.build import Engine
from appliance.engine.remote.external import ExternalEngine
from appliance.ingest.collections import CollectionService
from appliance.ingest.embedding_switch import EmbedderFactory, EmbeddingSwitch, StoreFactory
from appliance.ingest.service import IngestionService
from appliance.ingest.sources import SourceService
from appliance.models.sizing import SizingPlan
from appliance.observability.log_buffer import LogBuffer
from appliance.observability.metrics import Metrics
from appliance.query.pipeline import QueryService
from appliance.runtime.files import TreeSizeCache, unlock_data_dir
from appliance.security.audit import AuditLog
from appliance.security.key_store import KeyStore
from appliance.server.backup import Backups
from appliance.server.embedding_models import EmbeddingModels
from appliance.store.edge import EdgeStore
from appliance.store.journal import Journal
from appliance.store.qdrant import QdrantStore

__all__ = ["Services"]


class ServedModels:
    """The chat and the live embedding model, as named by their files (OpenAI's model list).
    A plain class, not a dataclass: Litestar passes a dependency of a plain class through
    instead of converting its fields."""

    __slots__ = ("chat", "created", "embedder", "embedding")

    def __init__(self, chat: str, embedding: str, embedder: Embedder, created: int) -> None:
        self.chat, self.embedding = chat, embedding
        self.embedder = embedder  # the live one (an embedding switch replaces it)
        self.created = created  # when the server started


@dataclass(eq=False, repr=False)  # identity, and no repr: the settings hold secrets
class Services:
    """Everything the handlers use, built once. An embedding switch replaces `embedder`,
    `store`, `collection` and `embedding_path` (`swap_embedding`)."""

    settings: Settings
    plan: SizingPlan
    metrics: Metrics
    engine: Engine | ExternalEngine
    store: QdrantStore | EdgeStore
    journal: Journal
    ingestion: IngestionService
    query: QueryService
    keys: KeyStore
    audit: AuditLog
    collection: str
    _: KW_ONLY
    new_store: InitVar[StoreFactory]
    new_embedder: InitVar[EmbedderFactory]
    sources: SourceService | None = None  # the synced folders, once started
    collections: CollectionService | None = None
    data_dir_lock: int | None = None

    def __post_init__(self, new_store: StoreFactory, new_embedder: EmbedderFactory) -> None:
        self.embedder = self.engine.embedder
        self.generator: Generator = self.engine.generator
        self.started_at = time.time()
        self.logs = LogBuffer(self.settings.server.log_buffer_lines)
        self.logs.attach()
        self.data_dir = data_dir(self.settings)
        self.data_dir_size = TreeSizeCache(self.data_dir)
        self.embedding_path = self.plan.embedding.info.path
        self._retired: list[Callable[[], Awaitable[None]]] = []  # closes what a switch replaced
        self.embedding_switch = EmbeddingSwitch(self, new_store, new_embedder)
        self.backups = Backups(self, self.data_dir / "backups")
        self.embedding_models = EmbeddingModels(
            models_dir(self.settings), self.plan, self.embedding_switch, lambda: self.collection
        )

    def swap_embedding(self, embedder: Any, store: Any, collection: str, path: Path) -> None:
        """Search, answers and ingestion move to another embedding model and its collection
        at once (the embedding switch calls it under the ingestion lock). The replaced
        store stays open for answers in flight and closes at shutdown."""
        replaced = self.embedder
        self._retired.append(self.store.close)
        if replaced is not self.engine.embedder:
            self._retired.append(lambda: asyncio.to_thread(replaced.stop))
        self.query.use_embedding(embedder, store)
        self.ingestion.use_embedding(embedder, store)
        self.embedder, self.store = embedder, store
        self.collection, self.embedding_path = collection, path

    def served(self) -> ServedModels:
        return ServedModels(
            self.plan.chat.info.path.stem, self.embedding_path.stem, self.embedder,
            int(self.started_at),
        )  # fmt: skip

    async def close(self) -> None:
        await self.embedding_switch.stop()
        if self.sources is not None:
            await self.sources.stop()
        await self.ingestion.stop()
        self.engine.stop()
        await self.generator.aclose()
        if self.embedder is not self.engine.embedder:
            await asyncio.to_thread(self.embedder.stop)
        for close in self._retired:
            await close()
        await self.store.close()
        await self.journal.close()
        await self.keys.close()
        self.audit.stop()
        self.logs.detach()
        if self.data_dir_lock is not None:
            unlock_data_dir(self.data_dir_lock)
            self.data_dir_lock = None
