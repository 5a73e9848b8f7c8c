"""Qdrant Edge (`qdrant-edge-py`): the real Qdrant engine in process — HNSW, WAL, payload indexes.

The embedded default. One owner thread holds the shard; the event loop awaits
futures. `optimize()` builds the HNSW index; it releases the GIL but the shard
serves no query while it runs (measured: 3 s for 20k new chunks, 25 s for 100k
at once), so it is debounced: it runs once writes have stopped for
`optimize_idle_s` (after an ingestion job, not between its batches). Until then
new chunks are found by scanning their small segment.

With a lexical encoder every chunk also gets a BM25 sparse vector (`bm25`, IDF applied
by the shard), and `search(..., text=...)` fuses the dense and the BM25 rankings by
reciprocal rank in one query. A shard made before the sparse vector existed is
migrated when opened: loaded with its old config, given the sparse vector, backfilled
from the stored chunk texts, then reopened. The BM25 parameters the vectors were made
with are kept in `appliance-bm25.json` inside the shard (so backups carry them); when
the config's differ, the sparse vectors are re-encoded at start (no embedding needed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.domain.errors import Overloaded, WorkerStopped
from appliance.domain.types import ChunkRecord, Hit
from appliance.runtime.worker import BACKGROUND, INTERACTIVE, ThreadWorker
from appliance.store.hybrid import HybridStore, NarrowedSearch, VectorQuery, walk_params
from appliance.store.lexical import (
    RRF_K,
    SPARSE_NAME,
    LexicalEncoder,
    Sparse,
    indexed_text,
)
from appliance.store.payload import COLLECTION_FIELD, hit_of, payload_of

INDEXED_FIELDS = ("document_id", COLLECTION_FIELD)
BM25_MARKER = "appliance-bm25.json"  # the BM25 parameters the stored sparse vectors have
_BACKFILL_PAGE = 512
log = logging.getLogger(__name__)


def _sparse(vector: Sparse) -> Any:
    import qdrant_edge as qe

    return qe.SparseVector(vector.indices, vector.values)


class EdgeStore(HybridStore):
    """Implements `domain.protocols.VectorStore` over `qdrant_edge.EdgeShard`."""

    def __init__(
        self,
        *,
        path: Path,
        dim: int,
        queue_size: int = 256,
        optimize_after_writes: bool = True,
        optimize_idle_s: float = 2.0,
        search_threads: int = 1,
        lexical: LexicalEncoder | None = None,
        lexical_weight: float = 1.0,
        narrowed: NarrowedSearch | None = None,
    ) -> None:
        super().__init__(lexical, lexical_weight, narrowed)
        self.dim = dim
        self._search_threads = search_threads
        self._path = path
        self._optimize_after_writes = optimize_after_writes
        self._optimize_idle_s = optimize_idle_s
        self._optimize_handle: asyncio.TimerHandle | None = None
        self._optimize_queued = False
        self._worker: ThreadWorker[Any] = ThreadWorker("store", self._open, queue_size)

    def _config(self, sparse: bool) -> Any:
        import qdrant_edge as qe

        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.dim, distance=qe.Distance.Cosine),
            sparse_vectors=(
                {SPARSE_NAME: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
                if sparse else None
            ),
            max_search_threads=self._search_threads or None,
        )  # fmt: skip

    def _stored_sparse(self) -> bool:
        """Whether the shard on disk has the BM25 sparse vector (from its own config)."""
        try:
            stored = json.loads((self._path / "edge_config.json").read_text())
        except (OSError, ValueError):
            return False
        return SPARSE_NAME in (stored.get("sparse_vectors") or {})

    def _open(self) -> Any:
        import qdrant_edge as qe

        if self._path.is_dir() and any(self._path.iterdir()):
            has_sparse = self._stored_sparse()
            try:  # the config given is checked against the stored one
                shard = qe.EdgeShard.load(str(self._path), self._config(has_sparse))
            except Exception as exc:
                raise ValueError(
                    f"{self._path}: stored vectors do not match the embedding model "
                    f"({self.dim}-d): {exc}"
                ) from exc
            if self.lexical is not None:
                shard = self._ensure_sparse(shard, has_sparse)
            self._ensure_collections(shard)
            return shard
        self._path.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(self._path), self._config(self.lexical is not None))
        for field in INDEXED_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
        self._write_marker()
        return shard

    @staticmethod
    def _ensure_collections(shard: Any) -> None:
        """A shard from before collections: the payload index on `collection`, and every
        chunk without one put in `default` (one filtered update; none left: no-op)."""
        import qdrant_edge as qe

        indexed = set((shard.info().payload_schema or {}).keys())
        if COLLECTION_FIELD not in indexed:
            shard.update(
                qe.UpdateOperation.create_field_index(
                    COLLECTION_FIELD, qe.PayloadSchemaType.Keyword
                )
            )
        unset = qe.Filter(must=[qe.IsEmptyCondition(COLLECTION_FIELD)])
        if shard.count(qe.CountRequest(exact=True, filter=unset)):
            shard.update(
                qe.UpdateOperation.set_payload_by_filter(unset, {COLLECTION_FIELD: "default"})
            )
            shard.flush()

    def _write_marker(self) -> None:
        if self.lexical is not None:
            marker = self._path / BM25_MARKER
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.lexical.params.as_dict()))
            tmp.replace(marker)

    def _ensure_sparse(self, shard: Any, has_sparse: bool) -> Any:
        """Migrate a shard without BM25 vectors, or re-encode them if the BM25 parameters
        changed; returns the shard opened with the sparse vector."""
        import qdrant_edge as qe

        assert self.lexical is not None
        try:
            stored = json.loads((self._path / BM25_MARKER).read_text())
        except (OSError, ValueError):
            stored = None
        if has_sparse and stored == self.lexical.params.as_dict():
            return shard
        why = "re-encoding (BM25 parameters changed)" if has_sparse else "adding BM25 vectors"
        log.info("%s: %s to every chunk", self._path, why)
        if not has_sparse:
            shard.update(qe.UpdateOperation.create_sparse_vector(SPARSE_NAME, qe.Modifier.Idf))
        done = self._backfill(shard)
        shard.flush()
        shard.close()
        self._write_marker()
        log.info("%s: BM25 vectors written for %d chunks", self._path, done)
        return qe.EdgeShard.load(str(self._path), self._config(True))

    def _backfill(self, shard: Any) -> int:
        """BM25 vectors for every stored chunk, from the text in its payload."""
        import qdrant_edge as qe

        assert self.lexical is not None
        offset: Any = None
        done = 0
        while True:
            page, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=_BACKFILL_PAGE,
                                 with_payload=["text", "heading", "file_name"])
            )  # fmt: skip
            vectors = []
            for record in page:
                payload = record.payload or {}
                text = indexed_text(
                    str(payload.get("text") or ""), payload.get("heading"),
                    str(payload.get("file_name") or ""),
                )  # fmt: skip
                vectors.append(
                    qe.PointVectors(record.id, {SPARSE_NAME: _sparse(self.lexical.document(text))})
                )
            if vectors:
                shard.update(qe.UpdateOperation.update_vectors(vectors))
                done += len(vectors)
            if offset is None:
                return done

    def _queue_optimize(self) -> None:
        """(Re)start the idle timer; the optimisation runs when it fires."""
        if not self._optimize_after_writes:
            return
        if self._optimize_handle is not None:
            self._optimize_handle.cancel()
        loop = asyncio.get_running_loop()
        self._optimize_handle = loop.call_later(self._optimize_idle_s, self._submit_optimize)

    def _submit_optimize(self) -> None:
        self._optimize_handle = None
        if self._optimize_queued:
            return
        self._optimize_queued = True

        def job(shard: Any) -> None:
            self._optimize_queued = False
            try:
                shard.optimize()
            except Exception:  # the index is an optimisation: queries still scan
                log.exception("Qdrant Edge optimize failed")

        try:
            self._worker.submit(job, BACKGROUND)
        except (Overloaded, WorkerStopped):
            self._optimize_queued = False

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        import qdrant_edge as qe

        if not records:
            return
        lexical = self.lexical

        def job(shard: Any) -> None:
            points = []
            for r in records:
                vector: Any = r.vector
                if lexical is not None:  # encoded and checked before the shard sees it
                    text = indexed_text(r.text, r.heading, r.file_name)
                    vector = {"": r.vector, SPARSE_NAME: _sparse(lexical.document(text))}
                points.append(qe.Point(uuid.UUID(r.point_id), vector, payload_of(r)))
            shard.update(qe.UpdateOperation.upsert_points(points))

        await self._worker.call(job, INTERACTIVE)
        self._queue_optimize()

    @staticmethod
    def _match_all(terms: list[tuple[str, list[str]]]) -> Any:
        import qdrant_edge as qe

        return qe.Filter(
            must=[qe.FieldCondition(key=k, match=qe.MatchAny(any=v)) for k, v in terms]
        )

    async def delete_by_document(self, document_id: str) -> None:
        import qdrant_edge as qe

        selector = self._filter([document_id])
        await self._worker.call(
            lambda s: s.update(qe.UpdateOperation.delete_points_by_filter(selector))
        )
        self._queue_optimize()

    def _dense(self, shard: Any, query: VectorQuery) -> list[Hit]:
        import qdrant_edge as qe

        request = qe.QueryRequest(
            limit=query.top_k, query=qe.Query.Nearest(query.vector), with_payload=True,
            filter=query.where, score_threshold=query.min_score, params=_params(query),
        )  # fmt: skip
        return [hit_of(p.id, p.score, p.payload) for p in shard.query(request)]

    def _fused(self, shard: Any, query: VectorQuery, sparse: Sparse) -> list[Hit]:
        import qdrant_edge as qe

        request = qe.QueryRequest(
            limit=query.top_k,
            prefetches=[
                qe.Prefetch(limit=query.prefetch, query=qe.Query.Nearest(query.vector),
                            filter=query.where, score_threshold=query.min_score,
                            params=_params(query)),
                qe.Prefetch(limit=query.prefetch, query=qe.Query.Nearest(_sparse(sparse),
                            using=SPARSE_NAME), filter=query.where),
            ],
            query=qe.Fusion.Rrf(k=RRF_K, weights=self._weights),  # type: ignore[arg-type]  # the stub nests Rrf in Fusion
            with_payload=True,
        )  # fmt: skip
        return [hit_of(p.id, p.score, p.payload) for p in shard.query(request)]

    async def count(self, document_id: str | None = None) -> int:
        import qdrant_edge as qe

        request = qe.CountRequest(
            exact=True, filter=self._filter([document_id]) if document_id else None
        )
        return int(await self._worker.call(lambda s: s.count(request)))

    async def document_counts(self) -> dict[str, int]:
        """Points per document id, from the payload index (a facet, not a scan)."""
        import qdrant_edge as qe

        request = qe.FacetRequest(key="document_id", limit=10_000_000, exact=True)

        def job(shard: Any) -> dict[str, int]:
            return {str(h.value): int(h.count) for h in shard.facet(request).hits}

        return await self._worker.call(job)

    async def snapshot_to(self, target: Path) -> None:
        """A consistent copy of the shard directory at `target`: flushed and copied on
        the store's own thread, so no write lands halfway through."""
        import shutil

        def job(shard: Any) -> None:
            shard.flush()
            shutil.copytree(self._path, target)

        await self._worker.call(job)

    async def ping(self) -> None:
        await self._worker.call(lambda s: s.info())

    async def optimize(self) -> None:
        """Build the index now (tests and benchmarks; the server does it in the background)."""
        await self._worker.call(lambda s: s.optimize(), BACKGROUND)

    async def close(self) -> None:
        if self._optimize_handle is not None:
            self._optimize_handle.cancel()

        def flush(shard: Any) -> None:
            shard.flush()

        if self._worker.alive:
            await self._worker.call(flush)
        self._worker.stop()


def _params(query: VectorQuery) -> Any:
    import qdrant_edge as qe

    return walk_params(query.narrowed, qe.SearchParams, qe.AcornSearchParams)
