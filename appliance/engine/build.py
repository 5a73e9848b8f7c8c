"""One way to assemble the engine: the owner thread, the embedder and the generator.

The server's build (`server/build.py`), tests and benchmarks all call `build_engine`, so
what they measure is what the server runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Self

from appliance.engine.batching import BatchedChat
from appliance.engine.cpu_share import ThreadBudget
from appliance.engine.embedder import EmbeddingModel, LlamaEmbedder, embedding_model
from appliance.engine.engine_thread import LlamaEngineThread
from appliance.engine.generator import LlamaGenerator
from appliance.engine.llama_params import EngineConfigError, check_common


@dataclass(frozen=True)
class EngineSpec:
    """Every knob of the engine; the defaults are what tests and benchmarks want."""

    chat_path: Path
    embedding_path: Path
    chat_ctx: int = 1024  # per request (slot)
    chat_batch: int = 256
    slots: int = 1
    n_threads: int = 2
    embed_ctx: int = 512
    embed_train_ctx: int = 512
    embed_dim: int = 384
    queue_size: int = 64
    thread_nice: int = 0
    adaptive_threads: bool = True
    query_thread: bool = False
    extra_buffers: bool = False
    unified_kv: bool = False
    prefix_cache: bool = True
    repetition_stop: bool = True


@dataclass
class EngineCore:
    """The owner thread and the embedding model: what every engine has."""

    spec: EngineSpec
    thread: LlamaEngineThread
    embedding: EmbeddingModel
    embedder: LlamaEmbedder

    def start(self) -> Self:
        """Start the owner threads (the models load on them)."""
        self.thread.start()
        try:
            self.embedder.start()
        except BaseException:
            self.thread.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the owner threads, then close every model explicitly (a finalizer at
        interpreter exit runs against half torn-down modules: a TypeError in a bundle)."""
        self.embedder.stop()
        self.thread.stop()
        self.close_models()

    def close_models(self) -> None:
        self.embedding.close()


@dataclass
class Engine(EngineCore):
    generator: LlamaGenerator

    def close_models(self) -> None:
        self.generator.close()
        self.embedding.close()


def build_core(
    spec: EngineSpec,
    load_chat: Callable[[], Any],
    *,
    generation_queue_size: int,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[LlamaEngineThread, EmbeddingModel, LlamaEmbedder]:
    """The embedding model, the owner thread (with `load_chat`'s model) and the embedder."""
    budget = ThreadBudget(
        spec.n_threads, adaptive=spec.adaptive_threads, thread_nice=spec.thread_nice
    )
    embedding = embedding_model(
        spec.embedding_path,
        n_ctx=spec.embed_ctx,
        n_threads=spec.n_threads,
        train_ctx=spec.embed_train_ctx,
        extra_buffers=spec.extra_buffers,
        budget=budget,
    )
    thread = LlamaEngineThread(
        load_chat=load_chat,
        load_embedder=embedding.context,
        generation_queue_size=generation_queue_size,
        thread_nice=spec.thread_nice,
        budget=budget,
        on_step=on_step,
    )
    embedder = LlamaEmbedder(
        embedding,
        thread,
        dim=spec.embed_dim,
        query_thread=spec.query_thread,
        thread_nice=spec.thread_nice,
    )
    return thread, embedding, embedder


def build_engine(spec: EngineSpec, *, on_step: Callable[[int, int], None] | None = None) -> Engine:
    """Validate the parameters (raising `EngineConfigError`) and assemble; `start()` loads."""
    check_common(spec.chat_path, spec.chat_ctx, spec.chat_batch, spec.n_threads)
    if not 1 <= spec.slots <= 256:
        raise EngineConfigError(f"generation.parallel={spec.slots} must be between 1 and 256")
    load_chat = partial(  # called on the engine thread
        BatchedChat,
        spec.chat_path,
        slots=spec.slots,
        n_ctx=spec.chat_ctx * spec.slots,  # `chat_ctx` cells per slot
        n_batch=spec.chat_batch,
        n_threads=spec.n_threads,
        extra_buffers=spec.extra_buffers,
        unified_kv=spec.unified_kv,
        prefix_cache=spec.prefix_cache,
        repetition_stop=spec.repetition_stop,
    )
    thread, embedding, embedder = build_core(
        spec, load_chat, generation_queue_size=spec.queue_size, on_step=on_step
    )
    generator = LlamaGenerator(spec.chat_path, thread, n_ctx=spec.chat_ctx)
    return Engine(spec, thread, embedding, embedder, generator)
