"""An answer that ends when it has answered: the stream stops once it has said
`answer_sentences` sentences and the next one begins (pure).

A sentence ends at . ! or ? (a citation mark like [1] may follow), then space, then
what starts a sentence: a capital, a digit, a quote or a bracket. "e.g. this" and
"3.5 GB" do not end one. Line breaks alone do not either, so a list runs on to
`max_tokens`."""

from __future__ import annotations

import re

_END = re.compile(r"[.!?](?:\s*\[\d+(?:,\s*\d+)*\])?[.!?]?(?=\s+[\"'(\[A-Z0-9`*])")


class SentenceLimit:
    """Feed it the pieces of an answer as they come; it says what of each to keep and when
    to stop (0 sentences: no limit)."""

    def __init__(self, sentences: int) -> None:
        self._sentences = sentences
        self._text = ""
        self.reached = False

    def feed(self, piece: str) -> str:
        """The part of `piece` to keep: all of it, or what comes before the sentence after
        the last one allowed (then `reached` is set and nothing more is kept)."""
        if self.reached or not self._sentences:
            return "" if self.reached else piece
        before = len(self._text)
        self._text += piece
        ends = [m.end() for m in _END.finditer(self._text)]
        if len(ends) < self._sentences:
            return piece
        self.reached = True
        cut = ends[self._sentences - 1]
        return piece[: max(0, cut - before)]
