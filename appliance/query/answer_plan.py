"""The plan of an answer: what the model reads (its prompt, the passages it cites, the
sentences of them in the prompt) and the sentence embeddings known so far."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from appliance.config.prompts import PromptStrategy
from appliance.domain.protocols import Embedder
from appliance.domain.types import DocumentInfo, Hit
from appliance.query.context import Sentence
from appliance.query.prompt import BuiltPrompt


def cosines(vectors: Sequence[Sequence[float]], query: Sequence[float]) -> list[float]:
    if not vectors:
        return []
    return [float(x) for x in np.asarray(vectors, dtype=np.float32) @ np.asarray(query)]


@dataclass
class AnswerPlan:
    """What the model reads for an answer: its prompt, the passages it cites, the
    sentences of them in the prompt and the embeddings known so far (for grounding)."""

    name: str
    strategy: PromptStrategy
    prompt: BuiltPrompt
    pool: list[Hit]  # the cited passages: what the context was drawn from
    read: list[Sentence] | None  # sentence strategies: the sentences in the prompt
    vectors: dict[tuple[str, int], list[float]]  # sentence embeddings known so far
    embedder: Embedder  # the model of the question's vector: the rest embeds with it
    documents: dict[str, DocumentInfo] = field(default_factory=dict)  # of the cited passages
    candidates: list[Sentence] = field(default_factory=list)  # embedded to pick the context
    # under load: the candidates ranked by words, not embedded (`evidence.word_scores`)
    by_words: bool = False

    def citation_of(self) -> dict[str, int]:
        return {h.point_id: n for n, h in enumerate(self.pool, start=1)}


def sentence_key(s: Sentence) -> tuple[str, int]:
    return (s.hit.point_id, s.index)
