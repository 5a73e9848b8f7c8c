"""`/v1/documents`: the indexed documents, their metadata and their chunks."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


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
    collection: Annotated[str, Meta(description="The collection it belongs to.")] = "default"


class DocumentList(msgspec.Struct, frozen=True):
    documents: list[DocumentRead]
    total: int


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
