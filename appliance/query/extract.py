"""The extractive answer (`"strategy": "extract"`): the sentences of the retrieved passages
that best answer the question, verbatim, each with its citation marker. The chat model is
not called: the answer streams as one piece through the same generation loop, so it is
grounded, recorded in its conversation and counted like any other."""

from __future__ import annotations

from collections.abc import AsyncIterator

from appliance.domain.types import Evidence, FinishReason
from appliance.query.prompt import BuiltPrompt, Excerpt

EXTRACT = "extract"
# Evidence sentences an extractive answer quotes, best first.
EXTRACT_SENTENCES = 3


def extractive_answer(evidence: list[Evidence]) -> str:
    """The best sentences, verbatim, each followed by its passage's [n]."""
    quoted = [f"{' '.join(e.text.split())} [{e.citation}]" for e in evidence[:EXTRACT_SENTENCES]]
    return " ".join(quoted) if quoted else "The documents hold no passage that answers this."


def no_prompt(excerpts: list[Excerpt]) -> BuiltPrompt:
    """What the chat model would have read: nothing."""
    return BuiltPrompt(text="", tokens=[], excerpts=excerpts, max_tokens=0, messages=[])


class ExtractedStream:
    """Implements `domain.protocols.TokenStream`: the extractive answer as one piece."""

    def __init__(self, text: str, finish: FinishReason = "stop") -> None:
        """`finish`: "busy" when it stands in for a generation the queue refused."""
        self._text = text
        self._finish = finish
        self._closed = False
        self.finish_reason: str | None = None

    @property
    def completion_tokens(self) -> int:
        return 0  # no model tokens

    @property
    def cached_tokens(self) -> int:
        return 0

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        if not self._closed:
            yield self._text
            self.finish_reason = self._finish

    async def aclose(self) -> None:
        self._closed = True
