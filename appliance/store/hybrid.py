"""What both Qdrant stores share: the optional BM25 encoder, its weight in the fusion,
and the one `search` that picks the dense ranking or the fused one.

Each store writes the two queries in its own client's terms (`_dense`, `_fused`) and
its document filter (`_filter`). The query's sparse vector is encoded on the owner
thread: `lexical` is final only once the store is open (a collection made without
BM25 vectors turns it off).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.domain.types import Hit
from appliance.store.lexical import LexicalEncoder, Sparse, prefetch_limit
from appliance.store.owned import ThreadOwned
from appliance.store.payload import COLLECTION_FIELD


@dataclass(frozen=True)
class NarrowedSearch:
    """How a dense search narrowed to some collections walks the HNSW graph.

    Qdrant links each collection's points among themselves only while the collection
    is a small share of the store; a large one is searched through the main graph,
    where a query on another collection's topic stalls (recall@10 0.91 at 100k chunks,
    `bench/collections.py`). A wider beam (`ef`) and ACORN (neighbours of neighbours
    when a neighbour is filtered out) bring it to 0.97 for about 0.6 ms more."""

    ef: int = 150  # 0: Qdrant's default (the index's ef_construct)
    acorn: bool = True


def walk_params(narrowed: NarrowedSearch | None, params: Any, acorn: Any) -> Any:
    """`narrowed` in a client's terms (its `SearchParams` and `AcornSearchParams`
    classes), or None for the default walk."""
    if narrowed is None:
        return None
    return params(hnsw_ef=narrowed.ef or None, acorn=acorn(enable=True) if narrowed.acorn else None)


@dataclass(frozen=True)
class VectorQuery:
    """One search in the stores' terms: `where` is the store's filter (None: every
    document); `min_score` applies to the dense ranking only; `narrowed`: the graph
    walk when the filter names collections (None: the default walk)."""

    vector: list[float]
    top_k: int
    where: Any
    min_score: float | None
    narrowed: NarrowedSearch | None = None

    @property
    def prefetch(self) -> int:
        """Candidates each ranking gives the fusion."""
        return prefetch_limit(self.top_k)


class HybridStore(ThreadOwned, ABC):
    """Base of `EdgeStore` and `QdrantStore`: `hybrid` and `search` of
    `domain.protocols.VectorStore`."""

    def __init__(
        self,
        lexical: LexicalEncoder | None,
        lexical_weight: float,
        narrowed: NarrowedSearch | None = None,
    ) -> None:
        self.lexical = lexical
        self._weights = [1.0, lexical_weight]  # dense, BM25 in the fusion
        self._narrowed = narrowed or NarrowedSearch()

    @property
    def hybrid(self) -> bool:
        return self.lexical is not None

    async def search(
        self,
        vector: list[float],
        top_k: int,
        document_ids: Sequence[str] | None = None,
        *,
        text: str | None = None,
        min_score: float | None = None,
        collections: Collection[str] | None = None,
    ) -> list[Hit]:
        """Nearest chunks by cosine; with `text` (and a lexical encoder), the dense and
        BM25 rankings fused by reciprocal rank: scores are then RRF scores, and
        `min_score` applies to the dense ranking only (a BM25 match enters regardless)."""
        where = (
            self._filter(document_ids, collections)
            if document_ids or collections is not None
            else None
        )
        narrowed = self._narrowed if collections is not None else None
        query = VectorQuery(vector, top_k, where, min_score, narrowed)

        def job(client: Any) -> list[Hit]:
            sparse = self.lexical.query(text) if self.lexical is not None and text else None
            return self._fused(client, query, sparse) if sparse else self._dense(client, query)

        return await self._worker.call(job)

    def _filter(
        self, document_ids: Sequence[str] | None, collections: Collection[str] | None = None
    ) -> Any:
        """Only the points of these documents (None: any) in these collections (None:
        any; empty: none), in the client's terms."""
        terms = [] if document_ids is None else [("document_id", list(document_ids))]
        if collections is not None:
            terms.append((COLLECTION_FIELD, sorted(collections)))
        return self._match_all(terms)

    @staticmethod
    @abstractmethod
    def _match_all(terms: list[tuple[str, list[str]]]) -> Any:
        """Points whose `field` holds one of `values`, for every (field, values)."""

    @abstractmethod
    def _dense(self, client: Any, query: VectorQuery) -> list[Hit]:
        """The nearest chunks by cosine (on the owner thread)."""

    @abstractmethod
    def _fused(self, client: Any, query: VectorQuery, sparse: Sparse) -> list[Hit]:
        """The dense and the BM25 rankings fused by reciprocal rank (on the owner thread)."""
