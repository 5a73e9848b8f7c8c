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

GENERATE = "generate"  # a request's strategy: the default prompt, the model writes


def resolve_answer_mode(
    generation: GenerationSettings, chat_params: int | None, external: bool = False
) -> tuple[str, str]:
    """How requests naming no strategy are answered ("generate" or "extract"), and why.
    `chat_params`: the loaded chat model's weights (None: not counted); `external`: an
    external inference server writes the answers."""
    mode = generation.answer_mode
    if mode != "auto":
        return mode, f"answer_mode = {mode!r}"
    if external:
        return GENERATE, "answer_mode 'auto': an external inference server writes the answers"
    if chat_params is None:
        return GENERATE, "answer_mode 'auto': the chat model's weights were not counted (split)"
    size = f"{chat_params / 1e9:.2f}B" if chat_params >= 10**9 else f"{chat_params / 1e6:.0f}M"
    limit = generation.generate_from_params
    if chat_params >= limit:
        return GENERATE, f"answer_mode 'auto': the chat model has {size} weights (>= {limit:,})"
    return "extract", (
        f"answer_mode 'auto': the chat model has {size} weights (< {limit:,}): its words are "
        "right less often than the documents' own sentences"
    )


@dataclass(frozen=True)
class AskParams:
    question: str
    top_k: int
    max_tokens: int | None  # None: the strategy's, else generation.max_tokens
    temperature: float
    document_ids: Sequence[str] | None = None
    strategy: str | None = None  # a [prompts.*] name, "extract" or "generate"; None: the config's
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
    mode: str | None = None  # requests naming no strategy: resolve_answer_mode's (wiring)

    @property
    def default_mode(self) -> str:
        """How a request naming no strategy is answered, "generate" or "extract": the
        wiring's resolution, else the config's ("auto" generates when nothing says which
        chat model answers)."""
        if self.mode is not None:
            return self.mode
        return GENERATE if self.generation.answer_mode == "auto" else self.generation.answer_mode


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
