"""Search: embed the question with the live model and search its collection (dense, or
dense + BM25 fused by reciprocal rank), within the documents the filters admit."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import msgspec

from appliance.domain.protocols import DocumentCatalog, Embedder, VectorStore
from appliance.domain.types import DocumentFilter, DocumentInfo, Hit
from appliance.observability.metrics import Metrics
from appliance.query.params import NoLexicalIndex
from appliance.query.vector_cache import VectorCache


def _by_metadata(filters: DocumentFilter) -> bool:
    """Whether `filters` names documents by their metadata (collections are a condition
    of the store query, not a list of documents)."""
    return msgspec.structs.replace(filters, collections=None) != DocumentFilter()


@dataclass(frozen=True)
class SearchOutcome:
    hits: list[Hit]
    embed_ms: float
    search_ms: float
    vector: list[float] = field(default_factory=list, repr=False)
    # the model `vector` came from: the rest of the answer embeds with it too, even if the
    # embedding model is switched meanwhile (never two vector spaces in one answer)
    embedder: Embedder | None = field(default=None, repr=False)
    fused: bool = False  # hybrid: RRF scores (min_score was applied to the dense ranking)


class Searcher:
    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        metrics: Metrics,
        retrieval: str,
        catalog: DocumentCatalog | None,
        vectors: VectorCache | None = None,
    ) -> None:
        """`vectors`: the query path's embeddings, remembered (None: none remembered)."""
        self.embedder = embedder
        self.vectors = vectors if vectors is not None else VectorCache(0)
        self._store = store
        self._metrics = metrics
        self._retrieval = retrieval  # retrieval.mode: "dense" or "hybrid"
        self._catalog = catalog

    def use_embedding(self, embedder: Embedder, store: VectorStore) -> None:
        """Both at once, so a search never mixes vector spaces."""
        self.embedder, self._store = embedder, store

    async def scope(
        self, document_ids: Sequence[str] | None, filters: DocumentFilter | None
    ) -> Sequence[str] | None:
        """The documents a search may find: `document_ids` and those `filters` admit
        (None: all of them)."""
        if filters is None or self._catalog is None or not _by_metadata(filters):
            return document_ids
        admitted = await self._catalog.matching(filters)
        if document_ids is None:
            return admitted
        wanted = set(document_ids)
        return [d for d in admitted if d in wanted]

    async def describe(self, hits: Sequence[Hit]) -> dict[str, DocumentInfo]:
        if self._catalog is None or not hits:
            return {}
        return await self._catalog.describe([h.document_id for h in hits])

    async def search(
        self,
        query: str,
        top_k: int,
        document_ids: Sequence[str] | None = None,
        filters: DocumentFilter | None = None,
        *,
        retrieval: str | None = None,
        min_score: float | None = None,
        collections: Collection[str] | None = None,
    ) -> SearchOutcome:
        """`retrieval`: "dense" or "hybrid" (None: retrieval.mode); with hybrid, hits are
        ranked by reciprocal rank fusion and `min_score` applies to the dense ranking.
        `collections`: the ids the caller may read (None: all), a condition of the store
        query itself."""
        embedder, store = self.embedder, self._store  # one model and its collection
        fused = (retrieval or self._retrieval) == "hybrid"
        if fused and not store.hybrid:
            if retrieval == "hybrid":  # asked for by the request: say why not
                raise NoLexicalIndex()
            fused = False  # the config's default, on a collection without BM25 (logged)
        document_ids = await self.scope(document_ids, filters)
        if (document_ids is not None and not document_ids) or (
            collections is not None and not collections
        ):  # the filters admit no document, or the caller reads no collection
            return SearchOutcome([], 0.0, 0.0, [], embedder, fused)
        t0 = time.perf_counter()
        among = "*" if collections is None else ",".join(sorted(collections))
        [vector] = await self.vectors.embed(embedder, [query], shared=f"question:{among}")
        t1 = time.perf_counter()
        hits = await store.search(
            vector, top_k, document_ids, text=query if fused else None,
            min_score=min_score if fused else None, collections=collections,
        )  # fmt: skip
        t2 = time.perf_counter()
        self._metrics.stage_seconds.labels("embed_query").observe(t1 - t0)
        self._metrics.stage_seconds.labels("search").observe(t2 - t1)
        return SearchOutcome(hits, (t1 - t0) * 1000, (t2 - t1) * 1000, vector, embedder, fused)
