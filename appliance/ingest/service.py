"""The ingestion service: the job queue, one job at a time, and deleting documents.

Uploads are fsynced and journaled before the API answers 202; a background task
runs queued jobs in order, each file through the per-file pipeline (parse → chunk →
embed → upsert: `ingest/pipeline.py`), and on restart resumes every job the journal
holds unfinished (a file already parsed is re-embedded from its stored chunk texts).
A file that fails is reported in its job and leaves no chunks; the other files go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from appliance.domain.errors import Overloaded
from appliance.domain.protocols import Embedder, VectorStore
from appliance.ingest.job_rows import file_row, job_of
from appliance.ingest.jobs import FileState, FileTask, Job, JobState
from appliance.ingest.pipeline import FilePipeline
from appliance.ingest.uploads import UnsupportedFile, fsync_dir, refusal, save_upload
from appliance.store.journal import JobRow
from appliance.wire.collections import DEFAULT_COLLECTION

log = logging.getLogger(__name__)

KEEP_FINISHED_JOBS = 200


class IngestionService:
    """Runs each queued job's files through `files`, the per-file pipeline, with the same
    journal, metrics, parser sandbox and upload dir (`files.parts`)."""

    def __init__(self, *, files: FilePipeline, max_queued_jobs: int = 64) -> None:
        self._files = files
        self._parts = files.parts
        self._max_queued = max_queued_jobs
        self._queue: asyncio.Queue[Job] = asyncio.Queue()  # resumed jobs may exceed the limit
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._runner: asyncio.Task[None] | None = None
        # Held while one file is ingested, a document deleted, a backup copies the journal
        # and the store, or the embedding switch copies and swaps: each sees the two agree
        # (a file is wholly in or wholly out).
        self.index_lock = asyncio.Lock()

    def use_embedding(self, embedder: Embedder, store: VectorStore) -> None:
        """Ingest with another embedding model into another collection from now on (the
        embedding switch calls it while holding `index_lock`)."""
        self._files.use_embedding(embedder, store)

    async def start(self) -> int:
        """Load the journal's jobs, queue the unfinished ones, start the runner.
        Returns how many jobs were resumed."""
        self._parts.upload_dir.mkdir(parents=True, exist_ok=True)
        resumed = 0
        cancelled = await self._parts.journal.cancel_requested()
        for row, files in await self._parts.journal.jobs(KEEP_FINISHED_JOBS):
            job = job_of(row, files, self._parts.upload_dir)
            self._jobs[job.id] = job
            if not job.finished:
                job.state = JobState.QUEUED
                job.cancel_requested = job.id in cancelled  # finished as cancelled, cleaned
                self._queue.put_nowait(job)
                resumed += 1
        known = set(self._jobs)
        for leftover in self._parts.upload_dir.iterdir():  # a crash between save and journal
            if leftover.name not in known:
                shutil.rmtree(leftover, ignore_errors=True)
        self._update_job_gauge()
        self._runner = asyncio.create_task(self._run(), name="ingestion")
        return resumed

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            self._parts.sandbox.abort()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await asyncio.to_thread(self._parts.sandbox.close)

    # ---- jobs -------------------------------------------------------------
    async def receive(
        self, files: Sequence[tuple[str, IO[bytes]]], collection: str = DEFAULT_COLLECTION
    ) -> Job:
        """An upload's files (name, content): each fsynced under a server-made name and
        sniffed (a file that is not what its name says is failed at once, the others
        queued), then the job journaled and queued (`submit`), its documents bound for
        the collection of id `collection`. `UnsupportedFile` when no file of the upload
        can be ingested."""
        job = Job(files=[])
        job_dir = self.new_job_dir(job)
        try:
            for index, (name, content) in enumerate(files):
                target = job_dir / f"{index:05d}.upload"  # never the client's name
                size = await asyncio.to_thread(save_upload, content, target)
                task = FileTask(file_name=name, path=target, size_bytes=size, collection=collection)
                if (reason := await asyncio.to_thread(refusal, target, name)) is not None:
                    task.state, task.error = FileState.FAILED, reason
                    target.unlink()
                job.files.append(task)
            if all(t.state is FileState.FAILED for t in job.files):
                reasons = "; ".join(f"{t.file_name}: {t.error}" for t in job.files)
                raise UnsupportedFile(f"no file can be ingested: {reasons}")
            return await self.submit(job)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise

    def new_job_dir(self, job: Job) -> Path:
        path = self._parts.upload_dir / job.id
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
        await asyncio.to_thread(fsync_dir, self._parts.upload_dir / job.id)
        await self._parts.journal.add_job(
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
        doc = await self._parts.journal.get(document_id)
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
            collection=doc.collection,
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
                await self._parts.journal.request_cancel(job.id)
                self._parts.sandbox.abort()
        return job

    def _forget_old_jobs(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED_JOBS)]:
            del self._jobs[job_id]

    def _update_job_gauge(self) -> None:
        for state in JobState:
            count = sum(1 for j in self._jobs.values() if j.state is state)
            self._parts.metrics.jobs.labels(state.value).set(count)

    async def _finish(self, job: Job, state: JobState) -> None:
        job.state = state
        job.finished_at = time.time()
        for index, task in enumerate(job.files):
            if task.state in (FileState.QUEUED, FileState.RUNNING):
                task.state = FileState.CANCELLED
                # a file resumed as parsed may have points in the store: not kept
                await self._files.discard_unstored(task)
                await self._parts.journal.end_file(job.id, index, task.state.value)
        await self._parts.journal.set_job(job.id, state.value, job.started_at, job.finished_at)
        shutil.rmtree(self._parts.upload_dir / job.id, ignore_errors=True)
        await self._parts.journal.prune_jobs(KEEP_FINISHED_JOBS)
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
                await self._parts.journal.set_job(job.id, job.state.value, job.started_at, None)
                for index, task in enumerate(job.files):
                    if job.cancel_requested:
                        break
                    if task.state is FileState.QUEUED:  # not refused at upload, not done
                        async with self.index_lock:  # no delete or backup in the middle
                            await self._files.ingest_file(job, index, task)
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

    async def drop_documents(self, document_ids: list[str]) -> None:
        """Remove documents the journal marked `deleting` (a synced file gone or replaced);
        the caller holds `index_lock`."""
        await self._files.drop_documents(document_ids)

    # ---- documents --------------------------------------------------------
    async def delete_document(self, document_id: str) -> bool:
        """Mark the document deleting, remove its chunks, then its rows. False if unknown.
        A crash in between leaves it `deleting`; the reconciler finishes the delete."""
        async with self.index_lock:  # not while the same content is being ingested
            return await self._files.delete_document(document_id)
