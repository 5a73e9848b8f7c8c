"""Qdrant through qdrant-client: embedded local mode (`path`) or a server/cluster (`url`).

Both modes use the same synchronous client on one owner thread (local mode is not
thread-safe, and its async client blocks the event loop), so the event loop only
awaits futures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.domain.types import ChunkRecord, Hit
from appliance.engine.worker import INTERACTIVE, ThreadWorker
from appliance.store.owned import ThreadOwned
from appliance.store.payload import hit_of, payload_of


class QdrantStore(ThreadOwned):
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
    ) -> None:
        if (path is None) == (not url):
            raise ValueError("QdrantStore needs exactly one of path (embedded) or url (server)")
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
            client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.COSINE),
            )
            if self.mode == "server":
                client.create_payload_index(
                    self.collection, "document_id", models.PayloadSchemaType.KEYWORD
                )
        else:
            info = client.get_collection(self.collection)
            size = info.config.params.vectors.size  # type: ignore[union-attr]
            if size != self.dim:
                raise ValueError(
                    f"collection `{self.collection}` holds {size}-d vectors but the embedding "
                    f"model makes {self.dim}-d ones; use another storage.collection"
                )
        return client

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(
                id=r.point_id,
                vector=r.vector,
                payload=payload_of(r),
            )
            for r in records
        ]
        if not points:
            return
        await self._worker.call(
            lambda c: c.upsert(self.collection, points=points, wait=True), INTERACTIVE
        )

    @staticmethod
    def _document_filter(document_ids: Sequence[str]) -> Any:
        from qdrant_client import models

        return models.Filter(
            must=[
                models.FieldCondition(
                    key="document_id", match=models.MatchAny(any=list(document_ids))
                )
            ]
        )

    async def delete_by_document(self, document_id: str) -> None:
        from qdrant_client import models

        selector = models.FilterSelector(filter=self._document_filter([document_id]))
        await self._worker.call(
            lambda c: c.delete(self.collection, points_selector=selector, wait=True)
        )

    async def search(
        self, vector: list[float], top_k: int, document_ids: Sequence[str] | None = None
    ) -> list[Hit]:
        query_filter = self._document_filter(document_ids) if document_ids else None

        def job(client: Any) -> list[Hit]:
            result = client.query_points(
                self.collection,
                query=vector,
                limit=top_k,
                query_filter=query_filter,
                with_payload=True,
            )
            return [hit_of(p.id, p.score, p.payload) for p in result.points]

        return await self._worker.call(job)

    async def count(self, document_id: str | None = None) -> int:
        count_filter = self._document_filter([document_id]) if document_id else None
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
