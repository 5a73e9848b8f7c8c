"""Switch the embedding model while the appliance serves: re-embed, then swap.

Vectors of two models cannot be searched together, so the new model's vectors go to a
new collection (`<collection>__<model name>`) while search, answers and uploads go on
with the old model and collection:
1. the new model loads on a thread of its own (an embedder without the engine, made by
   the factory the composition root gives: `server/build.py`);
2. every indexed document's chunk texts (kept in the journal) are embedded and written
   to the new collection, one document at a time under the ingestion lock (`index_lock`), so
   an upload or a delete waits for at most one document;
3. under the lock once more: documents indexed meanwhile are added, documents deleted
   meanwhile are removed, then search, answers and ingestion swap to the new model and
   collection together, and `index.json` plus the model registry make the next start
   open them. The old collection is retired: the next start deletes its files.
A failure before the swap leaves everything as it was (the new collection's files are
removed at the next start). One switch per run of the server: the replaced model and
collection stay open for answers in flight until the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.config.schema import Settings
from appliance.domain.errors import ApplianceError
from appliance.domain.protocols import Embedder
from appliance.domain.types import ChunkRecord
from appliance.ingest.pipeline import point_id_for
from appliance.ingest.service import IngestionService
from appliance.models.sizing import GgufInfo, read_gguf_info
from appliance.store.active_index import ActiveIndex, read_active_index, write_active_index
from appliance.store.journal import DocumentRow, Journal

log = logging.getLogger(__name__)
BATCH = 16


class OwnEmbedder(Embedder, Protocol):
    """An embedder on a thread of its own: started and stopped by the switch."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


# (model file, its header) -> the embedder, not started; its parameters are the server's
EmbedderFactory = Callable[[Path, GgufInfo], OwnEmbedder]
StoreFactory = Callable[[int, str], Any]  # (dim, collection) -> a store, not started


class SwitchHost(Protocol):
    """What the switch reads and swaps of the running server (the services container)."""

    settings: Settings
    journal: Journal
    ingestion: IngestionService  # its `index_lock`
    data_dir: Path
    collection: str  # the live one

    def swap_embedding(self, embedder: Any, store: Any, collection: str, path: Path) -> None: ...


class SwitchRefused(ApplianceError):
    status = 409
    code = "switch_refused"


@dataclass
class SwitchStatus:
    state: str = "idle"  # idle | running | done | failed
    model: str = ""
    collection: str = ""
    documents_total: int = 0
    documents_done: int = 0
    chunks_done: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None


