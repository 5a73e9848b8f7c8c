"""Build every service once from the settings (the only module naming concrete adapters)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from appliance.config.paths import admin_key_file, data_dir, models_dir, secrets_dir
from appliance.config.schema import Settings
from appliance.engine.build import Engine, EngineSpec, build_engine
from appliance.engine.embedder import LlamaEmbedder
from appliance.engine.generator import LlamaGenerator
from appliance.engine.remote.external import (
    ExternalEngine,
    build_external_engine,
    external_generator,
)
from appliance.engine.remote.generator import OpenAIGenerator, public_url
from appliance.ingest.embedding_switch import EmbeddingSwitch
from appliance.ingest.reconcile import reconcile
from appliance.ingest.sandbox import ParseSandbox
from appliance.ingest.service import IngestionService
from appliance.ingest.source_root import protected_folders
from appliance.ingest.sources import SourceService
from appliance.models.configured import plan_for
from appliance.models.locate import ModelError
from appliance.models.registry import Registry
from appliance.models.sizing import SizingError, SizingPlan
from appliance.observability.log_buffer import LogBuffer
from appliance.observability.metrics import Metrics
from appliance.query.pipeline import AnswerSettings, QueryService
from appliance.runtime.files import TreeSizeCache, lock_data_dir, sha256_file, unlock_data_dir
from appliance.security.audit import AuditLog
from appliance.security.key_store import KeyStore
from appliance.server.backup import sweep
from appliance.store.active_index import (
    ActiveIndex,
    read_active_index,
    remove_retired_edge,
    write_active_index,
)
from appliance.store.edge import EdgeStore
from appliance.store.journal import Journal, count_documents
from appliance.store.lexical import Bm25Params, LexicalEncoder
from appliance.store.qdrant import QdrantStore

log = logging.getLogger(__name__)
__all__ = ["Services", "admin_key_file", "build_services", "data_dir", "plan_for", "secrets_dir"]


def make_store(
    settings: Settings, dim: int, collection: str | None = None
) -> QdrantStore | EdgeStore:
    """A Qdrant server by URL, else the configured embedded engine under data_dir.
    `collection`: the live one (index.json after an embedding switch), else the config's."""
    s, r = settings.storage, settings.retrieval
    name = collection or s.collection
    lexical = LexicalEncoder(Bm25Params(avg_len=r.bm25_avg_len, k=r.bm25_k, b=r.bm25_b))
    if s.qdrant_url:
        return QdrantStore(
            collection=name, dim=dim, url=s.qdrant_url, api_key=s.qdrant_api_key,
            lexical=lexical, lexical_weight=r.bm25_weight,
        )  # fmt: skip
    if s.embedded_engine == "edge":
        return EdgeStore(
            path=data_dir(settings) / "edge" / name,
            dim=dim,
            search_threads=s.edge_search_threads,
            lexical=lexical,
            lexical_weight=r.bm25_weight,
        )
    return QdrantStore(
        collection=name, dim=dim, path=data_dir(settings) / "qdrant", lexical=lexical,
        lexical_weight=r.bm25_weight,
    )  # fmt: skip


def live_index(settings: Settings, embedding_path: Path) -> ActiveIndex:
    """The live collection, after checking that `embedding_path` is the model its vectors
    came from (by SHA-256, whatever the config or the registry names). An empty index
    takes the model it is given."""
    root = data_dir(settings)
    index = read_active_index(root, settings.storage.collection)
    digest = sha256_file(embedding_path)
    if index.embedding_sha256 != digest:
        documents = count_documents(root / "journal.sqlite3")
        if index.embedding_sha256 and documents:
            was = index.embedding or "the default model"
            raise ModelError(
                f"the index ({index.collection}, {documents} documents) holds vectors of "
                f"the embedding model {was} (sha256 {index.embedding_sha256[:16]}...), not of "
                f"{embedding_path.name} (sha256 {digest[:16]}...): vectors of two models "
                "cannot be searched together. Go back to that model (`appliance models use "
                "NAME`, or models.embedding_model), then switch through the running server"
            )
        index.embedding_sha256 = digest
        if not documents:
            index.embedding = Registry.load(models_dir(settings)).active.get("embedding") or ""
        write_active_index(root, index)
    return index


