"""What a search looks for and finds: the metadata filter, the hits and the documents
they come from."""

from __future__ import annotations

from datetime import date

import msgspec


class DocumentFilter(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which documents a search may find, by their metadata; every condition given must
    hold. Text conditions match case-insensitively, anywhere in the field."""

    file_types: list[str] | None = None  # extensions without the dot: ["pdf", "xlsx"]
    sources: list[str] | None = None  # source ids; "upload" for uploaded documents
    title: str | None = None  # in the title or the file name
    author: str | None = None
    created_after: date | None = None  # the date the document itself records
    created_before: date | None = None
    ingested_after: date | None = None  # the day it was ingested (UTC)
    ingested_before: date | None = None


class DocumentInfo(msgspec.Struct, frozen=True):
    """What a citation shows of its document besides the file name."""

    title: str | None = None
    author: str | None = None
    file_type: str | None = None
    source: str | None = None  # the synced folder it came from; None: uploaded


class Hit(msgspec.Struct, frozen=True):
    """A chunk found by search, with its similarity score."""

    point_id: str
    score: float
    document_id: str
    file_name: str
    chunk_index: int
    text: str
    page: int | None = None
    heading: str | None = None
    location: str | None = None
