"""Wire types of the HTTP API, shared with the CLI and the TUI (msgspec only, no Litestar)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from appliance.wire.answers import Citation, Evidence, FinishReason, Timings
from appliance.wire.search import DocumentFilter, DocumentInfo, Hit
from appliance.wire.sources import ScanReport, SourceSettings

Query = Annotated[str, Meta(min_length=1, max_length=4000, description="The question or query.")]
DocumentIds = Annotated[
    list[str],
    Meta(max_length=1000, description="Only search these documents (unknown ids match none)."),
]


Filters = Annotated[
    DocumentFilter,
    Meta(
        description=(
            "Only documents whose metadata match: file types (extensions), sources "
            '("upload" for uploaded files), title or author (case-insensitive, anywhere), '
            "the document's own date and the day it was ingested (YYYY-MM-DD, inclusive)."
        )
    ),
]


Retrieval = Annotated[
    Literal["dense", "hybrid"],
    Meta(
        description=(
            "dense: nearest chunks by cosine; hybrid: dense and BM25 (exact words, codes, "
            "part numbers) rankings fused by reciprocal rank, whose scores are then RRF "
            "scores (~0.01-0.03), not cosines. Default: retrieval.mode."
        )
    ),
]


ConversationId = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description=(
            "Ask within a conversation (a new id starts one; a UUID is a good choice): a "
            "follow-up question is searched together with the question before it. The "
            "history is kept per API key: GET /v1/conversations."
        ),
    ),
]


class SearchRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    query: Query
    top_k: Annotated[int, Meta(ge=1, le=1000, description="How many chunks to return.")] | None = (
        None
    )
    document_ids: DocumentIds | None = None
    filters: Filters | None = None
    retrieval: Retrieval | None = None


class SearchResponse(msgspec.Struct, frozen=True):
    hits: list[Hit]
    embed_ms: float
    search_ms: float
    documents: Annotated[
        dict[str, DocumentInfo],
        Meta(description="Title, author, file type and source of each document hit, by id."),
    ] = msgspec.field(default_factory=dict)


Question = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=1000,
        description=(
            "The question. Refused (400) when, in the chat model's tokens, it leaves no "
            "room for an answer in the context."
        ),
    ),
]


class AskRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    query: Question
    top_k: Annotated[int, Meta(ge=1, le=50, description="Passages given to the model.")] | None = (
        None
    )
    max_tokens: (
        Annotated[
            int,
            Meta(ge=1, le=8192, description="Answer length cap; clamped to the server ceiling."),
        ]
        | None
    ) = None
    temperature: (
        Annotated[float, Meta(ge=0.0, le=2.0, description="Sampling temperature.")] | None
    ) = None
    document_ids: DocumentIds | None = None
    filters: Filters | None = None
    retrieval: Retrieval | None = None
    conversation_id: ConversationId | None = None
    strategy: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=64,
                description="A prompt strategy of the config ([prompts.*]); default: "
                "generation.prompt.",
            ),
        ]
        | None
    ) = None


class AskResponse(msgspec.Struct, frozen=True):
    answer: str
    citations: list[Citation]
    timings: Timings
    finish_reason: FinishReason
    evidence: Annotated[
        list[Evidence],
        Meta(
            description="Sentences of the passages that support the answer; `start`/`end` "
            "cut `text` out of the chunk's stored text."
        ),
    ]
    grounded: Annotated[
        float,
        Meta(
            ge=0.0,
            le=1.0,
            description="Share of the answer's sentences supported by the passages read.",
        ),
    ]
    unsupported: Annotated[
        list[str], Meta(description="Answer sentences with no support in the passages.")
    ]
    strategy: str
    conversation_id: str | None = None
    searched: Annotated[
        str | None,
        Meta(description="In a conversation: the question as searched (a follow-up joined "
             "to the question before it)."),
    ] = None  # fmt: skip


class ConversationTurn(msgspec.Struct, frozen=True):
    turn: int
    question: str
    searched: str
    answer: str
    files: list[str]
    created_at: float


class ConversationRead(msgspec.Struct, frozen=True):
    id: str
    key_id: str
    title: str
    created_at: float
    updated_at: float
    turns: int
    history: list[ConversationTurn] | None = None


class ConversationList(msgspec.Struct, frozen=True):
    conversations: list[ConversationRead]


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


class DocumentRead(msgspec.Struct, frozen=True):
    id: str
    file_name: str
    content_type: str
    size_bytes: int
    chunks: int
    pages: int | None
    created_at: float
    file_type: str = ""
    title: str | None = None
    author: str | None = None
    created: Annotated[str | None, Meta(description="The date the document records.")] = None
    modified: str | None = None
    source: Annotated[
        str | None, Meta(description="The synced folder it came from; null: uploaded.")
    ] = None
    parent_id: Annotated[
        str | None, Meta(description="The mail this document was attached to.")
    ] = None
    meta: Annotated[
        dict[str, str],
        Meta(description="What else the format records: mail headers, pages read by OCR."),
    ] = msgspec.field(default_factory=dict)


class DocumentList(msgspec.Struct, frozen=True):
    documents: list[DocumentRead]
    total: int


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok"]


class Readiness(msgspec.Struct, frozen=True):
    status: Literal["ready", "starting", "unavailable"]
    checks: dict[str, str]


KeyName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=80,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Who or what the key is for.",
    ),
]


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: KeyName
    role: Annotated[
        Literal["admin", "ingest", "query"],
        Meta(description="admin: everything; ingest: upload and jobs; query: search, ask, read."),
    ]


class KeyRead(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    created_at: float
    revoked_at: float | None


class KeyCreated(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    created_at: float
    key: Annotated[str, Meta(description="The key itself: shown this once, never again.")]


class KeyList(msgspec.Struct, frozen=True):
    keys: list[KeyRead]


class ChunkRead(msgspec.Struct, frozen=True):
    index: int
    text: str
    page: int | None
    heading: str | None


class ChunkPage(msgspec.Struct, frozen=True):
    document_id: str
    file_name: str
    total: int
    offset: int
    chunks: list[ChunkRead]


class ModelStatus(msgspec.Struct, frozen=True):
    role: Literal["chat", "embedding"]
    name: str
    file_size_bytes: int
    context_tokens: Annotated[int, Meta(description="Context of one request (one slot).")]
    slots: Annotated[int, Meta(description="Requests served at once (continuous batching).")]
    threads: int


class StatusRead(msgspec.Struct, frozen=True):
    version: str
    started_at: float
    uptime_s: float
    models: list[ModelStatus]
    ram_budget_bytes: int
    ram_planned_bytes: int
    store: Annotated[str, Meta(description='"embedded", or the Qdrant server URL\'s host.')]
    documents: int
    data_dir_bytes: Annotated[int, Meta(description="Size of the data dir (counted every 30 s).")]
    disk_free_bytes: int
    disk_total_bytes: int
    supported_extensions: Annotated[
        list[str], Meta(description="File name endings an upload may have.")
    ]


class LogLine(msgspec.Struct, frozen=True):
    seq: int
    time: float
    level: str
    logger: str
    message: str


class LogPage(msgspec.Struct, frozen=True):
    lines: list[LogLine]
    last_seq: Annotated[
        int, Meta(description="The newest line's number: pass it as `after` to follow.")
    ]


ModelName = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


class EmbeddingSwitchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Switch to an embedding model added with `appliance models add`."""

    name: ModelName


class EmbeddingSwitchRead(msgspec.Struct, frozen=True):
    """The embedding switch: the live collection and model, and the last switch's progress."""

    collection: str
    state: Literal["idle", "running", "done", "failed"]
    model: str
    target_collection: str
    documents_total: int
    documents_done: int
    chunks_done: int
    started_at: float | None
    finished_at: float | None
    error: str | None


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
