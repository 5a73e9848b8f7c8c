"""Embeddings with llama.cpp.

Ingestion texts are embedded on the engine thread, between decode steps. Search queries
go to their own thread and context when `query_thread` is set (`models.query_thread`):
they no longer wait for the decode step in flight. Otherwise they go on the engine
thread, ahead of ingestion.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from appliance.engine.cpu_share import ThreadBudget
from appliance.engine.engine_thread import LlamaEngineThread
from appliance.engine.llama_loader import load_llama
from appliance.engine.llama_params import check_common, check_encoder, context_sizes
from appliance.engine.priority import prepare_compute_thread
from appliance.runtime.worker import BACKGROUND, INTERACTIVE, ThreadWorker


def embedding_model(
    path: Path,
    *,
    n_ctx: int,
    n_threads: int,
    train_ctx: int,
    extra_buffers: bool = False,
    budget: ThreadBudget | None = None,
) -> EmbeddingModel:
    """Validate the parameters now; the model itself loads on first use."""
    check_common(path, n_ctx, n_ctx, n_threads)
    check_encoder(n_ctx, n_ctx, n_ctx, train_ctx)
    sizes = context_sizes(n_ctx, n_ctx, n_threads)
    load = functools.partial(
        load_llama, str(path), extra_buffers=extra_buffers, embedding=True, **sizes
    )
    return EmbeddingModel(
        load, budget if budget is not None else ThreadBudget(n_threads, adaptive=False)
    )


class EmbeddingModel:
    """An embedding GGUF loaded once (by `load`, on first use), handing out one context
    per owner thread, each using the threads `budget` allows.

    The first `context()` reuses the context `Llama` made; every later one adds a
    context over the same weights, so a second owner thread costs its buffers (~37 MiB
    RSS measured for MiniLM) instead of a second model (~87 MiB). Tokenization reads
    only the vocabulary and is safe from any thread.
    """

    def __init__(self, load: Callable[[], Any], budget: ThreadBudget) -> None:
        self._load = load
        self._budget = budget
        self._lock = threading.Lock()
        self._llama: Any = None
        self._first_context_taken = False

    def _loaded(self) -> Any:
        with self._lock:
            if self._llama is None:
                self._llama = self._load()
            return self._llama

    def context(self) -> EmbeddingContext:
        from llama_cpp import _internals

        llama = self._loaded()
        with self._lock:
            first = not self._first_context_taken
            self._first_context_taken = True
        if first:
            return EmbeddingContext(llama, llama._ctx, self._budget, own=False)
        # llama-cpp-python's context wrapper registers itself with the model, so
        # closing the model frees the context first, as llama.cpp requires.
        ctx = _internals.LlamaContext(
            model=llama._model, params=llama.context_params, verbose=False
        )
        return EmbeddingContext(llama, ctx, self._budget, own=True)

    def down_to_one_thread(self) -> bool:
        """Whether other processes hold every core but one (the budget gave all other
        threads up): two single-thread contexts then beat one of any size."""
        return self._budget.machine_threads() == 1 < self._budget.most

    def lent(self) -> contextlib.AbstractContextManager[None]:
        """One thread of the budget borrowed while a second context computes."""
        return self._budget.lent()

    def close(self) -> None:
        """Free the model (and the contexts registered with it) now, not in `__del__` at
        interpreter exit, where llama-cpp-python's finalizer meets torn-down modules."""
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` without [CLS]/[SEP]."""
        return len(self._loaded().tokenize(text.encode("utf-8"), add_bos=False, special=False))


# Texts up to this many tokens embed on one thread. Measured here (MiniLM, 2 cores, 10 ms
# between requests as on a server): one thread 6.6 ms vs two 11.7 ms at 8 words, 11.6 vs
# 18.0 ms at 24 words; from 48 words on, two threads win (21.8 vs 17.6 ms). Waking a second
# thread for a tiny graph costs more than it computes.
SHORT_TEXT_TOKENS = 32


class EmbeddingContext:
    """One llama.cpp embedding context; picks its thread count for each text.

    Owned by one thread (the engine's, or the query thread's). Texts are embedded one
    sequence per decode, as `Llama.embed` does for a single text; that measured faster
    per text than llama-cpp-python's multi-sequence batches.
    """

    def __init__(self, llama: Any, ctx: Any, budget: ThreadBudget, *, own: bool) -> None:
        import llama_cpp
        from llama_cpp import _internals

        if ctx.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            raise ValueError(
                "the embedding model has no pooling (one vector per token): it cannot embed "
                "a passage; convert it with a MEAN or CLS pooling type"
            )
        self._ll = llama_cpp
        self._llama = llama
        self._ctx = ctx
        self._own = own
        self._n_ctx = llama.n_ctx()
        self._n_embd = llama.n_embd()
        self._batch: Any = _internals.LlamaBatch(
            n_tokens=self._n_ctx, embd=0, n_seq_max=1, verbose=False
        )
        self._budget = budget
        self._current = budget.most

    @property
    def threads(self) -> int:
        """Threads the context used for the last text."""
        return self._current

    def close(self) -> None:
        self._batch.close()
        if self._own:
            self._ctx.close()

    def embed_one(self, text: str, *, one_thread: bool = False) -> list[float]:
        """The normalized embedding of `text`, truncated to the context."""
        tokens = self._llama.tokenize(text.encode("utf-8"))[: self._n_ctx]
        short = one_thread or len(tokens) <= SHORT_TEXT_TOKENS
        threads = 1 if short else self._budget.threads()
        if threads != self._current:
            self._ll.llama_set_n_threads(self._ctx.ctx, threads, threads)
            self._current = threads
        self._ctx.kv_cache_clear()
        self._batch.reset()
        self._batch.add_sequence(tokens, 0, True)
        self._ctx.decode(self._batch)
        vector = np.array(self._ll.llama_get_embeddings_seq(self._ctx.ctx, 0)[: self._n_embd])
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm > 0 else vector).tolist()  # type: ignore[no-any-return]


def _one_thread(text: str, ctx: EmbeddingContext) -> list[list[float]]:
    return [ctx.embed_one(text, one_thread=True)]


class LlamaEmbedder:
    """Implements `domain.protocols.Embedder`.

    With the engine thread: ingestion and an answer's evidence embed between decode
    steps there, and search queries on the query thread (if any). Without one
    (`engine=None`, the embedding switch's new model): everything runs on the embedder's
    own thread, queries first, and `stop()` closes the model it then owns."""

    def __init__(
        self,
        model: EmbeddingModel,
        engine: LlamaEngineThread | None,
        *,
        dim: int,
        query_thread: bool = False,
        query_queue_size: int = 256,
        thread_nice: int = 0,
    ) -> None:
        self._model = model
        self._engine = engine
        self._dim = dim
        self._queries: ThreadWorker[EmbeddingContext] | None = None
        if query_thread or engine is None:

            def load() -> EmbeddingContext:
                if engine is None:  # this thread embeds every ingested text too
                    prepare_compute_thread(thread_nice)
                return model.context()

            name = "query-embeddings" if engine is not None else "switched-embeddings"
            self._queries = ThreadWorker(name, load, query_queue_size)

    def start(self) -> None:
        """Start the query thread, if any (the engine thread is started by its owner)."""
        if self._queries is not None:
            self._queries.start()

    def stop(self) -> None:
        if self._queries is not None:
            self._queries.stop()
        # a model of its own is freed here, unless its thread still runs (join timed out)
        if self._engine is None and not (self._queries is not None and self._queries.alive):
            self._model.close()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def alive(self) -> bool:
        engine_alive = self._engine is None or self._engine.alive
        return engine_alive and (self._queries is None or self._queries.alive)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` without [CLS]/[SEP]."""
        return self._model.count_tokens(text)

    def queue_depth(self) -> int:
        queries = self._queries.depth() if self._queries is not None else 0
        return (self._engine.embed_depth() if self._engine is not None else 0) + queries

    async def embed(
        self, texts: Sequence[str], *, interactive: bool, urgent: bool = True
    ) -> list[list[float]]:
        batch = list(texts)
        if not batch:
            return []
        if self._queries is not None and (self._engine is None or (interactive and urgent)):
            # a search's query: beside decoding, so it never waits for the step in flight
            priority = INTERACTIVE if interactive and urgent else BACKGROUND
            return await self._queries.call(functools.partial(self._beside_engine, batch), priority)
        # Evidence for an answer (not urgent) runs whole between decode steps: on the query
        # thread it was a second llama.cpp pool beside the decode threads on the same cores
        # (16 streams with documents: the ground stage 4.4 s here vs 43 s there at nice 0).
        assert self._engine is not None
        if not interactive and self._queries is not None and self._model.down_to_one_thread():
            return await self._embed_beside(batch)
        fut = self._engine.submit_embed(batch, interactive)
        try:
            return await fut
        finally:
            fut.cancel()

    def _beside_engine(self, batch: list[str], ctx: EmbeddingContext) -> list[list[float]]:
        """Embed on the query thread; beside an engine, on the one thread borrowed from it
        (cpu_share.py: three spinning threads on two cores stalled both)."""
        if self._engine is None:
            return [ctx.embed_one(t) for t in batch]
        with self._model.lent():
            return [ctx.embed_one(t, one_thread=True) for t in batch]

    async def _embed_beside(self, batch: list[str]) -> list[list[float]]:
        """Ingestion texts on two single-thread contexts at once: every other one on the
        query thread (a search still goes first there), the rest on the engine thread.

        Used while other processes leave the engine one thread (the budget is down to
        1): one thread each never waits at a barrier for a partner the scheduler put
        behind a busy process, and two of them keep the fair share of two threads
        (ingestion beside a busy loop per core: 0.39x idle on one thread, 0.56x so)."""
        assert self._engine is not None and self._queries is not None
        queries = self._queries
        engine_fut = self._engine.submit_embed(batch[0::2], False)

        async def beside() -> list[list[float]]:
            out = []
            for text in batch[1::2]:  # one call per text: a search can cut in between
                out += await queries.call(functools.partial(_one_thread, text), BACKGROUND)
            return out

        odd_task = asyncio.ensure_future(beside())
        try:
            evens, odds = await asyncio.gather(engine_fut, odd_task)
        finally:  # one side failed or the caller cancelled: stop the other too
            engine_fut.cancel()
            odd_task.cancel()
        merged: list[list[float]] = []
        for i in range(len(batch)):
            merged.append(evens[i // 2] if i % 2 == 0 else odds[i // 2])
        return merged
