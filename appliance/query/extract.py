"""The extractive answer (`"strategy": "extract"`): the sentences of the retrieved passages
that best answer the question, verbatim, each with its citation marker. The chat model is
not called: the answer streams as one piece through the same generation loop, so it is
grounded, recorded in its conversation and counted like any other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from appliance.domain.types import Evidence, FinishReason, Hit
from appliance.query.context import needs_next, needs_previous, sentences_of
from appliance.query.prompt import BuiltPrompt, Excerpt

EXTRACT = "extract"
# Evidence sentences an extractive answer quotes, best first.
EXTRACT_SENTENCES = 3


def extractive_answer(evidence: list[Evidence], hits: Sequence[Hit]) -> str:
    """The best sentences, verbatim, each followed by its passage's [n]; each with the
    neighbour it needs to be read, as the prompt reads it (the next one after a colon or
    a short line, the previous one before "This ..."), and none quoted twice."""
    per_hit = {
        (h.document_id, h.chunk_index): s for h, s in zip(hits, sentences_of(hits), strict=True)
    }
    quoted: list[str] = []
    said: dict[tuple[str, int], set[int]] = {}  # the sentences quoted already, per hit
    for e in evidence[:EXTRACT_SENTENCES]:
        siblings = per_hit.get((e.document_id, e.chunk_index), [])
        at = next((i for i, s in enumerate(siblings) if (s.start, s.end) == (e.start, e.end)), -1)
        if at < 0:  # not a sentence of these hits: quoted as it is
            quoted.append(f"{' '.join(e.text.split())} [{e.citation}]")
            continue
        mine = said.setdefault((e.document_id, e.chunk_index), set())
        if at in mine:  # quoted already, with an earlier one
            continue
        first = at - 1 if at > 0 and needs_previous(siblings[at]) and at - 1 not in mine else at
        last = at + 1 if at + 1 < len(siblings) and needs_next(siblings[at]) else at
        last = at if last in mine else last
        mine.update(range(first, last + 1))
        text = siblings[at].hit.text[siblings[first].start : siblings[last].end]
        quoted.append(f"{' '.join(text.split())} [{e.citation}]")
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
