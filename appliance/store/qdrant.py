"""Qdrant through qdrant-client: embedded local mode (`path`) or a server/cluster (`url`).

Both modes use the same synchronous client on one owner thread (local mode is not
thread-safe, and its async client blocks the event loop), so the event loop only
awaits futures.

With a lexical encoder, new collections get the BM25 sparse vector (`bm25`, IDF
modifier) and `search(..., text=...)` fuses dense and BM25 rankings by reciprocal rank
(`Prefetch` + `RrfQuery`), as the embedded Edge store does. A collection made without
it keeps working dense-only (logged): recreate it, or switch to a new
`storage.collection`, to get hybrid retrieval there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.domain.types import ChunkRecord, Hit
from appliance.runtime.worker import INTERACTIVE, ThreadWorker
from appliance.store.hybrid import HybridStore, NarrowedSearch, VectorQuery, walk_params
from appliance.store.lexical import (
    RRF_K,
    SPARSE_NAME,
    LexicalEncoder,
    Sparse,
    indexed_text,
)
from appliance.store.payload import COLLECTION_FIELD, hit_of, payload_of

log = logging.getLogger(__name__)


class QdrantStore(HybridStore):
    """Implements `domain.protocols.VectorStore`."""

    def __init__(
        self,
        *,
        collection: str,
        dim: int,
        path: Path | None = None,
        url: str = "",
        api_key: str = "",
        queue_size: int = 256,
        lexical: LexicalEncoder | None = None,
        lexical_weight: float = 1.0,
        narrowed: NarrowedSearch | None = None,
    ) -> None:
        if (path is None) == (not url):
            raise ValueError("QdrantStore needs exactly one of path (embedded) or url (server)")
        super().__init__(lexical, lexical_weight, narrowed)
        self.collection = collection
        self.dim = dim
        self.mode = "server" if url else "embedded"
        self._path = path
        self._url = url
        self._api_key = api_key or None
        self._worker: ThreadWorker[Any] = ThreadWorker("store", self._open, queue_size)

    def _open(self) -> Any:
        from qdrant_client import QdrantClient, models

        if self._path is not None:
            self._path.mkdir(parents=True, exist_ok=True)
            client = QdrantClient(path=str(self._path))
        else:
            client = QdrantClient(url=self._url, api_key=self._api_key, timeout=30)
        if not client.collection_exists(self.collection):
            sparse = {SPARSE_NAME: models.SparseVectorParams(modifier=models.Modifier.IDF)}
            client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.COSINE),
                sparse_vectors_config=sparse if self.lexical is not None else None,
            )
            if self.mode == "server":
                client.create_payload_index(
                    self.collection, "document_id", models.PayloadSchemaType.KEYWORD
                )
        else:
            self._ensure_collections(client)
            info = client.get_collection(self.collection)
            size = info.config.params.vectors.size  # type: ignore[union-attr]
            if size != self.dim:
                raise ValueError(
                    f"collection `{self.collection}` holds {size}-d vectors but the embedding "
                    f"model makes {self.dim}-d ones; use another storage.collection"
                )
            if self.lexical is not None and SPARSE_NAME not in (
                info.config.params.sparse_vectors or {}
            ):
                log.warning(
                    "collection `%s` has no BM25 vectors: search stays dense-only there "
                    "(a new storage.collection gets them)", self.collection,
                )  # fmt: skip
                self.lexical = None
        if self.mode == "server":  # the filter of every read: indexed (idempotent)
            client.create_payload_index(
                self.collection, COLLECTION_FIELD, models.PayloadSchemaType.KEYWORD
            )
        return client

    def _ensure_collections(self, client: Any) -> None:
        """Chunks stored before collections existed go to `default`."""
        from qdrant_client import models

        unset = models.Filter(
            must=[models.IsEmptyCondition(is_empty=models.PayloadField(key=COLLECTION_FIELD))]
        )
        if client.count(self.collection, count_filter=unset, exact=True).count:
            client.set_payload(
                self.collection, {COLLECTION_FIELD: "default"}, points=unset, wait=True
            )

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        from qdrant_client import models

        if not records:
            return

        def job(client: Any) -> None:  # on the owner thread: `lexical` is known once open
            points = []
            for r in records:
                vector: Any = r.vector
                if self.lexical is not None:
                    bm25 = self.lexical.document(indexed_text(r.text, r.heading, r.file_name))
                    vector = {"": r.vector, SPARSE_NAME: models.SparseVector(
                        indices=bm25.indices, values=bm25.values)}  # fmt: skip
                points.append(
                    models.PointStruct(id=r.point_id, vector=vector, payload=payload_of(r))
                )
            client.upsert(self.collection, points=points, wait=True)

        await self._worker.call(job, INTERACTIVE)

    @staticmethod
    def _match_all(terms: list[tuple[str, list[str]]]) -> Any:
        from qdrant_client import models

        return models.Filter(
            must=[models.FieldCondition(key=k, match=models.MatchAny(any=v)) for k, v in terms]
        )

    async def delete_by_document(self, document_id: str) -> None:
        from qdrant_client import models

        selector = models.FilterSelector(filter=self._filter([document_id]))
        await self._worker.call(
            lambda c: c.delete(self.collection, points_selector=selector, wait=True)
        )

    def _dense(self, client: Any, query: VectorQuery) -> list[Hit]:
        result = client.query_points(
            self.collection, query=query.vector, limit=query.top_k, query_filter=query.where,
            with_payload=True, score_threshold=query.min_score,
            search_params=self._params(query),
        )  # fmt: skip
        return [hit_of(p.id, p.score, p.payload) for p in result.points]

    def _fused(self, client: Any, query: VectorQuery, sparse: Sparse) -> list[Hit]:
        from qdrant_client import models

        result = client.query_points(
            self.collection,
            prefetch=[
                models.Prefetch(query=query.vector, limit=query.prefetch, filter=query.where,
                                score_threshold=query.min_score, params=self._params(query)),
                models.Prefetch(
                    query=models.SparseVector(indices=sparse.indices, values=sparse.values),
                    using=SPARSE_NAME, limit=query.prefetch, filter=query.where,
                ),
            ],
            query=models.RrfQuery(rrf=models.Rrf(k=RRF_K, weights=self._weights)),
            limit=query.top_k,
            with_payload=True,
        )  # fmt: skip
        return [hit_of(p.id, p.score, p.payload) for p in result.points]

    def _params(self, query: VectorQuery) -> Any:
        """The dense walk of a search narrowed to collections; local mode searches by brute
        force: no graph to walk (and it warns of params)."""
        from qdrant_client import models

        if self.mode != "server":
            return None
        return walk_params(query.narrowed, models.SearchParams, models.AcornSearchParams)

    async def count(self, document_id: str | None = None) -> int:
        count_filter = self._filter([document_id]) if document_id else None
        result = await self._worker.call(
            lambda c: c.count(self.collection, count_filter=count_filter, exact=True)
        )
        return int(result.count)

    async def document_counts(self) -> dict[str, int]:
        """Points per document id (a scroll over payloads: fine at appliance sizes)."""

        def job(c: Any) -> dict[str, int]:
            counts: dict[str, int] = {}
            offset = None
            while True:
                points, offset = c.scroll(
                    self.collection, limit=1024, offset=offset,
                    with_payload=["document_id"], with_vectors=False,
                )  # fmt: skip
                for point in points:
                    key = str((point.payload or {}).get("document_id"))
                    counts[key] = counts.get(key, 0) + 1
                if offset is None:
                    return counts

        return await self._worker.call(job)

    async def snapshot_to(self, target: Path) -> None:
        """Embedded mode: the collection files copied on the store's own thread. A Qdrant
        server is backed up with its own snapshots, not through the appliance."""
        if self._path is None:
            raise ValueError("the store is a Qdrant server: back it up with Qdrant's snapshot API")
        import shutil

        path = self._path
        await self._worker.call(lambda c: shutil.copytree(path, target))

    async def ping(self) -> None:
        await self._worker.call(lambda c: c.get_collection(self.collection))

    async def close(self) -> None:
        self._worker.stop()
