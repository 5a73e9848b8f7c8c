"""What a question is asked with: the request's parameters, the answer settings of the
config, and the refusals of a request the config cannot serve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appliance.config.generation import GenerationSettings
from appliance.config.prompts import PromptStrategy
from appliance.config.retrieval import RetrievalSettings
from appliance.domain.errors import FieldError
from appliance.domain.types import DocumentFilter


@dataclass(frozen=True)
class AskParams:
    question: str
    top_k: int
    max_tokens: int | None  # None: the strategy's, else generation.max_tokens
    temperature: float
    document_ids: Sequence[str] | None = None
    strategy: str | None = None  # a [prompts.*] name or "extract"; None: the config's
    filters: DocumentFilter | None = None
    retrieval: str | None = None  # "dense" | "hybrid"; None: retrieval.mode
    conversation_id: str | None = None  # the caller's conversation it continues, if any
    collections: frozenset[str] | None = None  # ids the search may read; None: all


@dataclass(frozen=True)
class AnswerSettings:
    """What the query service reads of the config: `[generation]`, `[retrieval]` and the
    `[prompts.*]` strategies."""

    generation: GenerationSettings
    retrieval: RetrievalSettings
    prompts: dict[str, PromptStrategy]


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