class Services:
    """Everything the handlers use, built once. A plain class, not a dataclass, so
    Litestar's signature model passes it through instead of converting its fields."""

    def __init__(
        self,
        settings: Settings,
        plan: SizingPlan,
        metrics: Metrics,
        engine: Engine | ExternalEngine,
        store: QdrantStore | EdgeStore,
        journal: Journal,
        ingestion: IngestionService,
        query: QueryService,
        keys: KeyStore,
        audit: AuditLog,
        collection: str,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.metrics = metrics
        self.engine = engine
        self.embedder = engine.embedder
        self.generator: LlamaGenerator | OpenAIGenerator = engine.generator
        self.store = store
        self.journal = journal
        self.ingestion = ingestion
        self.query = query
        self.keys = keys
        self.audit = audit
        self.data_dir_lock: int | None = None
        self.backup_lock = asyncio.Lock()
        self.started_at = time.time()
        self.logs = LogBuffer(settings.server.log_buffer_lines)
        self.logs.attach()
        self.data_dir_size = TreeSizeCache(data_dir(settings))
        self.data_dir = data_dir(settings)
        self.collection = collection
        self.embedding_path = plan.embedding.info.path
        self._retired: list[Any] = []  # stores and embedders replaced by a switch
        self.sources: SourceService | None = None  # synced folders (set once they start)
        self.embedding_switch = EmbeddingSwitch(
            self, lambda dim, name: make_store(settings, dim, name)
        )

    def swap_embedding(self, embedder: Any, store: Any, collection: str, path: Path) -> None:
        """Search, answers and ingestion move to another embedding model and its collection
        at once (the embedding switch calls it under the ingestion lock). The replaced
        store stays open for answers in flight and closes at shutdown."""
        self._retired.append(self.store)
        if self.embedder is not self.engine.embedder:
            self._retired.append(self.embedder)
        self.query.use_embedding(embedder, store)
        self.ingestion.use_embedding(embedder, store)
        self.embedder, self.store = embedder, store
        self.collection, self.embedding_path = collection, path

    async def close(self) -> None:
        await self.embedding_switch.stop()
        if self.sources is not None:
            await self.sources.stop()
        await self.ingestion.stop()
        self.engine.stop()
        if isinstance(self.generator, OpenAIGenerator):
            await self.generator.aclose()
        if self.embedder is not self.engine.embedder:
            await asyncio.to_thread(self.embedder.stop)
        for retired in self._retired:
            if isinstance(retired, LlamaEmbedder):
                await asyncio.to_thread(retired.stop)
            else:
                await retired.close()
        await self.store.close()
        await self.journal.close()
        await self.keys.close()
        self.audit.stop()
        self.logs.detach()
        if self.data_dir_lock is not None:
            unlock_data_dir(self.data_dir_lock)
            self.data_dir_lock = None


async def build_services(settings: Settings, plan: SizingPlan | None = None) -> Services:
    """Load models, open the store and the journal, reconcile them, start ingestion.

    `plan` is the sizing the caller already made (`serve` checks it before uvicorn);
    without it the models are located and sized here.
    """
    if plan is None:
        plan = await asyncio.to_thread(plan_for, settings)
    else:  # `serve` sized without checksums to bind sooner: check them before loading
        await asyncio.to_thread(plan_for, settings, False, True)
    if not plan.fits:
        raise SizingError(plan.explain())
    metrics = Metrics()
    root = data_dir(settings)
    lock = lock_data_dir(root)  # one server per data dir; restore refuses while held
    keys = KeyStore(secrets_dir(settings))
    try:
        await keys.start()  # first: a bad data dir fails before the models load
    except BaseException:
        unlock_data_dir(lock)
        raise
    audit = AuditLog(root / "audit.log" if settings.security.audit_log else None)
    audit.start()
    try:
        services = await _build_the_rest(settings, plan, metrics, root, keys, audit)
    except BaseException:
        await keys.close()
        audit.stop()
        unlock_data_dir(lock)
        raise
    services.data_dir_lock = lock
    metrics.watch(services)  # appliance_ready, appliance_data_disk_*: read at each scrape
    return services


async def _build_the_rest(
    settings: Settings,
    plan: SizingPlan,
    metrics: Metrics,
    root: Path,
    keys: KeyStore,
    audit: AuditLog,
) -> Services:
    g = settings.generation
    spec = EngineSpec(
        chat_path=plan.chat.info.path,
        embedding_path=plan.embedding.info.path,
        chat_ctx=plan.chat.n_ctx,
        chat_batch=plan.chat.n_batch,
        slots=plan.chat.slots,
        n_threads=plan.chat.n_threads,
        embed_ctx=plan.embedding.n_ctx,
        embed_train_ctx=plan.embedding.info.train_ctx,
        embed_dim=plan.embedding.info.n_embd,
        queue_size=g.queue_size,
        thread_nice=settings.models.thread_nice,
        adaptive_threads=settings.models.adaptive_threads,
        query_thread=settings.models.query_thread,
        extra_buffers=settings.models.extra_buffers,
        unified_kv=g.unified_kv,
        prefix_cache=g.prefix_cache,
        repetition_stop=g.repetition_stop,
    )
    engine: Engine | ExternalEngine
    if g.backend == "openai":  # answers from an external server: no chat model here
        engine = build_external_engine(spec, external_generator(g), on_step=metrics.observe_step)
    else:
        engine = build_engine(spec, on_step=metrics.observe_step)
        engine.generator.check_chat_template()  # before anything loads
    index = await asyncio.to_thread(live_index, settings, plan.embedding.info.path)
    base = settings.storage.collection
    for name in await asyncio.to_thread(remove_retired_edge, root, index, base):
        log.info("removed the collection %s (not live: an embedding switch's)", name)
    store = make_store(settings, plan.embedding.info.n_embd, index.collection)
    journal = Journal(root / "journal.sqlite3")
    # the loads wait on their threads: off the event loop, which answers /healthz meanwhile
    await asyncio.to_thread(engine.start)
    try:
        await asyncio.to_thread(store.start)
        try:
            journal.start()
        except BaseException:
            await store.close()
            raise
    except BaseException:
        engine.stop()
        raise
    r = settings.retrieval
    ingestion = IngestionService(
        embedder=engine.embedder,
        store=store,
        journal=journal,
        metrics=metrics,
        upload_dir=root / "uploads",
        chunk_tokens=r.chunk_tokens,
        chunk_overlap=r.chunk_overlap,
        embed_batch_size=r.embed_batch_size,
        html_main_content=r.html_main_content,
        sandbox=ParseSandbox(settings.ingest),
        max_chunks=settings.ingest.max_chunks,
    )
    sweep(root / "backups")  # archives a crash left behind hold secrets
    await reconcile(journal, store, metrics)
    resumed = await ingestion.start()
    metrics.jobs_resumed.inc(resumed)
    if resumed:
        log.warning("resumed %d ingestion jobs from the journal", resumed)
    query = QueryService(
        embedder=engine.embedder,
        store=store,
        generator=engine.generator,
        metrics=metrics,
        answers=AnswerSettings(
            prompts=dict(settings.prompts),
            default_prompt=g.prompt,
            context_tokens=r.context_tokens,
            max_tokens=g.max_tokens,
            max_tokens_ceiling=g.max_tokens_ceiling,
            evidence_sentences=g.evidence_sentences,
            support_cosine=g.support_cosine,
            support_overlap=g.support_overlap,
            retrieval=r.mode,
        ),
        deadline_s=settings.generation.deadline_s,
        min_score=settings.retrieval.min_score,
        catalog=journal,
    )
    sources = SourceService(
        journal=journal, ingestion=ingestion, metrics=metrics, configured=settings.sources,
        protected=protected_folders(root),
    )  # fmt: skip
    await sources.start()
    if isinstance(engine.generator, OpenAIGenerator):
        metrics.model_info.labels("chat").info(
            {"name": g.model, "file": "", "arch": "external", "server": public_url(g.url)}
        )
        metrics.model_context.labels("chat", g.model).set(g.n_ctx)
    for model in (plan.chat, plan.embedding) if plan.chat.loaded else (plan.embedding,):
        metrics.model_info.labels(model.role).info(
            {"name": model.info.name, "file": model.info.path.name, "arch": model.info.architecture}
        )
        metrics.model_size_bytes.labels(model.role, model.info.name).set(model.info.file_size)
        metrics.model_context.labels(model.role, model.info.name).set(model.n_ctx)
    services = Services(
        settings, plan, metrics, engine, store, journal, ingestion, query, keys, audit,
        index.collection,
    )  # fmt: skip
    services.sources = sources
    return services
