"""Pick what the model reads: whole passages, or the sentences closest to the question.

Pure: the caller embeds the candidate sentences (`Sentence.text`) and passes the
vectors in. Sentence selection keeps the `strategy.sentences` sentences most
similar to the question, adds the neighbour a sentence needs to be read (the next
one after a colon or a short line, the previous one before "This ..."), and
gives each passage's picks in document order, within the token budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.config.prompts import PromptStrategy
from appliance.domain.types import Hit
from appliance.query.prompt import Excerpt
from appliance.query.sentences import content_words, rank_by_overlap, split_sentences

GAP = " … "  # between sentences of one passage that are not adjacent
_REFERS_BACK = re.compile(
    r"^(?i:this|these|that|those|it|its|they|such|then|also|however)\b|^[a-z]"
)
SHORT_SENTENCE_CHARS = 60


@dataclass(frozen=True)
class Sentence:
    rank: int  # index of its hit in the search results
    index: int  # position among the sentences of that hit
    start: int  # character offsets into hit.text
    end: int
    hit: Hit

    @property
    def text(self) -> str:
        return self.hit.text[self.start : self.end]


def sentences_of(hits: Sequence[Hit]) -> list[list[Sentence]]:
    """Every sentence of every hit, per hit."""
    return [
        [Sentence(rank, i, s.start, s.end, hit) for i, s in enumerate(split_sentences(hit.text))]
        for rank, hit in enumerate(hits)
    ]


def candidates(per_hit: Sequence[Sequence[Sentence]], query: str, keep: int) -> list[Sentence]:
    """At most `keep` sentences to embed, those sharing most words with `query`."""
    flat = [s for sentences in per_hit for s in sentences]
    if len(flat) <= keep:
        return flat
    words = content_words(query)
    chosen = rank_by_overlap(words, [content_words(s.text) for s in flat], keep)
    return [flat[i] for i in chosen]


def passages(hits: Sequence[Hit], strategy: PromptStrategy) -> list[Excerpt]:
    return [Excerpt(n, h, h.text) for n, h in enumerate(hits[: strategy.passages], start=1)]


def needs_next(s: Sentence) -> bool:
    """A sentence read with the next one: it ends in a colon, or is a short line."""
    text = s.text
    return text.endswith(":") or len(text) < SHORT_SENTENCE_CHARS


def needs_previous(s: Sentence) -> bool:
    """A sentence read with the previous one: it refers back ('This ...', lowercase)."""
    return bool(_REFERS_BACK.match(s.text))


def select_sentences(
    per_hit: Sequence[Sequence[Sentence]],
    scored: Sequence[tuple[Sentence, float]],
    strategy: PromptStrategy,
    *,
    count_tokens: Callable[[str], int],
    budget: int,
) -> tuple[list[Excerpt], list[Sentence]]:
    """The excerpts the model reads and the sentences they are made of.

    `scored` pairs candidate sentences with their similarity to the question. An
    excerpt's number is its passage's rank (1-based), the number of its citation.
    """
    chosen: dict[tuple[int, int], Sentence] = {}
    spent = 0

    def take(s: Sentence) -> bool:
        nonlocal spent
        key = (s.rank, s.index)
        if key in chosen:
            return True
        cost = count_tokens(s.text) + 2
        if spent + cost > budget:
            return False
        chosen[key] = s
        spent += cost
        return True

    picked = 0
    for sentence, _score in sorted(scored, key=lambda p: -p[1]):
        if picked >= strategy.sentences:
            break
        if not take(sentence):
            continue
        picked += 1
        if strategy.neighbours:
            siblings = per_hit[sentence.rank]
            if needs_next(sentence) and sentence.index + 1 < len(siblings):
                take(siblings[sentence.index + 1])
            if needs_previous(sentence) and sentence.index > 0:
                take(siblings[sentence.index - 1])
    # Passages in rank order (numbered as the citations), sentences in document order.
    excerpts: list[Excerpt] = []
    used: list[Sentence] = []
    ranks = sorted({rank for rank, _ in chosen})
    for rank in ranks:
        mine = sorted((s for (r, _), s in chosen.items() if r == rank), key=lambda s: s.index)
        parts: list[str] = []
        for i, s in enumerate(mine):
            if i and s.index != mine[i - 1].index + 1:
                parts.append(GAP)
            elif i:
                parts.append(" ")
            parts.append(s.text)
        excerpts.append(Excerpt(rank + 1, mine[0].hit, "".join(parts)))
        used.extend(mine)
    return excerpts, used
