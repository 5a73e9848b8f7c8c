"""`build_services`: load the models, open the store and the journal, reconcile them,
start ingestion and the synced folders (the composition root: with `stores.py`, where
the adapters are chosen; only the server wing names concrete adapters)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from appliance.config.paths import data_dir, secrets_dir
from appliance.config.schema import Settings
from appliance.engine.build import Engine, EngineSpec, build_engine
from appliance.engine.cpu_share import ThreadBudget
from appliance.engine.embedder import LlamaEmbedder, embedding_model
from appliance.engine.remote.client import public_url
from appliance.engine.remote.external import (
    ExternalEngine,
    build_external_engine,
    external_generator,
)
from appliance.engine.remote.generator import OpenAIGenerator
from appliance.ingest.collections import CollectionService
from appliance.ingest.embedding_switch import EmbedderFactory
from appliance.ingest.pipeline import FilePipeline, FileSettings, IngestParts
from appliance.ingest.reconcile import reconcile
from appliance.ingest.sandbox import ParseSandbox
from appliance.ingest.service import IngestionService
from appliance.ingest.source_root import protected_folders
from appliance.ingest.sources import SourceService
from appliance.models.configured import plan_for
from appliance.models.sizing import GgufInfo, SizingError, SizingPlan
from appliance.observability.metrics import Metrics
from appliance.query.params import resolve_answer_mode
from appliance.query.pipeline import AnswerSettings, QueryService
from appliance.runtime.files import lock_data_dir, unlock_data_dir
from appliance.security.audit import AuditLog
from appliance.security.key_store import KeyStore
from appliance.server.backup import sweep
from appliance.server.services import Services
from appliance.server.stores import live_index, make_store
from appliance.store.active_index import remove_retired_edge
from appliance.store.collections import CollectionRegistry
from appliance.store.journal import Journal

log = logging.getLogger(__name__)


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
    parts = IngestParts(journal, metrics, ParseSandbox(settings.ingest), root / "uploads")
    files = FilePipeline(
        parts, embedder=engine.embedder, store=store,
        settings=FileSettings(
            chunk_tokens=r.chunk_tokens, chunk_overlap=r.chunk_overlap,
            embed_batch_size=r.embed_batch_size, max_chunks=settings.ingest.max_chunks,
            html_main_content=r.html_main_content,
        ),
    )  # fmt: skip
    ingestion = IngestionService(files=files)
    sweep(root / "backups")  # archives a crash left behind hold secrets
    await reconcile(journal, store, metrics)
    registry = CollectionRegistry(journal)
    await registry.load()
    resumed = await ingestion.start()
    metrics.jobs_resumed.inc(resumed)
    if resumed:
        log.warning("resumed %d ingestion jobs from the journal", resumed)
    mode, why = resolve_answer_mode(g, plan.chat.info.n_params, external=g.backend == "openai")
    log.info("questions naming no strategy are answered by %s (%s)", mode, why)
    query = QueryService(
        embedder=engine.embedder,
        store=store,
        generator=engine.generator,
        metrics=metrics,
        answers=AnswerSettings(settings.generation, r, dict(settings.prompts), mode),
        catalog=journal,
    )
    sources = SourceService(
        journal=journal, ingestion=ingestion, metrics=metrics, configured=settings.sources,
        protected=protected_folders(root), collections=registry,
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
    return Services(
        settings, plan, metrics, engine, store, journal, ingestion, query, keys, audit,
        index.collection, new_store=lambda dim, name: make_store(settings, dim, name),
        new_embedder=switch_embedder(settings, plan), sources=sources,
        collections=CollectionService(registry, journal, ingestion, sources),
    )  # fmt: skip


def switch_embedder(settings: Settings, plan: SizingPlan) -> EmbedderFactory:
    """How the embedding switch loads its new model: on a thread of its own, beside the
    engine, with the running embedding model's threads and the fair share of ingestion."""
    models, n_threads = settings.models, plan.embedding.n_threads

    def make(path: Path, info: GgufInfo) -> LlamaEmbedder:
        budget = ThreadBudget(
            n_threads, adaptive=models.adaptive_threads, thread_nice=models.thread_nice
        )
        model = embedding_model(
            path, n_ctx=min(info.train_ctx, 512), n_threads=n_threads,
            train_ctx=info.train_ctx, extra_buffers=models.extra_buffers, budget=budget,
        )  # fmt: skip
        return LlamaEmbedder(model, None, dim=info.n_embd, thread_nice=models.thread_nice)

    return make
