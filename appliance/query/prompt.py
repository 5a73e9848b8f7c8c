"""Build the RAG prompt within the context window (pure: no model, no I/O).

Passages go in rank order and are numbered [1]..[n] so the answer can cite
them; when the prompt would not leave room for the answer, the lowest-ranked
passages are dropped first (never a context-overflow error).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.domain.types import Hit


@dataclass(frozen=True)
class BuiltPrompt:
    text: str
    tokens: list[int]
    hits: list[Hit]
    max_tokens: int


def _passage(number: int, hit: Hit) -> str:
    where = hit.file_name
    if hit.page is not None:
        where += f", page {hit.page}"
    if hit.heading:
        where += f", section {hit.heading!r}"
    return f"[{number}] ({where})\n{hit.text}"


def messages_for(system_prompt: str, question: str, hits: Sequence[Hit]) -> list[dict[str, str]]:
    if hits:
        context = "\n\n".join(_passage(i, h) for i, h in enumerate(hits, start=1))
    else:
        context = "(no passages were found)"
    return [
        {"role": "system", "content": f"{system_prompt}\n\nContext:\n{context}"},
        {"role": "user", "content": question},
    ]


class PromptTooLong(ValueError):
    """Even without passages the question leaves no room for an answer."""


def build_prompt(
    *,
    system_prompt: str,
    question: str,
    hits: Sequence[Hit],
    render: Callable[[list[dict[str, str]]], str],
    tokenize: Callable[[str], list[int]],
    n_ctx: int,
    max_tokens: int,
    min_answer_tokens: int = 32,
) -> BuiltPrompt:
    """Fit as many top-ranked hits as leave `max_tokens` for the answer.

    If even the question alone leaves less than `max_tokens`, the answer budget
    shrinks (down to `min_answer_tokens`) rather than failing.
    """
    kept = list(hits)
    while True:
        text = render(messages_for(system_prompt, question, kept))
        tokens = tokenize(text)
        room = n_ctx - len(tokens)
        if room >= max_tokens:
            return BuiltPrompt(text, tokens, kept, max_tokens)
        if not kept:
            if room >= min_answer_tokens:
                return BuiltPrompt(text, tokens, kept, room)
            raise PromptTooLong(
                f"the question takes {len(tokens)} of {n_ctx} context tokens; shorten it"
            )
        # Drop passages from the bottom; estimate how many to skip a few renders.
        kept.pop()
