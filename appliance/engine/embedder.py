"""Embeddings with llama.cpp.

Ingestion texts are embedded on the engine thread, between decode steps. Search queries
go to their own thread and context when `query_loader` is given (`models.query_thread`):
they no longer wait for the decode step in flight. Otherwise they go on the engine
thread, ahead of ingestion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance.engine.engine_thread import LlamaEngineThread
from appliance.engine.llama_loader import load_llama
from appliance.engine.llama_params import check_common, check_encoder
from appliance.engine.priority import lower_this_thread
from appliance.engine.worker import ThreadWorker


def embedding_loader(
    path: Path, *, n_ctx: int, n_threads: int, train_ctx: int, extra_buffers: bool = False
) -> Callable[[], Any]:
    """Validate the parameters now; return the loader the engine thread calls."""
    check_common(path, n_ctx, n_ctx, n_threads)
    check_encoder(n_ctx, n_ctx, n_ctx, train_ctx)

    def load() -> EmbeddingContext:
        llama = load_llama(
            str(path),
            extra_buffers=extra_buffers,
            embedding=True,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
        )
        return EmbeddingContext(llama, n_threads)

    return load


# Texts up to this many tokens embed on one thread. Measured here (MiniLM, 2 cores, 10 ms
# between requests as on a server): one thread 6.6 ms vs two 11.7 ms at 8 words, 11.6 vs
# 18.0 ms at 24 words; from 48 words on, two threads win (21.8 vs 17.6 ms). Waking a second
# thread for a tiny graph costs more than it computes.
SHORT_TEXT_TOKENS = 32


class EmbeddingContext:
    """A llama.cpp embedding context that picks its thread count for each text.

    Owned by the engine thread; texts are embedded one sequence per call, which measured
    faster per text than llama-cpp-python's multi-sequence batches.
    """

    def __init__(self, llama: Any, n_threads: int) -> None:
        import llama_cpp

        self._set_threads = llama_cpp.llama_set_n_threads
        self._llama = llama
        self._threads = n_threads
        self._current = n_threads

    @property
    def threads(self) -> int:
        """Threads the context used for the last text."""
        return self._current

    def close(self) -> None:
        self._llama.close()

    def embed_one(self, text: str) -> list[float]:
        data = text.encode("utf-8")
        short = len(self._llama.tokenize(data, add_bos=True, special=False)) <= SHORT_TEXT_TOKENS
        threads = 1 if short else self._threads
        if threads != self._current:
            self._set_threads(self._llama.ctx, threads, threads)
            self._current = threads
        vector: list[float] = self._llama.embed([text], normalize=True, truncate=True)[0]
        return vector


class LlamaEmbedder:
    """Implements `domain.protocols.Embedder`."""

    def __init__(
        self,
        path: Path,
        engine: LlamaEngineThread,
        *,
        dim: int,
        query_loader: Callable[[], EmbeddingContext] | None = None,
        query_queue_size: int = 256,
        thread_nice: int = 0,
    ) -> None:
        self._path = path
        self._engine = engine
        self._dim = dim
        # Vocab-only model: thread-safe tokenization for the chunker, no context.
        self._vocab: Any = load_llama(str(path), vocab_only=True)
        self._queries: ThreadWorker[EmbeddingContext] | None = None
        if query_loader is not None:
            loader = query_loader

            def load() -> EmbeddingContext:
                lower_this_thread(thread_nice)
                return loader()

            self._queries = ThreadWorker("query-embeddings", load, query_queue_size)

    def start(self) -> None:
        """Start the query thread, if any (the engine thread is started by its owner)."""
        if self._queries is not None:
            self._queries.start()

    def stop(self) -> None:
        if self._queries is not None:
            self._queries.stop()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def alive(self) -> bool:
        return self._engine.alive and (self._queries is None or self._queries.alive)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` without [CLS]/[SEP]."""
        return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def queue_depth(self) -> int:
        queries = self._queries.depth() if self._queries is not None else 0
        return self._engine.embed_depth() + queries

    async def embed(self, texts: Sequence[str], *, interactive: bool) -> list[list[float]]:
        batch = list(texts)
        if not batch:
            return []
        if interactive and self._queries is not None:
            return await self._queries.call(lambda ctx: [ctx.embed_one(t) for t in batch])
        fut = self._engine.submit_embed(batch, interactive)
        try:
            return await fut
        finally:
            fut.cancel()
