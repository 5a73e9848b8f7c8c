"""Split sections into overlapping chunks measured in embedding-model tokens (pure).

Chunks never cross a section (so a chunk has one page and one heading). Text is
cut at sentence or line boundaries; a sentence longer than a chunk is cut at
word boundaries, and a single word longer than a chunk is cut by characters.
Chunk text is taken from the original, so casing and punctuation survive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from appliance.domain.types import Section

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


@dataclass(frozen=True)
class TextChunk:
    text: str
    page: int | None
    heading: str | None
    tokens: int
    location: str | None = None


def _units(text: str) -> list[str]:
    return [u.strip() for u in _SENTENCE_END.split(text) if u and u.strip()]


def _split_long(unit: str, count: Callable[[str], int], limit: int) -> Iterable[tuple[str, int]]:
    """Cut a unit that exceeds `limit` tokens into pieces of at most `limit` tokens."""
    words = unit.split()
    piece: list[str] = []
    piece_tokens = 0
    for word in words:
        n = count(word)
        if n > limit:  # one enormous "word" (a URL, base64): cut by characters
            if piece:
                yield " ".join(piece), piece_tokens
                piece, piece_tokens = [], 0
            step = max(1, len(word) * limit // (n + 1))
            for start in range(0, len(word), step):
                part = word[start : start + step]
                yield part, count(part)
            continue
        if piece and piece_tokens + n > limit:
            yield " ".join(piece), piece_tokens
            piece, piece_tokens = [], 0
        piece.append(word)
        piece_tokens += n
    if piece:
        yield " ".join(piece), piece_tokens


def chunk_sections(
    sections: Iterable[Section],
    count_tokens: Callable[[str], int],
    chunk_tokens: int,
    overlap_tokens: int,
) -> list[TextChunk]:
    if overlap_tokens >= chunk_tokens:
        raise ValueError("overlap_tokens must be smaller than chunk_tokens")
    chunks: list[TextChunk] = []
    for section in sections:
        units: list[tuple[str, int]] = []
        for unit in _units(section.text):
            n = count_tokens(unit)
            if n > chunk_tokens:
                units.extend(_split_long(unit, count_tokens, chunk_tokens))
            else:
                units.append((unit, n))
        window: list[tuple[str, int]] = []
        window_tokens = 0
        fresh = False  # does the window hold a unit not yet emitted?

        def emit(
            window: list[tuple[str, int]], window_tokens: int, section: Section = section
        ) -> None:
            chunks.append(
                TextChunk(
                    " ".join(u for u, _ in window),
                    section.page,
                    section.heading,
                    window_tokens,
                    section.location,
                )
            )

        for unit, n in units:
            if window and window_tokens + n > chunk_tokens:
                emit(window, window_tokens)
                # Keep a tail of whole units as overlap, within the overlap budget.
                tail: list[tuple[str, int]] = []
                tail_tokens = 0
                for prev in reversed(window):
                    if (
                        tail_tokens + prev[1] > overlap_tokens
                        or tail_tokens + prev[1] + n > chunk_tokens
                    ):
                        break
                    tail.insert(0, prev)
                    tail_tokens += prev[1]
                window, window_tokens = tail, tail_tokens
                fresh = False
            window.append((unit, n))
            window_tokens += n
            fresh = True
        if window and fresh:
            emit(window, window_tokens)
    return chunks
