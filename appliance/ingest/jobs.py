"""Ingestion jobs: their states and progress, as the API reports them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from appliance.wire.collections import DEFAULT_COLLECTION


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FileState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class FileTask:
    file_name: str
    path: Path
    size_bytes: int
    state: FileState = FileState.QUEUED
    parsed: bool = False  # its chunk texts are in the journal: resume from them
    content_hash: str | None = None
    content_type: str | None = None
    pages: int | None = None
    document_id: str | None = None
    chunks_done: int = 0
    chunks_total: int = 0
    error: str | None = None
    note: str | None = None
    # what the parser found (kept in the journal's `files.extra` until the file is indexed)
    metadata: dict[str, str] = field(default_factory=dict)
    ocr_pages: list[int] = field(default_factory=list)
    parent_id: str | None = None  # the mail this file was attached to
    origin: SourceOrigin | None = None  # the synced folder's file it is a snapshot of
    collection: str = DEFAULT_COLLECTION  # the id of the collection its document goes to


@dataclass(frozen=True)
class SourceOrigin:
    """Where a scanned file came from, and the document it had before (if it changed)."""

    source_id: str
    path: str  # relative to the source's root
    size: int
    mtime_ns: int
    scan: int
    replaces: str | None = None


@dataclass
class Job:
    files: list[FileTask]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: JobState = JobState.QUEUED
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False
    source_id: str | None = None  # a scan of this synced folder

    @property
    def collection(self) -> str:
        """The id of the collection its documents go to (one per job)."""
        return self.files[0].collection if self.files else DEFAULT_COLLECTION

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)
