"""Ingestion jobs: their states and progress, as the API reports them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


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


@dataclass
class Job:
    files: list[FileTask]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: JobState = JobState.QUEUED
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)
