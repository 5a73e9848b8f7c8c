"""Synced folders on the wire: `[[sources]]` settings (also `POST /v1/sources`) and what
a scan did."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from appliance.wire.collections import DEFAULT_COLLECTION, CollectionName

SourceId = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Name of the source: lower-case letters, digits, - and _ (up to 64).",
    ),
]
Glob = Annotated[str, Meta(min_length=1, max_length=256)]


class SourceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    id: SourceId
    path: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=4096,
            description="Absolute path of the folder; read recursively, symlinks not followed.",
        ),
    ]
    include: Annotated[
        list[Glob],
        Meta(
            max_length=64,
            description=(
                "Files to take: a pattern without '/' matches the file name ('*.pdf'), one "
                "with '/' the path below the folder ('reports/*.xlsx'); '*' crosses folders."
            ),
        ),
    ] = msgspec.field(default_factory=lambda: ["*"])
    exclude: Annotated[
        list[Glob],
        Meta(
            max_length=64,
            description=(
                "Files and folders to skip, same patterns; hidden files and Office lock "
                "files ('~$*') by default."
            ),
        ),
    ] = msgspec.field(default_factory=lambda: [".*", "~$*"])
    interval_s: Annotated[
        float,
        Meta(
            ge=0,
            le=7 * 86400,
            description="Seconds between scheduled scans (and one at start); 0: no schedule.",
        ),
    ] = 0.0
    watch: Annotated[
        bool,
        Meta(description="Scan when files change (inotify), a few seconds after they settle."),
    ] = False
    role: Annotated[
        Literal["admin", "ingest"],
        Meta(description="The key role that owns it: may see and scan it (admin may always)."),
    ] = "ingest"
    collection: Annotated[
        CollectionName,
        Meta(description="The collection its documents go to; only keys that read it see it."),
    ] = DEFAULT_COLLECTION


class ScanReport(msgspec.Struct, kw_only=True):
    """What one scan did."""

    state: str = "running"  # running | done | failed
    started_at: float = 0.0
    finished_at: float | None = None
    seen: int = 0  # files that match the source's patterns
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0  # files gone since the last scan (their documents deleted)
    failed: int = 0  # files that could not be read or parsed
    job_ids: list[str] = msgspec.field(default_factory=list)
    error: str | None = None


class SourceRead(msgspec.Struct, frozen=True):
    """A synced folder: its settings, where they come from, and its last scan."""

    settings: SourceSettings
    origin: Annotated[
        Literal["config", "api"],
        Meta(description="config: a [[sources]] table (read-only here); api: POST /v1/sources."),
    ]
    last_scan: ScanReport | None = None


class SourceList(msgspec.Struct, frozen=True):
    sources: list[SourceRead]


class SourceRemoved(msgspec.Struct, frozen=True):
    id: str
    documents_deleted: int
