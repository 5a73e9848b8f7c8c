"""Qdrant Edge (`qdrant-edge-py`): the real Qdrant engine in process — HNSW, WAL, payload indexes.

The embedded default. One owner thread holds the shard; the event loop awaits
futures. After writes, `optimize()` (building HNSW segments) is queued at
background priority, so queries before it scan and queries after it use the
index; it never delays a query already waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.domain.types import ChunkRecord, Hit
from appliance.engine.worker import BACKGROUND, INTERACTIVE, ThreadWorker
from appliance.store.qdrant import PAYLOAD_FIELDS

INDEXED_FIELDS = ("document_id",)


class EdgeStore:
    """Implements `domain.protocols.VectorStore` over `qdrant_edge.EdgeShard`."""

    mode = "embedded-edge"

    def __init__(
        self, *, path: Path, dim: int, queue_size: int = 256, optimize_after_writes: bool = True
    ) -> None:
        self.dim = dim
        self._path = path
        self._optimize_after_writes = optimize_after_writes
        self._optimize_queued = False
        self.optimizations = 0
        self._worker: ThreadWorker[Any] = ThreadWorker("store", self._open, queue_size)

    def _open(self) -> Any:
        import qdrant_edge as qe

        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.dim, distance=qe.Distance.Cosine)
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

    def start(self) -> None:
        self._worker.start()

    @property
    def alive(self) -> bool:
        return self._worker.alive

    def queue_depth(self) -> int:
        return self._worker.depth()

    def _queue_optimize(self) -> None:
        if not self._optimize_after_writes or self._optimize_queued:
            return
        self._optimize_queued = True

        def job(shard: Any) -> None:
            self._optimize_queued = False
            if shard.optimize():
                self.optimizations += 1

        self._worker.submit(job, BACKGROUND)

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        import qdrant_edge as qe

        points = [
            qe.Point(
                uuid.UUID(r.point_id),
                r.vector,
                {name: getattr(r, name) for name in PAYLOAD_FIELDS},
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
            return [
                Hit(
                    point_id=str(p.id),
                    score=float(p.score),
                    document_id=p.payload["document_id"],
                    file_name=p.payload["file_name"],
                    chunk_index=int(p.payload["chunk_index"]),
                    text=p.payload["text"],
                    page=p.payload.get("page"),
                    heading=p.payload.get("heading"),
                )
                for p in shard.query(request)
            ]

        return await self._worker.call(job)

    async def count(self, document_id: str | None = None) -> int:
        import qdrant_edge as qe

        request = qe.CountRequest(
            exact=True, filter=self._filter([document_id]) if document_id else None
        )
        return int(await self._worker.call(lambda s: s.count(request)))

    async def ping(self) -> None:
        await self._worker.call(lambda s: s.info())

    async def optimize(self) -> None:
        """Build the index now (tests and benchmarks; the server does it in the background)."""
        await self._worker.call(lambda s: s.optimize(), BACKGROUND)

    async def close(self) -> None:
        def flush(shard: Any) -> None:
            shard.flush()

        if self._worker.alive:
            await self._worker.call(flush)
        self._worker.stop()
