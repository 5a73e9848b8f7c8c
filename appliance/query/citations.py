"""The citations of an answer: the passages it was given, numbered as in its prompt."""

from __future__ import annotations

from collections.abc import Sequence

from appliance.domain.types import Citation, DocumentInfo, Hit

SNIPPET_CHARS = 300


def citations_for(
    hits: Sequence[Hit], documents: dict[str, DocumentInfo] | None = None
) -> list[Citation]:
    documents = documents or {}
    citations = []
    for i, h in enumerate(hits, start=1):
        info = documents.get(h.document_id) or DocumentInfo()
        citations.append(
            Citation(
                index=i,
                document_id=h.document_id,
                file_name=h.file_name,
                chunk_index=h.chunk_index,
                score=round(h.score, 4),
                page=h.page,
                heading=h.heading,
                snippet=h.text[:SNIPPET_CHARS],
                location=h.location,
                title=info.title,
                author=info.author,
                file_type=info.file_type,
                source=info.source,
            )
        )
    return citations
