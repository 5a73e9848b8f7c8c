"""The ingestion service: parse → chunk → embed → upsert, one job at a time.

Uploads are fsynced and journaled before the API answers 202; a background task
runs queued jobs in order, and on restart resumes every job the journal holds
unfinished (a file already parsed is re-embedded from its stored chunk texts).
Point ids derive from the content hash, so an upsert repeated after a crash
writes the same points: never a duplicate. A file that fails is reported in its
job and leaves no chunks; the other files go on. Embedding runs at background
priority, so questions are served before ingestion batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
import uuid
from collections import OrderedDict
from pathlib import Path

from appliance.domain.protocols import Embedder, VectorStore
from appliance.domain.types import ChunkRecord, Section
from appliance.engine.worker import Overloaded
from appliance.fileutil import sha256_file
from appliance.ingest.chunker import chunk_sections
from appliance.ingest.formats.base import ParseError
from appliance.ingest.job_rows import document_row, file_row, job_of, source_file
from appliance.ingest.jobs import FileState, FileTask, Job, JobState
from appliance.ingest.sandbox import ParseCancelled, ParseSandbox
from appliance.observability.metrics import Metrics
from appliance.store.journal import JobRow, Journal

log = logging.getLogger(__name__)

ID_NAMESPACE = uuid.UUID("6f1c1f9e-5f44-4a55-9a0e-6b7a2f3c2d10")
KEEP_FINISHED_JOBS = 200


def document_id_for(content_hash: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, content_hash))


def point_id_for(content_hash: str, chunk_index: int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{content_hash}:{chunk_index}"))


class IngestionService:
    def __init__(
        self,
        *,
        embedder: Embedder,
        store: VectorStore,
        journal: Journal,
        metrics: Metrics,
        upload_dir: Path,
        chunk_tokens: int,
        chunk_overlap: int,
        embed_batch_size: int,
        sandbox: ParseSandbox,
        max_chunks: int = 20000,
        max_queued_jobs: int = 64,
        html_main_content: bool = True,
    ) -> None:
        self._html_main_content = html_main_content
        self._sandbox = sandbox
        self._max_chunks = max_chunks
        self._embedder = embedder
        self._store = store
        self._journal = journal
        self._metrics = metrics
        self.upload_dir = upload_dir
        self._chunk_tokens = chunk_tokens
        self._chunk_overlap = chunk_overlap
        self._batch = embed_batch_size
        self._max_queued = max_queued_jobs
        self._queue: asyncio.Queue[Job] = asyncio.Queue()  # resumed jobs may exceed the limit
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._runner: asyncio.Task[None] | None = None
        # Held while one file is ingested, a document deleted, or a backup taken: each
        # sees the journal and the store agree (a file is wholly in or wholly out).
        self.quiet = asyncio.Lock()

    def use_embedding(self, embedder: Embedder, store: VectorStore) -> None:
        """Ingest with another embedding model into another collection from now on (the
        embedding switch calls it while holding `quiet`)."""
        self._embedder, self._store = embedder, store

    async def start(self) -> int:
        """Load the journal's jobs, queue the unfinished ones, start the runner.
        Returns how many jobs were resumed."""
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        resumed = 0
        cancelled = await self._journal.cancel_requested()
        for row, files in await self._journal.jobs(KEEP_FINISHED_JOBS):
            job = job_of(row, files, self.upload_dir)
            self._jobs[job.id] = job
            if not job.finished:
                job.state = JobState.QUEUED
                job.cancel_requested = job.id in cancelled  # finished as cancelled, cleaned
                self._queue.put_nowait(job)
                resumed += 1
        known = set(self._jobs)
        for leftover in self.upload_dir.iterdir():  # a crash between save and journal
            if leftover.name not in known:
                shutil.rmtree(leftover, ignore_errors=True)
        self._update_job_gauge()
        self._runner = asyncio.create_task(self._run(), name="ingestion")
        return resumed

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            self._sandbox.abort()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await asyncio.to_thread(self._sandbox.close)

    # ---- jobs -------------------------------------------------------------
    def new_job_dir(self, job: Job) -> Path:
        path = self.upload_dir / job.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def submit(self, job: Job, *, wait_for_room: bool = False) -> Job:
        """Journal and queue a job whose files are on disk (fsynced); raises Overloaded
        when the queue is full (or, with `wait_for_room`, waits). Once this returns, the
        job survives a crash."""
        while self._queue.qsize() >= self._max_queued:  # counted where it is answered
            if not wait_for_room:
                raise Overloaded("ingestion", retry_after=10)
            await asyncio.sleep(1.0)
        await asyncio.to_thread(_fsync_dir, self.upload_dir / job.id)
        await self._journal.add_job(
            JobRow(job.id, job.state.value, job.created_at, None, None),
            [file_row(job.id, i, t) for i, t in enumerate(job.files)],
        )
        self._queue.put_nowait(job)
        self._jobs[job.id] = job
        self._forget_old_jobs()
        self._update_job_gauge()
        return job

    async def reindex(self, document_id: str) -> Job | None:
        """A job that embeds and stores a document again from its journaled chunk texts
        (after an embedding-model change, or to repair the store). Its point ids are the
        same, so each upsert replaces a point in place: the document stays searchable.
        None when there is no such document."""
        doc = await self._journal.get(document_id)
        if doc is None:
            return None
        job = Job(files=[])
        task = FileTask(
            file_name=doc.file_name,
            path=self.new_job_dir(job) / "reindex",  # no upload: the text is journaled
            size_bytes=doc.size_bytes,
            parsed=True,
            content_hash=doc.content_hash,
            content_type=doc.content_type,
            pages=doc.pages,
            document_id=doc.id,
        )
        job.files.append(task)
        return await self.submit(job)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    async def cancel(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        if job is not None and not job.finished:
            job.cancel_requested = True
            if job.state is JobState.QUEUED:
                await self._finish(job, JobState.CANCELLED)
            else:  # a file may be in the parser sandbox: stop it there
                await self._journal.request_cancel(job.id)
                self._sandbox.abort()
        return job

    def _forget_old_jobs(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED_JOBS)]:
            del self._jobs[job_id]

    def _update_job_gauge(self) -> None:
        for state in JobState:
            count = sum(1 for j in self._jobs.values() if j.state is state)
            self._metrics.jobs.labels(state.value).set(count)

    async def _finish(self, job: Job, state: JobState) -> None:
        job.state = state
        job.finished_at = time.time()
        for index, task in enumerate(job.files):
            if task.state in (FileState.QUEUED, FileState.RUNNING):
                task.state = FileState.CANCELLED
                # a file resumed as parsed may have points in the store: not kept
                if task.document_id and await self._journal.get(task.document_id) is None:
                    await self._store.delete_by_document(task.document_id)
                await self._journal.end_file(job.id, index, task.state.value)
        await self._journal.set_job(job.id, state.value, job.started_at, job.finished_at)
        shutil.rmtree(self.upload_dir / job.id, ignore_errors=True)
        await self._journal.prune_jobs(KEEP_FINISHED_JOBS)
        self._update_job_gauge()

    # ---- the worker loop --------------------------------------------------
    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            if job.finished:
                continue
            job.state = JobState.RUNNING
            job.started_at = job.started_at or time.time()
            self._update_job_gauge()
            try:
                await self._journal.set_job(job.id, job.state.value, job.started_at, None)
                for index, task in enumerate(job.files):
                    if job.cancel_requested:
                        break
                    if task.state is FileState.QUEUED:  # not refused at upload, not done
                        async with self.quiet:  # no delete or backup in the middle
                            await self._ingest_file(job, index, task)
                if job.cancel_requested:
                    await self._finish(job, JobState.CANCELLED)
                elif all(t.state is FileState.FAILED for t in job.files):
                    await self._finish(job, JobState.FAILED)
                else:
                    await self._finish(job, JobState.DONE)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug or a journal failure, not a bad file
                log.exception("ingestion job %s failed", job.id)
                with contextlib.suppress(Exception):
                    await self._finish(job, JobState.FAILED)

    async def _ingest_file(self, job: Job, index: int, task: FileTask) -> None:
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
            # Leave nothing half-stored behind; a stored duplicate is never touched.
            if task.document_id and await self._journal.get(task.document_id) is None:
                await self._store.delete_by_document(task.document_id)
            await self._journal.end_file(job.id, index, task.state.value, task.error)
            if task.state is FileState.FAILED:
                await self._settle_origin(task, None)
        with contextlib.suppress(FileNotFoundError):
            task.path.unlink()  # indexed, skipped or failed: the upload is not needed

    def _fail(self, task: FileTask, reason: str) -> None:
        task.state = FileState.FAILED
        task.error = reason
        self._metrics.files_failed.inc()

    async def _ingest(self, job: Job, index: int, task: FileTask) -> None:
        if task.parsed and task.document_id:  # resumed or re-indexed: texts are journaled
            chunks = await self._journal.chunks_of(task.document_id)
            if not chunks:
                raise ParseError("no stored text for this document: it was deleted meanwhile")
            data_hash = task.content_hash
            content_type, pages = task.content_type, task.pages
        else:
            data_hash = await asyncio.to_thread(sha256_file, task.path)
            document_id = document_id_for(data_hash)
            existing = await self._journal.get(document_id)
            if existing is not None:
                task.document_id = document_id
                task.state = FileState.SKIPPED
                task.chunks_total = task.chunks_done = existing.chunks
                task.note = f"same content already stored as {existing.file_name}"
                await self._journal.end_file(
                    job.id, index, task.state.value, note=task.note, document_id=document_id
                )
                await self._settle_origin(task, document_id, data_hash)
                return
            chunks, content_type, pages = await self._parse(job, index, task, document_id)
            task.document_id = document_id
            task.content_hash = data_hash
            await self._journal.file_parsed(
                job.id, index, document_id, data_hash, content_type, pages, chunks,
                extra=file_row(job.id, index, task).extra,
            )  # fmt: skip
            task.parsed = True
        document_id = task.document_id
        assert document_id is not None and data_hash is not None
        task.chunks_total = len(chunks)
        task.chunks_done = 0
        for start in range(0, len(chunks), self._batch):
            if job.cancel_requested:
                task.state = FileState.CANCELLED
                return
            batch = chunks[start : start + self._batch]
            t0 = time.perf_counter()
            vectors = await self._embedder.embed([c.text for c in batch], interactive=False)
            self._metrics.stage_seconds.labels("embed_documents").observe(time.perf_counter() - t0)
            records = [
                ChunkRecord(
                    point_id=point_id_for(data_hash, start + i),
                    document_id=document_id,
                    file_name=task.file_name,
                    chunk_index=start + i,
                    text=c.text,
                    page=c.page,
                    heading=c.heading,
                    vector=v,
                    location=c.location,
                )
                for i, (c, v) in enumerate(zip(batch, vectors, strict=True))
            ]
            t0 = time.perf_counter()
            await self._store.upsert(records)
            self._metrics.stage_seconds.labels("upsert").observe(time.perf_counter() - t0)
            task.chunks_done += len(batch)
            self._metrics.chunks_ingested.inc(len(batch))
        origin = task.origin
        row = document_row(task, document_id, data_hash, content_type, pages, len(chunks))
        released = await self._journal.file_indexed(
            job.id, index, row, source=source_file(task, document_id, data_hash),
            replaces=origin.replaces if origin else None,
        )  # fmt: skip
        await self.drop_documents(released)  # the changed file's old version, now replaced
        task.state = FileState.DONE
        self._metrics.documents_ingested.inc()

    async def _parse(
        self, job: Job, index: int, task: FileTask, document_id: str
    ) -> tuple[list[Section], str, int | None]:
        t0 = time.perf_counter()
        out_dir = self.upload_dir / job.id / f"attachments-{index}"
        out_dir.mkdir(exist_ok=True)
        parsed = await asyncio.to_thread(
            self._sandbox.parse,
            task.path,
            task.file_name,
            html_main_content=self._html_main_content,
            out_dir=out_dir,
        )
        task.metadata, task.ocr_pages = dict(parsed.metadata), list(parsed.ocr_pages)
        if parsed.ocr_pages:
            self._metrics.ocr_pages.inc(len(parsed.ocr_pages))
            shown = ", ".join(map(str, parsed.ocr_pages[:20]))
            more = "…" if len(parsed.ocr_pages) > 20 else ""
            task.note = f"pages read by OCR: {shown}{more}"
        await self._add_attachments(job, task, out_dir, parsed.attachments, document_id)
        chars = sum(len(s.text) for s in parsed.sections)
        # ~4 characters a token: refuse a document far past the limit before chunking it
        if chars / (4 * max(1, self._chunk_tokens - self._chunk_overlap)) > 2 * self._max_chunks:
            raise ParseError(
                f"the document would make far more than ingest.max_chunks={self._max_chunks} "
                f"chunks ({chars:,} characters of text)"
            )
        pieces = await asyncio.to_thread(
            chunk_sections,
            parsed.sections,
            self._embedder.count_tokens,
            self._chunk_tokens,
            self._chunk_overlap,
        )
        self._metrics.stage_seconds.labels("parse_chunk").observe(time.perf_counter() - t0)
        if not pieces:
            raise ParseError("no text found in the file")
        if len(pieces) > self._max_chunks:
            raise ParseError(
                f"the document makes {len(pieces):,} chunks, more than "
                f"ingest.max_chunks={self._max_chunks}"
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
        await self._journal.add_files([file_row(job.id, start + i, t) for i, t in enumerate(tasks)])
        job.files.extend(tasks)  # the job's loop reaches them after this file

    async def _settle_origin(
        self, task: FileTask, document_id: str | None, data_hash: str | None = None
    ) -> None:
        """A synced file that was skipped (same content) or failed: record it, and drop
        the document its previous version had."""
        row = source_file(task, document_id, data_hash)
        if row is not None and task.origin is not None:
            await self.drop_documents(
                await self._journal.settle_source_file(row, task.origin.replaces)
            )

    async def drop_documents(self, document_ids: list[str]) -> None:
        """Remove documents the journal marked `deleting` (a synced file gone or replaced);
        the caller holds `quiet`."""
        for document_id in document_ids:  # marked `deleting` in the journal already
            await self._store.delete_by_document(document_id)
            await self._journal.forget_document(document_id)

    # ---- documents --------------------------------------------------------
    async def delete_document(self, document_id: str) -> bool:
        """Mark the document deleting, remove its chunks, then its rows. False if unknown.
        A crash in between leaves it `deleting`; the reconciler finishes the delete."""
        async with self.quiet:  # not while the same content is being ingested
            if not await self._journal.mark_deleting(document_id):
                return False
            await self._store.delete_by_document(document_id)
            await self._journal.forget_document(document_id)
        return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
