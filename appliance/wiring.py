"""Build every service once from the settings (the only module naming concrete adapters)."""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.config.schema import Settings
from appliance.engine.embedder import LlamaEmbedder, embedding_model
from appliance.engine.engine_thread import LlamaEngineThread
from appliance.engine.generator import LlamaGenerator, chat_loader
from appliance.ingest.pipeline import IngestionService
from appliance.models.locate import resolve_model
from appliance.models.sizing import (
    MachineInfo,
    SizingError,
    SizingPlan,
    plan_models,
    read_gguf_info,
)
from appliance.observability.metrics import Metrics
from appliance.query.pipeline import QueryService
from appliance.store.catalog import Catalog
from appliance.store.edge import EdgeStore
from appliance.store.qdrant import QdrantStore

log = logging.getLogger(__name__)


def data_dir(settings: Settings) -> Path:
    return Path(settings.storage.data_dir).expanduser().resolve()


def models_dir(settings: Settings) -> Path:
    configured = settings.models.models_dir
    return Path(configured).expanduser().resolve() if configured else data_dir(settings) / "models"


def plan_for(settings: Settings, prepare: bool = True) -> SizingPlan:
    """Resolve (and by default prepare) the model files and size them for this machine."""
    m = settings.models
    chat_path = resolve_model(m.chat_model, "chat", models_dir(settings), prepare)
    embed_path = resolve_model(m.embedding_model, "embedding", models_dir(settings), prepare)
    return plan_models(
        read_gguf_info(chat_path),
        read_gguf_info(embed_path),
        machine=MachineInfo.read(),
        budget_fraction=m.ram_budget_fraction,
        n_threads=m.n_threads,
        chat_ctx=m.chat_ctx,
        chat_batch=m.chat_batch,
        embed_batch=m.embed_batch,
        parallel=settings.generation.parallel,
        embed_contexts=2 if m.query_thread else 1,
    )


def make_store(settings: Settings, dim: int) -> QdrantStore | EdgeStore:
    """A Qdrant server by URL, else the configured embedded engine under data_dir."""
    s = settings.storage
    if s.qdrant_url:
        return QdrantStore(
            collection=s.collection, dim=dim, url=s.qdrant_url, api_key=s.qdrant_api_key
        )
    if s.embedded_engine == "edge":
        return EdgeStore(
            path=data_dir(settings) / "edge" / s.collection,
            dim=dim,
            search_threads=s.edge_search_threads,
        )
    return QdrantStore(collection=s.collection, dim=dim, path=data_dir(settings) / "qdrant")


class Services:
    """Everything the handlers use, built once. A plain class, not a dataclass, so
    Litestar's signature model passes it through instead of converting its fields."""

    def __init__(
        self,
        settings: Settings,
        plan: SizingPlan,
        metrics: Metrics,
        engine: LlamaEngineThread,
        embedder: LlamaEmbedder,
        generator: LlamaGenerator,
        store: QdrantStore | EdgeStore,
        catalog: Catalog,
        ingestion: IngestionService,
        query: QueryService,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.metrics = metrics
        self.engine = engine
        self.embedder = embedder
        self.generator = generator
        self.store = store
        self.catalog = catalog
        self.ingestion = ingestion
        self.query = query

    async def close(self) -> None:
        await self.ingestion.stop()
        self.embedder.stop()
        self.engine.stop()
        await self.store.close()
        await self.catalog.close()


async def build_services(settings: Settings, plan: SizingPlan | None = None) -> Services:
    """Load models, open the store and catalog, start the ingestion worker.

    `plan` is the sizing the caller already made (`serve` checks it before uvicorn);
    without it the models are located and sized here.
    """
    plan = plan or plan_for(settings)
    if not plan.fits:
        raise SizingError(plan.explain())
    metrics = Metrics()
    root = data_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    extra = settings.models.extra_buffers
    embedding = embedding_model(
        plan.embedding.info.path,
        n_ctx=plan.embedding.n_ctx,
        n_threads=plan.embedding.n_threads,
        train_ctx=plan.embedding.info.train_ctx,
        extra_buffers=extra,
    )
    engine = LlamaEngineThread(
        load_chat=chat_loader(
            plan.chat.info.path,
            n_ctx=plan.chat.n_ctx,
            n_batch=plan.chat.n_batch,
            n_threads=plan.chat.n_threads,
            slots=plan.chat.slots,
            extra_buffers=extra,
            unified_kv=settings.generation.unified_kv,
        ),
        load_embedder=embedding.context,
        generation_queue_size=settings.generation.queue_size,
        thread_nice=settings.models.thread_nice,
        on_step=metrics.observe_step,
    )
    embedder = LlamaEmbedder(
        embedding,
        engine,
        dim=plan.embedding.info.n_embd,
        query_thread=settings.models.query_thread,
        thread_nice=settings.models.thread_nice,
    )
    generator = LlamaGenerator(plan.chat.info.path, engine, n_ctx=plan.chat.n_ctx)
    store = make_store(settings, plan.embedding.info.n_embd)
    catalog = Catalog(root / "catalog.sqlite3")
    engine.start()
    try:
        embedder.start()
        store.start()
        try:
            catalog.start()
        except BaseException:
            await store.close()
            raise
    except BaseException:
        embedder.stop()
        engine.stop()
        raise
    r = settings.retrieval
    ingestion = IngestionService(
        embedder=embedder,
        store=store,
        catalog=catalog,
        metrics=metrics,
        upload_dir=root / "uploads",
        chunk_tokens=r.chunk_tokens,
        chunk_overlap=r.chunk_overlap,
        embed_batch_size=r.embed_batch_size,
    )
    await ingestion.start()
    query = QueryService(
        embedder=embedder,
        store=store,
        generator=generator,
        metrics=metrics,
        system_prompt=settings.generation.system_prompt,
        deadline_s=settings.generation.deadline_s,
        min_score=settings.retrieval.min_score,
    )
    for model in (plan.chat, plan.embedding):
        metrics.model_info.labels(model.role).info(
            {"name": model.info.name, "file": model.info.path.name, "arch": model.info.architecture}
        )
        metrics.model_size_bytes.labels(model.role, model.info.name).set(model.info.file_size)
        metrics.model_context.labels(model.role, model.info.name).set(model.n_ctx)
    return Services(
        settings, plan, metrics, engine, embedder, generator, store, catalog, ingestion, query
    )
