"""Jobs to and from the journal's rows: what a restart needs to resume a job."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import msgspec

from appliance.ingest.jobs import FileState, FileTask, Job, JobState, SourceOrigin
from appliance.ingest.reader import file_type
from appliance.store.journal import DocumentRow, FileRow, JobRow
from appliance.store.journal_sources import SourceFile
from appliance.wire.collections import DEFAULT_COLLECTION

_COLUMNS = frozenset({"title", "author", "created", "modified"})  # own columns, not `meta`


def _extra(task: FileTask) -> str:
    extra: dict[str, Any] = {}
    if task.metadata:
        extra["metadata"] = task.metadata
    if task.ocr_pages:
        extra["ocr_pages"] = task.ocr_pages
    if task.parent_id:
        extra["parent_id"] = task.parent_id
    if task.origin is not None:
        extra["origin"] = dataclasses.asdict(task.origin)
    if task.collection != DEFAULT_COLLECTION:
        extra["collection"] = task.collection
    return msgspec.json.encode(extra).decode()


def _relative(job_id: str, path: Path) -> Path:
    """`path` from its job's directory on (relative: a restore may move the uploads)."""
    parts = path.parts
    if job_id in parts:
        return Path(*parts[parts.index(job_id) :])
    return Path(path.parent.name) / path.name


def file_row(job_id: str, index: int, task: FileTask) -> FileRow:
    ended = task.state is not FileState.QUEUED
    stage = "ended" if ended else "parsed" if task.parsed else "received"
    return FileRow(
        job_id=job_id, idx=index, file_name=task.file_name,
        upload_path=str(_relative(job_id, task.path)),
        size_bytes=task.size_bytes, stage=stage, state=task.state.value,
        document_id=task.document_id, content_hash=task.content_hash,
        content_type=task.content_type, pages=task.pages, chunks_total=task.chunks_total,
        error=task.error, note=task.note, extra=_extra(task),
    )  # fmt: skip


def job_of(row: JobRow, files: list[FileRow], upload_dir: Path) -> Job:
    """The live job for a journaled one: files not ended are queued again."""
    tasks = []
    for f in files:
        path = upload_dir / f.upload_path  # an absolute path (older journals) stays as is
        task = FileTask(file_name=f.file_name, path=path, size_bytes=f.size_bytes)
        task.document_id, task.error, task.note = f.document_id, f.error, f.note
        task.chunks_total = f.chunks_total
        task.content_hash, task.content_type, task.pages = f.content_hash, f.content_type, f.pages
        extra = msgspec.json.decode(f.extra or "{}")
        task.metadata = dict(extra.get("metadata", {}))
        task.ocr_pages = list(extra.get("ocr_pages", []))
        task.parent_id = extra.get("parent_id")
        task.collection = str(extra.get("collection", DEFAULT_COLLECTION))
        if "origin" in extra:
            task.origin = msgspec.convert(extra["origin"], SourceOrigin)
        if f.stage in ("received", "parsed"):
            task.state = FileState.QUEUED
            task.parsed = f.stage == "parsed"
        else:
            task.state = FileState(f.state)
            task.chunks_done = f.chunks_total if f.state == "done" else 0
        tasks.append(task)
    job = Job(files=tasks, id=row.id, state=JobState(row.state), created_at=row.created_at)
    job.started_at, job.finished_at = row.started_at, row.finished_at
    job.source_id = next((t.origin.source_id for t in tasks if t.origin), None)
    return job


def document_row(
    task: FileTask, document_id: str, data_hash: str, content_type: str | None,
    pages: int | None, chunks: int,
) -> DocumentRow:  # fmt: skip
    """The journal's row for a file just indexed, with the metadata its parser found."""
    meta = {k: v for k, v in task.metadata.items() if k not in _COLUMNS}
    if task.ocr_pages:
        meta["ocr_pages"] = ",".join(map(str, task.ocr_pages))
    origin = task.origin
    return DocumentRow(
        id=document_id, file_name=task.file_name, content_hash=data_hash,
        content_type=content_type or "application/octet-stream", size_bytes=task.size_bytes,
        chunks=chunks, pages=pages, created_at=time.time(), file_type=file_type(task.file_name),
        title=task.metadata.get("title"), author=task.metadata.get("author"),
        created=task.metadata.get("created"), modified=task.metadata.get("modified"),
        source_id=origin.source_id if origin else None, parent_id=task.parent_id,
        meta=msgspec.json.encode(meta).decode(), collection=task.collection,
    )  # fmt: skip


def source_file(
    task: FileTask, document_id: str | None, data_hash: str | None
) -> SourceFile | None:
    """The synced folder's record of this file (None for an upload)."""
    origin = task.origin
    if origin is None:
        return None
    return SourceFile(
        source_id=origin.source_id, path=origin.path, size=origin.size,
        mtime_ns=origin.mtime_ns, content_hash=data_hash, document_id=document_id,
        seen=origin.scan, error=task.error if document_id is None else None,
    )  # fmt: skip
