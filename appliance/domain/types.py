"""Pure data types that flow through ingestion and query (no I/O, no frameworks)."""

from __future__ import annotations

from datetime import date
from typing import Literal

import msgspec


class Section(msgspec.Struct, frozen=True):
    """A run of text from one place of a document: a page, or the body under a heading.

    `location` says where, as a reader would look for it, when a page number alone
    does not: "sheet Prices, rows 2-31", "slide 4", "notes of slide 4".
    """

    text: str
    page: int | None = None
    heading: str | None = None
    location: str | None = None


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


class ChunkRecord(msgspec.Struct, frozen=True):
    """One chunk as stored: its vector and the payload needed for citations."""

    point_id: str
    document_id: str
    file_name: str
    chunk_index: int
    text: str
    page: int | None
    heading: str | None
    vector: list[float]
    location: str | None = None


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


class Citation(msgspec.Struct, frozen=True):
    """Where a passage of an answer's context came from; `index` matches [n] in the answer."""

    index: int
    document_id: str
    file_name: str
    chunk_index: int
    score: float
    page: int | None = None
    heading: str | None = None
    snippet: str = ""
    location: str | None = None  # "sheet Prices, rows 2-31", "slide 4", ...
    title: str | None = None  # the document's metadata, where its format has them
    author: str | None = None
    file_type: str | None = None
    source: str | None = None  # the synced folder it came from; None: uploaded


class Evidence(msgspec.Struct, frozen=True):
    """A sentence of a passage that supports the answer.

    `start`/`end` are character offsets into the stored chunk text: the chunk's
    `text[start:end]` is `text` exactly.
    """

    document_id: str
    file_name: str
    chunk_index: int
    start: int
    end: int
    text: str
    score: float
    citation: int  # the [n] of the passage it is from
    page: int | None = None
    heading: str | None = None
    location: str | None = None


class Timings(msgspec.Struct, frozen=True):
    """Stage latencies of one question, in milliseconds."""

    embed_ms: float
    search_ms: float
    prompt_ms: float
    first_token_ms: float
    generate_ms: float
    total_ms: float
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float
    cached_prompt_tokens: int = 0  # prompt tokens reused from the slot's KV cache


class TokenEvent(msgspec.Struct, frozen=True, tag="token"):
    """A piece of the answer as it is generated."""

    text: str


FinishReason = Literal["stop", "length", "repetition", "cancelled"]


class DoneEvent(msgspec.Struct, frozen=True, tag="done"):
    """The end of an answer: the full text, its citations, evidence and timings.

    `grounded` is the share of answer sentences supported by what the model read
    (0..1); `unsupported` lists the answer sentences with no support.
    """

    answer: str
    citations: list[Citation]
    timings: Timings
    finish_reason: FinishReason = "stop"
    evidence: list[Evidence] = msgspec.field(default_factory=list)
    grounded: float = 0.0
    unsupported: list[str] = msgspec.field(default_factory=list)
    strategy: str = ""
    conversation_id: str | None = None  # when asked within a conversation
    searched: str | None = None  # then: the question as searched (a follow-up rewritten)


class ErrorEvent(msgspec.Struct, frozen=True, tag="error"):
    """Generation failed mid-stream; the stream ends after this event. `code` names
    the cause for programs (`shutting_down`: the server is stopping, ask again)."""

    message: str
    status: int = 500
    code: str | None = None


AnswerEvent = TokenEvent | DoneEvent | ErrorEvent


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
