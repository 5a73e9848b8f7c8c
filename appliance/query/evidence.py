"""Evidence and groundedness of an answer once it has streamed: the sentences not yet
embedded are embedded (after the next askers' questions), then `grounding.ground`."""

from __future__ import annotations

import time

from appliance.observability.metrics import Metrics
from appliance.query.answer_plan import AnswerPlan, sentence_key
from appliance.query.context import candidates, sentences_of
from appliance.query.grounding import Grounding, ground
from appliance.query.params import AnswerSettings
from appliance.query.sentences import answer_sentences

# Sentences of the cited passages ranked as evidence at most, for sentence strategies
# (each not yet embedded costs a few ms after the answer; beyond, those sharing most
# words with the question and answer).
MAX_EVIDENCE_POOL = 32


class EvidenceFinder:
    def __init__(self, answers: AnswerSettings, metrics: Metrics) -> None:
        self._answers = answers
        self._metrics = metrics

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
        a = self._answers
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
