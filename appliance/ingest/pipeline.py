"""The ingestion service: parse → chunk → embed → upsert, one job at a time.

Uploads are written to disk first, so the API answers 202 at once; a background
task runs queued jobs in order. A file that fails is reported in its job and
leaves no partial chunks; the other files go on. Embedding runs at background
priority, so questions are served before ingestion batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections import OrderedDict
from pathlib import Path

from appliance.domain.protocols import Embedder, VectorStore
from appliance.domain.types import ChunkRecord
from appliance.engine.worker import Overloaded
from appliance.fileutil import sha256_file
from appliance.ingest.chunker import chunk_sections
from appliance.ingest.jobs import FileState, FileTask, Job, JobState
from appliance.ingest.parsers import ParseError, parse_file
from appliance.observability.metrics import Metrics
from appliance.store.catalog import Catalog, DocumentRow

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
        catalog: Catalog,
        metrics: Metrics,
        upload_dir: Path,
        chunk_tokens: int,
        chunk_overlap: int,
        embed_batch_size: int,
        max_queued_jobs: int = 64,
        html_main_content: bool = True,
    ) -> None:
        self._html_main_content = html_main_content
        self._embedder = embedder
        self._store = store
        self._catalog = catalog
        self._metrics = metrics
        self.upload_dir = upload_dir
        self._chunk_tokens = chunk_tokens
        self._chunk_overlap = chunk_overlap
        self._batch = embed_batch_size
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queued_jobs)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Uploads of jobs that never ran before a restart are gone with their jobs.
        shutil.rmtree(self.upload_dir, ignore_errors=True)
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self._runner = asyncio.create_task(self._run(), name="ingestion")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    # ---- jobs -------------------------------------------------------------
    def new_job_dir(self, job: Job) -> Path:
        path = self.upload_dir / job.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def submit(self, job: Job) -> Job:
        """Queue a job whose files are on disk; raises Overloaded when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._metrics.rejections.labels("ingestion").inc()
            raise Overloaded("ingestion", retry_after=10) from None
        self._jobs[job.id] = job
        self._forget_old_jobs()
        self._update_job_gauge()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def cancel(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        if job is not None and not job.finished:
            job.cancel_requested = True
            if job.state is JobState.QUEUED:
                self._finish(job, JobState.CANCELLED)
        return job

    def _forget_old_jobs(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED_JOBS)]:
            del self._jobs[job_id]

    def _update_job_gauge(self) -> None:
        for state in JobState:
            count = sum(1 for j in self._jobs.values() if j.state is state)
            self._metrics.jobs.labels(state.value).set(count)

    def _finish(self, job: Job, state: JobState) -> None:
        job.state = state
        job.finished_at = time.time()
        for task in job.files:
            if task.state in (FileState.QUEUED, FileState.RUNNING):
                task.state = FileState.CANCELLED
        shutil.rmtree(self.upload_dir / job.id, ignore_errors=True)
        self._update_job_gauge()

    # ---- the worker loop --------------------------------------------------
    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            if job.finished:
                continue
            job.state = JobState.RUNNING
            job.started_at = time.time()
            self._update_job_gauge()
            try:
                for task in job.files:
                    if job.cancel_requested:
                        break
                    await self._ingest_file(job, task)
            except Exception:  # a bug, not a bad file: fail the job, keep serving
                log.exception("ingestion job %s failed", job.id)
                self._finish(job, JobState.FAILED)
                continue
            if job.cancel_requested:
                self._finish(job, JobState.CANCELLED)
            elif all(t.state is FileState.FAILED for t in job.files):
                self._finish(job, JobState.FAILED)
            else:
                self._finish(job, JobState.DONE)

    async def _ingest_file(self, job: Job, task: FileTask) -> None:
        task.state = FileState.RUNNING
        try:
            await self._ingest(job, task)
        except ParseError as exc:
            self._fail(task, str(exc))
        except Overloaded as exc:
            self._fail(task, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("ingesting %s failed", task.file_name)
            self._fail(task, f"internal error while ingesting: {exc}")
        # Leave nothing half-stored behind; a stored duplicate is never touched.
        if (
            task.state is FileState.FAILED
            and task.document_id
            and await self._catalog.get(task.document_id) is None
        ):
            await self._store.delete_by_document(task.document_id)

    def _fail(self, task: FileTask, reason: str) -> None:
        task.state = FileState.FAILED
        task.error = reason
        self._metrics.files_failed.inc()

    async def _ingest(self, job: Job, task: FileTask) -> None:
        data_hash = await asyncio.to_thread(sha256_file, task.path)
        document_id = document_id_for(data_hash)
        existing = await self._catalog.get(document_id)
        if existing is not None:
            task.document_id = document_id
            task.state = FileState.SKIPPED
            task.chunks_total = task.chunks_done = existing.chunks
            task.note = f"same content already stored as {existing.file_name}"
            return
        t0 = time.perf_counter()
        parsed = await asyncio.to_thread(
            parse_file, task.path, task.file_name, html_main_content=self._html_main_content
        )
        chunks = await asyncio.to_thread(
            chunk_sections,
            parsed.sections,
            self._embedder.count_tokens,
            self._chunk_tokens,
            self._chunk_overlap,
        )
        self._metrics.stage_seconds.labels("parse_chunk").observe(time.perf_counter() - t0)
        if not chunks:
            raise ParseError("no text found in the file")
        task.document_id = document_id
        task.chunks_total = len(chunks)
        for start in range(0, len(chunks), self._batch):
            if job.cancel_requested:
                task.state = FileState.CANCELLED
                await self._store.delete_by_document(document_id)
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
                )
                for i, (c, v) in enumerate(zip(batch, vectors, strict=True))
            ]
            t0 = time.perf_counter()
            await self._store.upsert(records)
            self._metrics.stage_seconds.labels("upsert").observe(time.perf_counter() - t0)
            task.chunks_done += len(batch)
            self._metrics.chunks_ingested.inc(len(batch))
        await self._catalog.add(
            DocumentRow(
                id=document_id,
                file_name=task.file_name,
                content_hash=data_hash,
                content_type=parsed.content_type,
                size_bytes=task.size_bytes,
                chunks=len(chunks),
                pages=parsed.pages,
                created_at=time.time(),
            )
        )
        task.state = FileState.DONE
        self._metrics.documents_ingested.inc()

    # ---- documents --------------------------------------------------------
    async def delete_document(self, document_id: str) -> bool:
        """Remove a document's chunks, then its catalog row. False if unknown."""
        if await self._catalog.get(document_id) is None:
            return False
        await self._store.delete_by_document(document_id)
        await self._catalog.delete(document_id)
        return True
