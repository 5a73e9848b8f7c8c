"""An embedder on a thread and model of its own (the embedding-model switch uses it).

The engine's embedder interleaves embeddings with decoding on the engine thread and
serves queries from a query thread; both hold contexts of the model loaded at start.
When the embedding model is switched while the server runs, the new model gets this
worker instead: one thread, one context, queries before ingestion (priorities), until
the next start builds the engine with the new model.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.engine.embedder import EmbeddingContext, EmbeddingModel
from appliance.engine.priority import lower_this_thread
from appliance.engine.worker import BACKGROUND, INTERACTIVE, ThreadWorker


class WorkerEmbedder:
    """Implements `domain.protocols.Embedder`."""

    def __init__(
        self, model: EmbeddingModel, *, dim: int, thread_nice: int = 0, queue_size: int = 256
    ) -> None:
        self._model = model
        self._dim = dim

        def load() -> EmbeddingContext:
            lower_this_thread(thread_nice)
            return model.context()

        self._worker: ThreadWorker[EmbeddingContext] = ThreadWorker(
            "switched-embeddings", load, queue_size
        )

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()
        if not self._worker.alive:  # a thread still running (join timed out) keeps it
            self._model.close()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def alive(self) -> bool:
        return self._worker.alive

    def count_tokens(self, text: str) -> int:
        return self._model.count_tokens(text)

    def queue_depth(self) -> int:
        return self._worker.depth()

    async def embed(
        self, texts: Sequence[str], *, interactive: bool, urgent: bool = True
    ) -> list[list[float]]:
        batch = list(texts)
        if not batch:
            return []
        priority = INTERACTIVE if interactive and urgent else BACKGROUND
        return await self._worker.call(lambda ctx: [ctx.embed_one(t) for t in batch], priority)
