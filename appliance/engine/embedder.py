"""Embeddings with llama.cpp: one thread owns the context; queries go before ingestion."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.engine.llama_loader import load_llama
from appliance.engine.llama_params import check_common, check_encoder
from appliance.engine.worker import BACKGROUND, INTERACTIVE, ThreadWorker


class LlamaEmbedder:
    """Implements `domain.protocols.Embedder` over `llama_cpp.Llama(embedding=True)`."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int,
        train_ctx: int,
        dim: int,
        queue_size: int = 256,
        extra_buffers: bool = False,
    ) -> None:
        check_common(path, n_ctx, n_ctx, n_threads)
        check_encoder(n_ctx, n_ctx, n_ctx, train_ctx)
        self._path = path
        self._extra_buffers = extra_buffers
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._dim = dim
        self._vocab: Any = None
        self._worker: ThreadWorker[Any] = ThreadWorker(
            "embedder", self._load_context, queue_size
        )

    def _load_context(self) -> Any:
        return load_llama(
            str(self._path),
            extra_buffers=self._extra_buffers,
            embedding=True,
            n_ctx=self._n_ctx,
            n_batch=self._n_ctx,
            n_ubatch=self._n_ctx,
            n_threads=self._n_threads,
            n_threads_batch=self._n_threads,
        )

    def start(self) -> None:
        # A vocab-only model: thread-safe tokenization for the chunker, no context.
        self._vocab = load_llama(str(self._path), vocab_only=True)
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._n_ctx

    @property
    def alive(self) -> bool:
        return self._worker.alive

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` without [CLS]/[SEP]."""
        return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def queue_depth(self) -> int:
        return self._worker.depth()

    async def embed(self, texts: Sequence[str], *, interactive: bool) -> list[list[float]]:
        batch = list(texts)
        if not batch:
            return []

        def job(llm: Any) -> list[list[float]]:
            vectors: list[list[float]] = llm.embed(batch, normalize=True, truncate=True)
            return vectors

        return await self._worker.call(job, INTERACTIVE if interactive else BACKGROUND)
