"""The chunk payload every store adapter writes and reads (one definition for all)."""

from __future__ import annotations

from typing import Any

from appliance.domain.types import ChunkRecord, Hit

COLLECTION_FIELD = "collection"  # the collection id: every read of content filters on it

PAYLOAD_FIELDS = (
    "document_id", "file_name", "chunk_index", "text", "page", "heading", "location",
    "collection",
)  # fmt: skip


def payload_of(record: ChunkRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in PAYLOAD_FIELDS}


def hit_of(point_id: object, score: float, payload: dict[str, Any]) -> Hit:
    return Hit(
        point_id=str(point_id),
        score=float(score),
        document_id=payload["document_id"],
        file_name=payload["file_name"],
        chunk_index=int(payload["chunk_index"]),
        text=payload["text"],
        page=payload.get("page"),
        heading=payload.get("heading"),
        location=payload.get("location"),  # absent in chunks stored before it existed
    )
