"""What a search looks for and finds: the fields a question is narrowed with (shared by
`/v1/search`, `/v1/ask` and chat completions), the metadata filter, the hits and the
documents they come from."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from appliance.wire.collections import CollectionNames


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
    # narrows the search to these collections (names); never widens what the key reads
    collections: CollectionNames | None = None


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
            "the document's own date and the day it was ingested (YYYY-MM-DD, inclusive), "
            "collections (names; only ever narrows what the key may read)."
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
