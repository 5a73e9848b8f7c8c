"""Sentences of a passage with their character offsets, and word overlap (pure).

Offsets always index the chunk text as stored, so `text[start:end]` is the
sentence exactly: a client can highlight it in the source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A sentence ends at . ! ? followed by space, or at a line break.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9`])|\n\s*")
_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*[A-Za-z0-9_]|[A-Za-z0-9]")
MIN_SENTENCE_CHARS = 25  # shorter fragments join the next sentence

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "may",
        "might",
        "more",
        "most",
        "must",
        "no",
        "not",
        "of",
        "on",
        "or",
        "other",
        "should",
        "so",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "one",
        "also",
        "any",
        "each",
        "only",
        "use",
        "used",
        "using",
    ]
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def split_sentences(text: str, min_chars: int = MIN_SENTENCE_CHARS) -> list[Span]:
    """Sentence spans of `text`, whitespace-trimmed; fragments under `min_chars` merge
    forward (a heading or a "Note:" reads with what follows)."""
    spans: list[Span] = []
    pos = 0
    raw: list[tuple[int, int]] = []
    for match in _BOUNDARY.finditer(text):
        raw.append((pos, match.start()))
        pos = match.end()
    raw.append((pos, len(text)))
    pending: int | None = None
    for start, end in raw:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start >= end:
            continue
        if pending is not None:
            start = pending
            pending = None
        if end - start < min_chars:
            pending = start
            continue
        spans.append(Span(start, end))
    if pending is not None:
        last_end = len(text.rstrip())
        if spans:
            spans[-1] = Span(spans[-1].start, last_end)
        elif last_end > pending:
            spans.append(Span(pending, last_end))
    return spans


def content_words(text: str) -> set[str]:
    """Lower-cased words that carry meaning (no stopwords, no 1-letter words)."""
    words = {w.lower() for w in _WORD.findall(text)}
    return {w for w in words if len(w) > 1 and w not in STOPWORDS}


def overlap(words: set[str], text_words: set[str]) -> float:
    """Share of `words` found in `text_words` (0 when `words` is empty)."""
    if not words:
        return 0.0
    return len(words & text_words) / len(words)


def answer_sentences(answer: str) -> list[str]:
    """The sentences of a generated answer (citation marks like [1] removed)."""
    clean = re.sub(r"\s*\[\d+(?:,\s*\d+)*\]", "", answer)
    return [clean[s.start : s.end] for s in split_sentences(clean, min_chars=8)]


def rank_by_overlap(query: set[str], texts: Sequence[set[str]], keep: int) -> list[int]:
    """Indexes of the `keep` texts sharing most words with `query`, stable on ties."""
    scored = sorted(range(len(texts)), key=lambda i: -len(query & texts[i]))
    return sorted(scored[:keep])


def join_words(parts: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for part in parts:
        out |= content_words(part)
    return out