class EmbeddingSwitch:
    """Runs at most one switch at a time; `status` is what the API reports."""

    def __init__(
        self, services: SwitchHost, make_store: StoreFactory, make_embedder: EmbedderFactory
    ) -> None:
        self._services = services
        self._make_store = make_store
        self._make_embedder = make_embedder
        self.status = SwitchStatus()
        self._task: asyncio.Task[None] | None = None
        self._sha256 = ""

    def start(
        self, name: str, path: Path, sha256: str, activate: Callable[[], Callable[[], None]]
    ) -> SwitchStatus:
        """Begin switching to registered model `name` (file `path`, its `sha256`).
        `activate` records it as the active embedding model at the swap and returns
        what undoes that."""
        if self._task is not None and not self._task.done():
            raise SwitchRefused(f"a switch to {self.status.model} is running")
        services = self._services
        storage = services.settings.storage
        if not storage.qdrant_url and storage.embedded_engine != "edge":
            raise SwitchRefused(
                "the embedded qdrant-client store keeps one locked folder for every "
                "collection: switch with storage.embedded_engine = 'edge' or a Qdrant server"
            )
        if services.settings.models.embedding_model != "default":
            raise SwitchRefused(
                "models.embedding_model names a file in the config, which would win over the "
                'switch at the next start: set it to "default" first'
            )
        if self.status.state == "done":
            raise SwitchRefused(
                f"the switch to {self.status.model} is done; restart the appliance before "
                "another (the replaced model and collection stay open until then)"
            )
        collection = f"{storage.collection}__{name}"
        if collection == services.collection:
            raise SwitchRefused(f"{name} is already the embedding model")
        self._sha256 = sha256
        self.status = SwitchStatus(
            state="running", model=name, collection=collection, started_at=time.time()
        )
        self._task = asyncio.create_task(self._run(name, path, collection, activate))
        return self.status

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(
        self, name: str, path: Path, collection: str, activate: Callable[[], Callable[[], None]]
    ) -> None:
        opened: list[Callable[[], Awaitable[None]]] = []  # closes if the swap does not happen
        swapped = False
        try:
            embedder, store = await self._open(path, collection, opened)
            await self._copy_all(embedder, store)
            await self._swap(name, path, embedder, store, collection, activate)
            swapped = True
            self.status.state = "done"
            log.info("embedding model switched to %s (collection %s)", name, collection)
        except asyncio.CancelledError:
            self.status.state, self.status.error = "failed", "cancelled at shutdown"
            raise
        except Exception as exc:
            log.exception("embedding model switch to %s failed", name)
            self.status.state, self.status.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.status.finished_at = time.time()
            if not swapped:
                for close in reversed(opened):
                    await close()

    async def _open(
        self, path: Path, collection: str, opened: list[Callable[[], Awaitable[None]]]
    ) -> tuple[OwnEmbedder, Any]:
        info = await asyncio.to_thread(read_gguf_info, path)
        embedder = self._make_embedder(path, info)
        # before it starts: a cancel mid-load still stops it
        opened.append(lambda: asyncio.to_thread(embedder.stop))
        await asyncio.to_thread(embedder.start)
        store = self._make_store(info.n_embd, collection)
        opened.append(store.close)
        await asyncio.to_thread(store.start)
        for document_id in await store.document_counts():  # a failed earlier try
            await store.delete_by_document(document_id)
        return embedder, store

    async def _copy(self, doc: DocumentRow, embedder: OwnEmbedder, store: Any) -> None:
        chunks = await self._services.journal.chunks_of(doc.id)
        for start in range(0, len(chunks), BATCH):
            batch = chunks[start : start + BATCH]
            vectors = await embedder.embed([c.text for c in batch], interactive=False)
            await store.upsert([
                ChunkRecord(
                    point_id=point_id_for(doc.content_hash, start + i, doc.collection),
                    document_id=doc.id, file_name=doc.file_name, chunk_index=start + i,
                    text=c.text, page=c.page, heading=c.heading, vector=v,
                    location=c.location, collection=doc.collection,
                )
                for i, (c, v) in enumerate(zip(batch, vectors, strict=True))
            ])  # fmt: skip
            self.status.chunks_done += len(batch)
        self.status.documents_done += 1

    async def _copy_all(self, embedder: OwnEmbedder, store: Any) -> None:
        services = self._services
        documents = await services.journal.documents()
        self.status.documents_total = len(documents)
        for doc in documents:
            async with services.ingestion.index_lock:  # an upload or delete waits one document
                if await services.journal.get(doc.id) is not None:
                    await self._copy(doc, embedder, store)

    async def _swap(
        self, name: str, path: Path, embedder: OwnEmbedder, store: Any, collection: str,
        activate: Callable[[], Callable[[], None]],
    ) -> None:  # fmt: skip
        services = self._services
        async with services.ingestion.index_lock:
            indexed = {doc.id: doc for doc in await services.journal.documents()}
            copied = set(await store.document_counts())
            for document_id in copied - set(indexed):  # deleted meanwhile
                await store.delete_by_document(document_id)
            for document_id in set(indexed) - copied:  # indexed meanwhile
                self.status.documents_total += 1
                await self._copy(indexed[document_id], embedder, store)
            root = services.data_dir
            before = read_active_index(root, services.settings.storage.collection)
            undo = activate()  # the registry first: a refusal there changes nothing
            try:
                write_active_index(root, ActiveIndex(
                    collection, name, [*before.retired, services.collection], self._sha256,
                ))  # fmt: skip
            except BaseException:
                undo()
                raise
            services.swap_embedding(embedder, store, collection, path)
