"""The per-file pipeline: parse (in the sandbox) → chunk → embed → upsert → journal.

Point ids derive from the content hash, so an upsert repeated after a crash writes the
same points: never a duplicate. A file that fails is reported in its task and leaves no
chunks. A mail's attachments join the job as files of their own. Embedding runs at
background priority, so questions are served before ingestion batches. The job queue
that calls it is `ingest/service.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec

from appliance.domain.errors import Overloaded
from appliance.domain.protocols import Embedder, VectorStore
from appliance.domain.types import ChunkRecord, Section
from appliance.ingest.chunker import chunk_sections
from appliance.ingest.formats.base import ParseError
from appliance.ingest.job_rows import document_row, file_row, source_file
from appliance.ingest.jobs import FileState, FileTask, Job
from appliance.ingest.sandbox import ParseCancelled, ParseSandbox
from appliance.observability.metrics import Metrics
from appliance.runtime.files import sha256_file
from appliance.store.journal import Journal
from appliance.wire.collections import DEFAULT_COLLECTION

log = logging.getLogger(__name__)

ID_NAMESPACE = uuid.UUID("6f1c1f9e-5f44-4a55-9a0e-6b7a2f3c2d10")


def _in(collection: str) -> str:
    """The prefix that keeps the same content apart in two collections (`default`, and
    every document from before collections, keeps the ids it had)."""
    return "" if collection == DEFAULT_COLLECTION else f"{collection}/"


def document_id_for(content_hash: str, collection: str = DEFAULT_COLLECTION) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{_in(collection)}{content_hash}"))


def point_id_for(content_hash: str, chunk_index: int, collection: str = DEFAULT_COLLECTION) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{_in(collection)}{content_hash}:{chunk_index}"))


class FileSettings(msgspec.Struct, frozen=True):
    """How each file is cut and embedded (`retrieval.*`, `ingest.max_chunks`)."""

    chunk_tokens: int
    chunk_overlap: int
    embed_batch_size: int
    max_chunks: int = 20000
    html_main_content: bool = True


@dataclass(frozen=True)
class IngestParts:
    """What the job queue and its per-file pipeline share: the journal, the metrics, the
    parser sandbox and the directory the uploads are kept in."""

    journal: Journal
    metrics: Metrics
    sandbox: ParseSandbox
    upload_dir: Path


class FilePipeline:
    """Ingests one file of a job; the caller holds the ingestion service's `index_lock`."""

    def __init__(
        self, parts: IngestParts, *, embedder: Embedder, store: VectorStore, settings: FileSettings
    ) -> None:
        self.parts = parts  # the ingestion service works with the same ones
        self._embedder = embedder
        self._store = store
        self._settings = settings

    def use_embedding(self, embedder: Embedder, store: VectorStore) -> None:
        self._embedder, self._store = embedder, store

    async def ingest_file(self, job: Job, index: int, task: FileTask) -> None:
        task.state = FileState.RUNNING
        try:
            await self._ingest(job, index, task)
        except ParseError as exc:
            self._fail(task, str(exc))
        except ParseCancelled:
            task.state = FileState.CANCELLED
        except Overloaded as exc:
            self._fail(task, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("ingesting %s failed", task.file_name)
            self._fail(task, f"internal error while ingesting: {exc}")
        if task.state is FileState.RUNNING:  # the job was cancelled between batches
            task.state = FileState.CANCELLED
        if task.state in (FileState.FAILED, FileState.CANCELLED):
            await self.discard_unstored(task)  # nothing half-stored is left behind
            await self.parts.journal.end_file(job.id, index, task.state.value, task.error)
            if task.state is FileState.FAILED:
                await self._settle_origin(task, None)
        with contextlib.suppress(FileNotFoundError):
            task.path.unlink()  # indexed, skipped or failed: the upload is not needed

    def _fail(self, task: FileTask, reason: str) -> None:
        task.state = FileState.FAILED
        task.error = reason
        self.parts.metrics.files_failed.inc()

    async def _ingest(self, job: Job, index: int, task: FileTask) -> None:
        if task.parsed and task.document_id:  # resumed or re-indexed: texts are journaled
            chunks = await self.parts.journal.chunks_of(task.document_id)
            if not chunks:
                raise ParseError("no stored text for this document: it was deleted meanwhile")
            data_hash = task.content_hash
            content_type, pages = task.content_type, task.pages
        else:
            data_hash = await asyncio.to_thread(sha256_file, task.path)
            document_id = document_id_for(data_hash, task.collection)
            existing = await self.parts.journal.get(document_id)
            if existing is not None:
                task.document_id = document_id
                task.state = FileState.SKIPPED
                task.chunks_total = task.chunks_done = existing.chunks
                task.note = f"same content already stored as {existing.file_name}"
                await self.parts.journal.end_file(
                    job.id, index, task.state.value, note=task.note, document_id=document_id
                )
                await self._settle_origin(task, document_id, data_hash)
                return
            chunks, content_type, pages = await self._parse(job, index, task, document_id)
            task.document_id = document_id
            task.content_hash = data_hash
            await self.parts.journal.file_parsed(
                job.id, index, document_id, data_hash, content_type, pages, chunks,
                extra=file_row(job.id, index, task).extra,
            )  # fmt: skip
            task.parsed = True
        document_id = task.document_id
        assert document_id is not None and data_hash is not None
        task.chunks_total = len(chunks)
        task.chunks_done = 0
        for start in range(0, len(chunks), self._settings.embed_batch_size):
            if job.cancel_requested:
                task.state = FileState.CANCELLED
                return
            batch = chunks[start : start + self._settings.embed_batch_size]
            t0 = time.perf_counter()
            vectors = await self._embedder.embed([c.text for c in batch], interactive=False)
            self.parts.metrics.stage_seconds.labels("embed_documents").observe(
                time.perf_counter() - t0
            )
            records = [
                ChunkRecord(
                    point_id=point_id_for(data_hash, start + i, task.collection),
                    document_id=document_id,
                    file_name=task.file_name,
                    chunk_index=start + i,
                    text=c.text,
                    page=c.page,
                    heading=c.heading,
                    vector=v,
                    location=c.location,
                    collection=task.collection,
                )
                for i, (c, v) in enumerate(zip(batch, vectors, strict=True))
            ]
            t0 = time.perf_counter()
            await self._store.upsert(records)
            self.parts.metrics.stage_seconds.labels("upsert").observe(time.perf_counter() - t0)
            task.chunks_done += len(batch)
            self.parts.metrics.chunks_ingested.inc(len(batch))
        origin = task.origin
        row = document_row(task, document_id, data_hash, content_type, pages, len(chunks))
        released = await self.parts.journal.file_indexed(
            job.id, index, row, source=source_file(task, document_id, data_hash),
            replaces=origin.replaces if origin else None,
        )  # fmt: skip
        await self.drop_documents(released)  # the changed file's old version, now replaced
        task.state = FileState.DONE
        self.parts.metrics.documents_ingested.inc()

    async def _parse(
        self, job: Job, index: int, task: FileTask, document_id: str
    ) -> tuple[list[Section], str, int | None]:
        t0 = time.perf_counter()
        out_dir = self.parts.upload_dir / job.id / f"attachments-{index}"
        out_dir.mkdir(exist_ok=True)
        parsed = await asyncio.to_thread(
            self.parts.sandbox.parse,
            task.path,
            task.file_name,
            html_main_content=self._settings.html_main_content,
            out_dir=out_dir,
        )
        task.metadata, task.ocr_pages = dict(parsed.metadata), list(parsed.ocr_pages)
        if parsed.ocr_pages:
            self.parts.metrics.ocr_pages.inc(len(parsed.ocr_pages))
            shown = ", ".join(map(str, parsed.ocr_pages[:20]))
            more = "…" if len(parsed.ocr_pages) > 20 else ""
            task.note = f"pages read by OCR: {shown}{more}"
        await self._add_attachments(job, task, out_dir, parsed.attachments, document_id)
        chars = sum(len(s.text) for s in parsed.sections)
        cut = self._settings
        # ~4 characters a token: refuse a document far past the limit before chunking it
        if chars / (4 * max(1, cut.chunk_tokens - cut.chunk_overlap)) > 2 * cut.max_chunks:
            raise ParseError(
                f"the document would make far more than ingest.max_chunks={cut.max_chunks} "
                f"chunks ({chars:,} characters of text)"
            )
        pieces = await asyncio.to_thread(
            chunk_sections,
            parsed.sections,
            self._embedder.count_tokens,
            cut.chunk_tokens,
            cut.chunk_overlap,
        )
        self.parts.metrics.stage_seconds.labels("parse_chunk").observe(time.perf_counter() - t0)
        if not pieces:
            raise ParseError("no text found in the file")
        if len(pieces) > cut.max_chunks:
            raise ParseError(
                f"the document makes {len(pieces):,} chunks, more than "
                f"ingest.max_chunks={cut.max_chunks}"
            )
        chunks = [
            Section(c.text, page=c.page, heading=c.heading, location=c.location) for c in pieces
        ]
        return chunks, parsed.content_type, parsed.pages

    async def _add_attachments(
        self, job: Job, task: FileTask, out_dir: Path, names: list[str], parent_id: str
    ) -> None:
        """Queue a mail's attachments (written by the parser) as files of the same job,
        each a document of its own linked to the mail."""
        tasks = []
        for name in names:
            path = out_dir / name
            if path.parent != out_dir or not path.is_file():  # the child names only its own
                continue
            tasks.append(
                FileTask(
                    file_name=name, path=path, size_bytes=path.stat().st_size,
                    parent_id=parent_id,
                )
            )  # fmt: skip
        if not tasks:
            return
        start = len(job.files)
        await self.parts.journal.add_files(
            [file_row(job.id, start + i, t) for i, t in enumerate(tasks)]
        )
        job.files.extend(tasks)  # the job's loop reaches them after this file

    async def _settle_origin(
        self, task: FileTask, document_id: str | None, data_hash: str | None = None
    ) -> None:
        """A synced file that was skipped (same content) or failed: record it, and drop
        the document its previous version had."""
        row = source_file(task, document_id, data_hash)
        if row is not None and task.origin is not None:
            await self.drop_documents(
                await self.parts.journal.settle_source_file(row, task.origin.replaces)
            )

    async def drop_documents(self, document_ids: list[str]) -> None:
        """Remove documents the journal marked `deleting` (a synced file gone or replaced);
        the caller holds `index_lock`."""
        for document_id in document_ids:  # marked `deleting` in the journal already
            await self._store.delete_by_document(document_id)
            await self.parts.journal.forget_document(document_id)

    async def discard_unstored(self, task: FileTask) -> None:
        """Remove the points of a file that did not end indexed; a stored duplicate (its
        document in the journal) is never touched."""
        if task.document_id and await self.parts.journal.get(task.document_id) is None:
            await self._store.delete_by_document(task.document_id)

    async def delete_document(self, document_id: str) -> bool:
        """Mark the document deleting, remove its chunks, then its rows. False if unknown.
        A crash in between leaves it `deleting`; the reconciler finishes the delete."""
        if not await self.parts.journal.mark_deleting(document_id):
            return False
        await self._store.delete_by_document(document_id)
        await self.parts.journal.forget_document(document_id)
        return True
