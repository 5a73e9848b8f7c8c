"""Evidence and groundedness of an answer (pure: vectors come from the caller).

* **Evidence**: the sentences of the cited passages, ranked by how well they support
  the answer (embedding similarity to the answer's sentences, plus words shared
  with it) and how well they match the question. A client can show exact
  sources even when a small model words the answer badly.
* **Grounded**: the share of answer sentences supported by what the model read.
  A sentence is supported when its embedding is close to one sentence read
  (`support_cosine`) or when most of its content words occur in the text read
  (`support_overlap`). Thresholds are chosen on `bench/answers.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from appliance.domain.types import Evidence
from appliance.query.answer_type import answer_type_bonus
from appliance.query.context import Sentence
from appliance.query.sentences import content_words, join_words, overlap


@dataclass(frozen=True)
class Grounding:
    evidence: list[Evidence]
    grounded: float
    unsupported: list[str]


def _matrix(vectors: Sequence[Sequence[float]], dim: int) -> np.ndarray:
    if not vectors:
        return np.zeros((0, dim), dtype=np.float32)
    return np.asarray(vectors, dtype=np.float32)


def as_evidence(sentence: Sentence, score: float, citation_of: dict[str, int]) -> Evidence:
    """`sentence` as the evidence an answer returns (offsets into its chunk's text)."""
    hit, start, end = sentence.hit, sentence.start, sentence.end
    citation = citation_of.get(hit.point_id, 0)
    return Evidence(
        hit.document_id, hit.file_name, hit.chunk_index, start, end, sentence.text,
        round(score, 4), citation, hit.page, hit.heading, hit.location,
    )  # fmt: skip


def answering(
    question: str,
    pool: Sequence[Sentence],
    pool_vectors: Sequence[Sequence[float]],
    question_vector: Sequence[float],
    citation_of: dict[str, int],
    count: int,
) -> list[Evidence]:
    """The `count` sentences of `pool` that best answer the question: the evidence sent
    before the answer's first token (no answer to weigh yet). Closest to the question, with
    a bonus for naming what it asks for (`query.answer_type`)."""
    if not pool:
        return []
    q = np.asarray(question_vector, dtype=np.float32)
    cosine = _matrix(pool_vectors, len(q)) @ q
    bonus = answer_type_bonus(question, [s.text for s in pool])
    scores = [float(c) + b for c, b in zip(cosine, bonus, strict=True)]
    order = sorted(range(len(pool)), key=lambda j: -scores[j])[:count]
    return [as_evidence(pool[j], float(cosine[j]), citation_of) for j in order]


def ground(
    *,
    answer_sentences: Sequence[str],
    answer_vectors: Sequence[Sequence[float]],
    read: Sequence[Sentence],
    read_vectors: Sequence[Sequence[float]],
    pool: Sequence[Sentence],
    pool_vectors: Sequence[Sequence[float]],
    question_vector: Sequence[float],
    citation_of: dict[str, int],
    evidence_count: int,
    support_cosine: float,
    support_overlap: float,
) -> Grounding:
    """Score the answer against `read` (the sentences given to the model) and rank
    `pool` (every sentence of the cited passages) as evidence.

    `citation_of` maps a hit's point id to its citation number.
    """
    dim = len(question_vector)
    q = np.asarray(question_vector, dtype=np.float32)
    a = _matrix(answer_vectors, dim)

    def similarity(vectors: Sequence[Sequence[float]]) -> np.ndarray:
        m = _matrix(vectors, dim)
        return a @ m.T if len(a) and len(m) else np.zeros((len(a), len(m)), dtype=np.float32)

    # --- groundedness: per answer sentence, its best support in what was read
    sim = similarity(read_vectors)
    read_words = join_words(s.text for s in read)
    supported = 0
    unsupported: list[str] = []
    for i, said in enumerate(answer_sentences):
        best = float(sim[i].max()) if sim.shape[1] else 0.0
        lexical = overlap(content_words(said), read_words)
        if best >= support_cosine or lexical >= support_overlap:
            supported += 1
        else:
            unsupported.append(said)
    grounded = supported / len(answer_sentences) if answer_sentences else 0.0
    # --- evidence: relevance to the question and support of the answer, together
    p = _matrix(pool_vectors, dim)
    psim = similarity(pool_vectors)
    answer_words = join_words(answer_sentences)
    scores: list[float] = []
    for j, sentence in enumerate(pool):
        relevance = float(p[j] @ q)
        support = float(psim[:, j].max()) if psim.shape[0] else 0.0
        shared = overlap(content_words(sentence.text), answer_words) if answer_words else 0.0
        scores.append(relevance + support + shared)
    order = sorted(range(len(pool)), key=lambda j: -scores[j])[:evidence_count]
    evidence = [as_evidence(pool[j], scores[j] / 3, citation_of) for j in order]
    return Grounding(evidence, round(grounded, 4), unsupported)
