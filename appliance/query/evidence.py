"""Evidence of an answer: first the sentences that best answer the question (before its
first token: `first`), then, once it has streamed, evidence and groundedness against the
answer (`ground`: the sentences not yet embedded are embedded after the next askers'
questions, then `grounding.ground`)."""

from __future__ import annotations

import time

from appliance.domain.types import Evidence
from appliance.observability.metrics import Metrics
from appliance.query.answer_plan import AnswerPlan, sentence_key
from appliance.query.context import candidates, sentences_of
from appliance.query.grounding import Grounding, answering, ground
from appliance.query.params import AnswerSettings
from appliance.query.sentences import answer_sentences

# Sentences of the cited passages ranked as evidence at most, for sentence strategies
# (each not yet embedded costs a few ms after the answer; beyond, those sharing most
# words with the question and answer).
MAX_EVIDENCE_POOL = 32
# Sentences embedded for the first evidence of a passages strategy (whose prompt embedded
# none): those sharing most words with the question, a few ms each on the query thread
# while the answer waits for its prefill; kept for grounding.
FIRST_EVIDENCE_POOL = 12


class EvidenceFinder:
    def __init__(self, answers: AnswerSettings, metrics: Metrics) -> None:
        self._answers = answers
        self._metrics = metrics

    async def first(self, question: str, plan: AnswerPlan, vector: list[float]) -> list[Evidence]:
        """The sentences of the cited passages closest to the question: those a sentence
        strategy embedded to pick its context (no embedding now), else the passages'
        sentences sharing most words with the question, embedded now."""
        if not plan.candidates:  # a passages strategy: its own few, kept for grounding
            plan.candidates = candidates(sentences_of(plan.pool), question, FIRST_EVIDENCE_POOL)
        pool = plan.candidates
        missing = [s for s in pool if sentence_key(s) not in plan.vectors]
        if missing:
            t0 = time.perf_counter()
            embedded = await plan.embedder.embed([s.text for s in missing], interactive=True)
            self._metrics.stage_seconds.labels("first_evidence").observe(time.perf_counter() - t0)
            plan.vectors.update(zip(map(sentence_key, missing), embedded, strict=True))
        vectors = [plan.vectors[sentence_key(s)] for s in pool]
        count = self._answers.generation.evidence_sentences
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
        embedded = await plan.embedder.embed([*texts, *sentences], interactive=True, urgent=False)
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
