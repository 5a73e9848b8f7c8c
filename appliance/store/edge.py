"""Qdrant Edge (`qdrant-edge-py`): the real Qdrant engine in process — HNSW, WAL, payload indexes.

The embedded default. One owner thread holds the shard; the event loop awaits
futures. `optimize()` builds the HNSW index; it releases the GIL but the shard
serves no query while it runs (measured: 3 s for 20k new chunks, 25 s for 100k
at once), so it is debounced: it runs once writes have stopped for
`optimize_idle_s` (after an ingestion job, not between its batches). Until then
new chunks are found by scanning their small segment.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.domain.types import ChunkRecord, Hit
from appliance.engine.worker import (
    BACKGROUND,
    INTERACTIVE,
    Overloaded,
    ThreadWorker,
    WorkerStopped,
)
from appliance.store.owned import ThreadOwned
from appliance.store.payload import hit_of, payload_of

INDEXED_FIELDS = ("document_id",)
log = logging.getLogger(__name__)


class EdgeStore(ThreadOwned):
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
    ) -> None:
        self.dim = dim
        self._search_threads = search_threads
        self._path = path
        self._optimize_after_writes = optimize_after_writes
        self._optimize_idle_s = optimize_idle_s
        self._optimize_handle: asyncio.TimerHandle | None = None
        self._optimize_queued = False
        self._worker: ThreadWorker[Any] = ThreadWorker("store", self._open, queue_size)

    def _open(self) -> Any:
        import qdrant_edge as qe

        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.dim, distance=qe.Distance.Cosine),
            max_search_threads=self._search_threads or None,
        )
        if self._path.is_dir() and any(self._path.iterdir()):
            try:  # the config given is checked against the stored one
                return qe.EdgeShard.load(str(self._path), config)
            except Exception as exc:
                raise ValueError(
                    f"{self._path}: stored vectors do not match the embedding model "
                    f"({self.dim}-d): {exc}"
                ) from exc
        self._path.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(self._path), config)
        for field in INDEXED_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
        return shard

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

        points = [
            qe.Point(
                uuid.UUID(r.point_id),
                r.vector,
                payload_of(r),
            )
            for r in records
        ]
        if not points:
            return
        await self._worker.call(
            lambda s: s.update(qe.UpdateOperation.upsert_points(points)), INTERACTIVE
        )
        self._queue_optimize()

    @staticmethod
    def _filter(document_ids: Sequence[str]) -> Any:
        import qdrant_edge as qe

        return qe.Filter(
            must=[qe.FieldCondition(key="document_id", match=qe.MatchAny(any=list(document_ids)))]
        )

    async def delete_by_document(self, document_id: str) -> None:
        import qdrant_edge as qe

        selector = self._filter([document_id])
        await self._worker.call(
            lambda s: s.update(qe.UpdateOperation.delete_points_by_filter(selector))
        )
        self._queue_optimize()

    async def search(
        self, vector: list[float], top_k: int, document_ids: Sequence[str] | None = None
    ) -> list[Hit]:
        import qdrant_edge as qe

        request = qe.QueryRequest(
            limit=top_k,
            query=qe.Query.Nearest(vector),
            with_payload=True,
            filter=self._filter(document_ids) if document_ids else None,
        )

        def job(shard: Any) -> list[Hit]:
            return [hit_of(p.id, p.score, p.payload) for p in shard.query(request)]

        return await self._worker.call(job)

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
