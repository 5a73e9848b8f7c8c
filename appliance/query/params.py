"""The query service's values: what a search found, what an answer is asked with,
the plan of an answer (its prompt and what the model reads), and its citations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from appliance.config.schema import PromptStrategy
from appliance.domain.errors import FieldError
from appliance.domain.protocols import Embedder
from appliance.domain.types import Citation, DocumentFilter, DocumentInfo, Hit
from appliance.query.context import Sentence
from appliance.query.prompt import BuiltPrompt

SNIPPET_CHARS = 300


@dataclass(frozen=True)
class SearchOutcome:
    hits: list[Hit]
    embed_ms: float
    search_ms: float
    vector: list[float] = field(default_factory=list, repr=False)
    # the model `vector` came from: the rest of the answer embeds with it too, even if the
    # embedding model is switched meanwhile (never two vector spaces in one answer)
    embedder: Embedder | None = field(default=None, repr=False)
    fused: bool = False  # hybrid: RRF scores (min_score was applied to the dense ranking)


@dataclass(frozen=True)
class AskParams:
    question: str
    top_k: int
    max_tokens: int | None  # None: the strategy's, else generation.max_tokens
    temperature: float
    document_ids: Sequence[str] | None = None
    strategy: str | None = None  # a [prompts.*] name; None: generation.prompt
    filters: DocumentFilter | None = None
    retrieval: str | None = None  # "dense" | "hybrid"; None: retrieval.mode


@dataclass(frozen=True)
class AnswerSettings:
    """What the query service needs from `[generation]`, `[retrieval]` and `[prompts]`."""

    prompts: dict[str, PromptStrategy]
    default_prompt: str
    context_tokens: int
    max_tokens: int
    max_tokens_ceiling: int
    evidence_sentences: int = 5
    support_cosine: float = 0.7
    support_overlap: float = 0.8
    retrieval: str = "dense"  # retrieval.mode: "dense" or "hybrid" (BM25 + dense, RRF)


class UnknownStrategy(FieldError):
    """The request names a prompt strategy the config does not define."""

    code = "unknown_strategy"

    def __init__(self, detail: str) -> None:
        super().__init__("strategy", detail)


class NoLexicalIndex(FieldError):
    """Hybrid retrieval was asked of a store without BM25 vectors."""

    code = "no_lexical_index"

    def __init__(self) -> None:
        super().__init__(
            "retrieval", "this index has no BM25 vectors (a Qdrant collection made without "
            "them): only \"dense\" retrieval is available",
        )  # fmt: skip


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


def cosines(vectors: Sequence[Sequence[float]], query: Sequence[float]) -> list[float]:
    if not vectors:
        return []
    return [float(x) for x in np.asarray(vectors, dtype=np.float32) @ np.asarray(query)]


@dataclass
class Plan:
    """A prompt and what the model reads in it, before generation."""

    name: str
    strategy: PromptStrategy
    prompt: BuiltPrompt
    pool: list[Hit]  # the cited passages: what the context was drawn from
    read: list[Sentence] | None  # sentence strategies: the sentences in the prompt
    vectors: dict[tuple[str, int], list[float]]  # sentence embeddings known so far
    embedder: Embedder | None = None  # the model of the question's vector
    documents: dict[str, DocumentInfo] = field(default_factory=dict)  # of the cited passages

    def citation_of(self) -> dict[str, int]:
        return {h.point_id: n for n, h in enumerate(self.pool, start=1)}


def sentence_key(s: Sentence) -> tuple[str, int]:
    return (s.hit.point_id, s.index)
