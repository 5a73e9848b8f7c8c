"""Embeddings with llama.cpp, computed on the engine thread; queries go before ingestion."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance.engine.engine_thread import LlamaEngineThread
from appliance.engine.llama_loader import load_llama
from appliance.engine.llama_params import check_common, check_encoder


def embedding_loader(
    path: Path, *, n_ctx: int, n_threads: int, train_ctx: int, extra_buffers: bool = False
) -> Callable[[], Any]:
    """Validate the parameters now; return the loader the engine thread calls."""
    check_common(path, n_ctx, n_ctx, n_threads)
    check_encoder(n_ctx, n_ctx, n_ctx, train_ctx)

    def load() -> Any:
        return load_llama(
            str(path),
            extra_buffers=extra_buffers,
            embedding=True,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
        )

    return load


class LlamaEmbedder:
    """Implements `domain.protocols.Embedder`."""

    def __init__(self, path: Path, engine: LlamaEngineThread, *, dim: int) -> None:
        self._path = path
        self._engine = engine
        self._dim = dim
        # Vocab-only model: thread-safe tokenization for the chunker, no context.
        self._vocab: Any = load_llama(str(path), vocab_only=True)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def alive(self) -> bool:
        return self._engine.alive

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` without [CLS]/[SEP]."""
        return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def queue_depth(self) -> int:
        return self._engine.embed_depth()

    async def embed(self, texts: Sequence[str], *, interactive: bool) -> list[list[float]]:
        batch = list(texts)
        if not batch:
            return []
        fut = self._engine.submit_embed(batch, interactive)
        try:
            return await fut
        finally:
            fut.cancel()
