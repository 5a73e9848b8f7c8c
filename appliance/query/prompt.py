"""Build the RAG prompt of a strategy within its token budget (pure: no model, no I/O).

A strategy (`config.prompts.PromptStrategy`) says what the model reads: whole
passages or selected sentences (`query.context` picks them), in the user turn
before the question or in the system turn. Document text is wrapped in one
`<documents>` block and the instruction says it is data, not instructions; a tag
inside a document is defused so a file cannot close the block, and the generator
tokenizes message contents as plain text (`Generator.encode`) so a file cannot write
the chat template's control tokens either. (`legacy` keeps the old numbered
passages, for the benchmark's before/after.)

Context goes in rank order (passages are numbered [1]..[n], as the citations);
when it would overflow the budget or leave no room for the answer, the lowest-
ranked text is dropped first (never a context-overflow error).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.config.prompts import PromptStrategy
from appliance.domain.errors import FieldError
from appliance.domain.types import Hit


@dataclass(frozen=True)
class Excerpt:
    """Text of one hit the model reads: a whole passage or some of its sentences."""

    number: int  # the [n] of the citation
    hit: Hit
    text: str


@dataclass(frozen=True)
class BuiltPrompt:
    text: str
    tokens: list[int]
    excerpts: list[Excerpt]
    max_tokens: int
    messages: list[dict[str, str]]  # what `text` renders: an external server is sent these

    @property
    def hits(self) -> list[Hit]:
        return [e.hit for e in self.excerpts]


_TAG = re.compile(r"<(/?)(documents?)\b", re.I)
NOTHING_FOUND = "(no documents matched the question)"


def defuse(text: str) -> str:
    """Make `<documents>` / `</documents>` inside file text inert."""
    return _TAG.sub(r"<\1 \2", text)


def _where(hit: Hit) -> str:
    where = hit.file_name
    if hit.page is not None:
        where += f", page {hit.page}"
    if hit.heading:
        where += f", section {hit.heading!r}"
    return where


def render_context(excerpts: Sequence[Excerpt], style: str) -> str:
    """`documents`: one `<documents>` block of plain paragraphs (measured best for small
    models, bench/answers.py); `numbered`: the legacy "[n] (file, page)" passages."""
    if style == "numbered":
        if not excerpts:
            return "(no passages were found)"
        return "\n\n".join(f"[{e.number}] ({_where(e.hit)})\n{e.text}" for e in excerpts)
    body = "\n\n".join(defuse(e.text) for e in excerpts) if excerpts else NOTHING_FOUND
    return f"<documents>\n{body}\n</documents>"


def messages_for(
    strategy: PromptStrategy, question: str, excerpts: Sequence[Excerpt]
) -> list[dict[str, str]]:
    context = render_context(excerpts, strategy.format)
    if strategy.turn == "system":
        return [
            {"role": "system", "content": f"{strategy.instruction}\n\nContext:\n{context}"},
            {"role": "user", "content": question},
        ]
    return [
        {"role": "system", "content": strategy.instruction},
        {"role": "user", "content": f"{context}\n\nAnswer briefly: {question}"},
    ]


class PromptTooLong(FieldError):
    """Even without passages the question leaves no room for an answer."""

    code = "question_too_long"

    def __init__(self, detail: str) -> None:
        super().__init__("query", detail)


def build_prompt(
    *,
    strategy: PromptStrategy,
    question: str,
    excerpts: Sequence[Excerpt],
    render: Callable[[list[dict[str, str]]], str],
    encode: Callable[[list[dict[str, str]]], list[int]],
    n_ctx: int,
    max_tokens: int,
    context_tokens: int,
    min_answer_tokens: int = 32,
) -> BuiltPrompt:
    """Fit the top-ranked excerpts within `context_tokens` and leave `max_tokens`.

    If even the question alone leaves less than `max_tokens`, the answer budget
    shrinks (down to `min_answer_tokens`) rather than failing. `render` gives the
    prompt's text, `encode` its tokens (message contents as plain text).
    """
    kept = list(excerpts)
    bare = len(encode(messages_for(strategy, question, [])))
    while True:
        messages = messages_for(strategy, question, kept)
        text = render(messages)
        tokens = encode(messages)
        room = n_ctx - len(tokens)
        within_budget = len(tokens) - bare <= context_tokens
        if room >= max_tokens and within_budget:
            return BuiltPrompt(text, tokens, kept, max_tokens, messages)
        if not kept:
            if room >= min_answer_tokens:
                return BuiltPrompt(text, tokens, kept, min(room, max_tokens), messages)
            raise PromptTooLong(
                f"the question takes {len(tokens)} of {n_ctx} context tokens; shorten it"
            )
        kept.pop()  # the lowest-ranked excerpt goes first
