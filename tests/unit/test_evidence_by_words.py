"""The first evidence under load (issue 22, 150 askers): when more texts wait for the query
embeddings than `BY_WORDS_FROM_QUEUED`, the candidates are ranked by the words they share
with the question, with no embedding, and the answer is counted in the
`first_evidence_by_words` stage; at ease they are embedded as before. A counting fake
embedder, pure ranking otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from appliance.config.generation import GenerationSettings
from appliance.config.prompts import PromptStrategy
from appliance.config.retrieval import RetrievalSettings
from appliance.domain.types import Hit
from appliance.observability.metrics import Metrics
from appliance.query.answer_plan import AnswerPlan
from appliance.query.context import candidates, sentences_of
from appliance.query.evidence import BY_WORDS_FROM_QUEUED, EvidenceFinder, word_scores
from appliance.query.extract import no_prompt
from appliance.query.params import AnswerSettings
from appliance.query.vector_cache import VectorCache

QUESTION = "How many days are backups kept by default?"
PASSAGE = (
    "Backups are written every night. "
    "By default, backups are kept for 35 days. "
    "The operator can change where they are written."
)


class CountingFakeEmbedder:
    """A fake `Embedder`: every text the same vector, each text counted; `gate` holds
    every call until set."""

    dim = 2

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def queue_depth(self) -> int:
        return 0

    async def embed(
        self, texts: Sequence[str], *, interactive: bool, urgent: bool = True
    ) -> list[list[float]]:
        self.texts += texts
        await self.gate.wait()
        return [[1.0, 0.0] for _ in texts]


def finder(vectors: VectorCache) -> tuple[EvidenceFinder, Metrics]:
    answers = AnswerSettings(GenerationSettings(), RetrievalSettings(), {})
    metrics = Metrics()
    return EvidenceFinder(answers, metrics, vectors), metrics


def plan(embedder: CountingFakeEmbedder) -> AnswerPlan:
    hit = Hit(
        point_id="p1", score=0.9, document_id="d1", file_name="backup.html", chunk_index=0,
        text=PASSAGE,
    )  # fmt: skip
    return AnswerPlan("top3", PromptStrategy(), no_prompt([]), [hit], None, {}, embedder)


def by_words_count(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "appliance_stage_seconds_count", {"stage": "first_evidence_by_words"}
    )
    return value or 0.0


def test_word_scores_favour_the_sentence_that_names_the_answer() -> None:
    [per_hit] = sentences_of(plan(CountingFakeEmbedder()).pool)
    scores = word_scores(QUESTION, per_hit)
    assert max(range(len(per_hit)), key=lambda i: scores[i]) == 1  # "... kept for 35 days."


async def test_at_ease_the_first_evidence_is_embedded() -> None:
    vectors, embedder = VectorCache(), CountingFakeEmbedder()
    evidence, metrics = finder(vectors)
    answer = plan(embedder)
    first = await evidence.first(QUESTION, answer, [1.0, 0.0])
    assert first and len(embedder.texts) == 3 and not answer.by_words
    assert by_words_count(metrics) == 0


async def test_under_load_the_first_evidence_is_ranked_by_words_with_no_embedding() -> None:
    vectors, embedder = VectorCache(), CountingFakeEmbedder()
    evidence, metrics = finder(vectors)
    embedder.gate.clear()  # other askers' texts wait for the query embeddings
    others = [f"another asker's sentence {i}" for i in range(BY_WORDS_FROM_QUEUED + 1)]
    waiting = asyncio.ensure_future(vectors.embed(embedder, others))
    for _ in range(5):  # the embedding under way reaches the fake
        await asyncio.sleep(0)
    assert evidence.by_words_now()
    answer = plan(embedder)
    first = await evidence.first(QUESTION, answer, [1.0, 0.0])
    assert embedder.texts == others  # none of this answer's sentences embedded
    assert answer.by_words and by_words_count(metrics) == 1
    assert first[0].text == "By default, backups are kept for 35 days."
    assert PASSAGE[first[0].start : first[0].end] == first[0].text  # offsets verbatim
    assert 0 < first[0].score <= 1  # the share of the question's words it holds
    embedder.gate.set()
    await waiting
    assert not evidence.by_words_now()


async def test_a_plan_ranked_by_words_stays_so() -> None:
    """The prompt's sentences were ranked by words: the first evidence is too, even once
    the queue has drained (no embedding after the fact)."""
    vectors, embedder = VectorCache(), CountingFakeEmbedder()
    evidence, _ = finder(vectors)
    answer = plan(embedder)
    answer.candidates = candidates(sentences_of(answer.pool), QUESTION, 12)
    answer.by_words = True
    first = await evidence.first(QUESTION, answer, [1.0, 0.0])
    assert embedder.texts == [] and first[0].text.startswith("By default")
