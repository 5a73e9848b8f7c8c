"""Evidence of an answer: first the sentences that best answer the question (before its
first token: `first`), then, once it has streamed, evidence and groundedness against the
answer (`ground`: the sentences not yet embedded are embedded after the next askers'
questions, then `grounding.ground`).

Under load the first evidence is ranked by words: when more sentences wait for the query
embeddings than `BY_WORDS_FROM_QUEUED`, the candidates are ranked by the words they share
with the question (`word_scores`) instead of waiting for their embeddings; the `done`
event's evidence is still ranked by embeddings. Each such answer is counted in the
`appliance_stage_seconds{stage="first_evidence_by_words"}` histogram."""

from __future__ import annotations

import time
from collections.abc import Sequence

from appliance.domain.types import Evidence
from appliance.observability.metrics import Metrics
from appliance.query.answer_plan import AnswerPlan, sentence_key
from appliance.query.answer_type import BONUS, answer_type_bonus
from appliance.query.context import Sentence, candidates, sentences_of
from appliance.query.grounding import Grounding, answering, as_evidence, ground
from appliance.query.params import AnswerSettings
from appliance.query.sentences import answer_sentences, content_words
from appliance.query.vector_cache import VectorCache

# Sentences of the cited passages ranked as evidence at most, for sentence strategies
# (each not yet embedded costs a few ms after the answer; beyond, those sharing most
# words with the question and answer).
MAX_EVIDENCE_POOL = 32
# Sentences embedded for the first evidence of a passages strategy (whose prompt embedded
# none): those sharing most words with the question, a few ms each on the query thread
# while the answer waits for its prefill; kept for grounding.
FIRST_EVIDENCE_POOL = 12
# Texts waiting for the query embeddings (~10-20 ms each beside decoding on 2 cores) beyond
# which the first evidence is ranked by words, not embeddings. Measured (bench/askers.py
# overload, evidence p99 with 8 / 150 askers at once): 36 -> 0.90 / 2.02 s (3 of 8 by words),
# 24 -> 0.78 / 1.67 s (5 of 8); without: 1.57 / 8.28 s.
BY_WORDS_FROM_QUEUED = 24


def word_scores(question: str, pool: Sequence[Sentence]) -> list[float]:
    """How well each sentence answers the question, without embeddings: the content words
    it shares with the question, plus one for naming what the question asks for
    (`answer_type`). Measured offline on the evidence benchmark's hits (3 passages, 12
    candidates; hit@1/@5): PostgreSQL 0.33/0.67 (by embeddings 0.33/0.71), Apache 0.21/0.56
    (0.36/0.61)."""
    asked = content_words(question)
    bonus = answer_type_bonus(question, [s.text for s in pool])
    shared = [len(asked & content_words(s.text)) for s in pool]
    return [n + b / BONUS for n, b in zip(shared, bonus, strict=True)]


def answering_by_words(
    question: str, pool: Sequence[Sentence], citation_of: dict[str, int], count: int
) -> list[Evidence]:
    """The `count` sentences of `pool` that best answer the question by `word_scores`; an
    evidence's score is the share of the question's content words it holds."""
    scores = word_scores(question, pool)
    asked = content_words(question)
    order = sorted(range(len(pool)), key=lambda j: -scores[j])[:count]
    share = [len(asked & content_words(pool[j].text)) / max(1, len(asked)) for j in order]
    return [as_evidence(pool[j], s, citation_of) for j, s in zip(order, share, strict=True)]


class EvidenceFinder:
    def __init__(self, answers: AnswerSettings, metrics: Metrics, vectors: VectorCache) -> None:
        self._answers = answers
        self._metrics = metrics
        self._vectors = vectors  # the query path's embeddings, remembered

    def by_words_now(self) -> bool:
        """Whether a first evidence not yet embedded is ranked by words now: more texts
        wait for the query embeddings than `BY_WORDS_FROM_QUEUED`."""
        return self._vectors.queued() > BY_WORDS_FROM_QUEUED

    async def first(self, question: str, plan: AnswerPlan, vector: list[float]) -> list[Evidence]:
        """The sentences of the cited passages closest to the question: those a sentence
        strategy embedded to pick its context (no embedding now), else the passages'
        sentences sharing most words with the question, embedded now (ranked by words
        instead under load: `plan.by_words`, or `by_words_now`)."""
        if not plan.candidates:  # a passages strategy: its own few, kept for grounding
            plan.candidates = candidates(sentences_of(plan.pool), question, FIRST_EVIDENCE_POOL)
        pool = plan.candidates
        missing = [s for s in pool if sentence_key(s) not in plan.vectors]
        count = self._answers.generation.evidence_sentences
        if missing and (plan.by_words or self.by_words_now()):
            t0 = time.perf_counter()
            plan.by_words = True
            evidence = answering_by_words(question, pool, plan.citation_of(), count)
            took = time.perf_counter() - t0
            self._metrics.stage_seconds.labels("first_evidence_by_words").observe(took)
            return evidence
        if missing:
            t0 = time.perf_counter()
            embedded = await self._vectors.embed(plan.embedder, [s.text for s in missing])
            self._metrics.stage_seconds.labels("first_evidence").observe(time.perf_counter() - t0)
            plan.vectors.update(zip(map(sentence_key, missing), embedded, strict=True))
        vectors = [plan.vectors[sentence_key(s)] for s in pool]
        return answering(question, pool, vectors, vector, plan.citation_of(), count)

    async def ground(
        self, question: str, plan: AnswerPlan, vector: list[float], answer: str
    ) -> Grounding:
        """Evidence and groundedness of `answer` (embeddings on the query path, with the
        model of the question's `vector`)."""
        sentences = answer_sentences(answer)
        per_hit = sentences_of(plan.pool)
        if plan.read is None:  # passages: the model read every sentence of them
            read = [s for sentences_of_hit in per_hit for s in sentences_of_hit]
            pool = read
        else:
            read = plan.read
            pool = candidates(per_hit, f"{question} {answer}", MAX_EVIDENCE_POOL)
        missing = {
            sentence_key(s): s for s in (*pool, *read) if sentence_key(s) not in plan.vectors
        }
        texts = [s.text for s in missing.values()]
        t0 = time.perf_counter()
        # after the answer has streamed: the next askers' query embeddings go first
        embedded = await self._vectors.embed(plan.embedder, [*texts, *sentences], urgent=False)
        self._metrics.stage_seconds.labels("ground").observe(time.perf_counter() - t0)
        known = {**plan.vectors, **dict(zip(missing, embedded[: len(texts)], strict=True))}
        a = self._answers.generation
        return ground(
            answer_sentences=sentences,
            answer_vectors=embedded[len(texts) :],
            read=read,
            read_vectors=[known[sentence_key(s)] for s in read],
            pool=pool,
            pool_vectors=[known[sentence_key(s)] for s in pool],
            question_vector=vector,
            citation_of=plan.citation_of(),
            evidence_count=a.evidence_sentences,
            support_cosine=a.support_cosine,
            support_overlap=a.support_overlap,
        )
