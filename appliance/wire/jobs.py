"""`/v1/jobs`: an upload's or a scan's ingestion job and the progress of each file."""

from __future__ import annotations

from typing import Literal

import msgspec


class JobCreated(msgspec.Struct, frozen=True):
    job_id: str
    files: int
    status_url: str


class FileProgress(msgspec.Struct, frozen=True):
    file_name: str
    state: Literal["queued", "running", "done", "skipped", "failed", "cancelled"]
    size_bytes: int
    chunks_done: int
    chunks_total: int
    document_id: str | None = None
    error: str | None = None
    note: str | None = None


class JobRead(msgspec.Struct, frozen=True):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    created_at: float
    started_at: float | None
    finished_at: float | None
    files_total: int
    files_done: int
    files_failed: int
    chunks_done: int
    chunks_total: int
    files: list[FileProgress]
    collection: str = "default"  # where its documents go
