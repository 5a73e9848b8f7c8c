"""Plain chat, without retrieval: a conversation rendered with the chat model's own
template and generated under the same rules as answers (the queue's admission, the
`generation.max_tokens_ceiling`, the deadline, graceful shutdown).

Also the one seam between a conversation and retrieval: `retrieval_question` says
what a RAG answer searches for and asks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from jinja2 import TemplateError

from appliance.domain.errors import FieldError
from appliance.domain.protocols import Generator
from appliance.domain.types import ErrorEvent, FinishReason, TokenEvent
from appliance.observability.metrics import Metrics
from appliance.query.conversations import join_follow_up
from appliance.query.draining import Draining
from appliance.query.generation import Generated, GenerationRules, QueuedGeneration

Message = dict[str, str]  # {"role": ..., "content": ...}, as `Generator.encode` reads


def retrieval_question(messages: Sequence[Message]) -> tuple[int, str]:
    """What a RAG answer searches for and answers, with the index of the message it
    came from: the last user message (else the last message), a follow-up joined to
    the user's question before it as in a conversation (`query/conversations.py`)."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        return len(messages) - 1, messages[-1]["content"]
    searched: str | None = None
    for i in users:
        searched = join_follow_up(messages[i]["content"], searched)
    assert searched is not None
    return users[-1], searched


class ContextExceeded(FieldError):
    """The conversation leaves no room for an answer in the chat model's context."""

    code = "context_length_exceeded"

    def __init__(self, detail: str) -> None:
        super().__init__("messages", detail)


class ChatDone(msgspec.Struct, frozen=True, tag="done"):
    """The end of a plain chat completion."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


ChatEvent = TokenEvent | ChatDone | ErrorEvent


@dataclass(frozen=True)
class ChatLimits:
    """What plain chat needs of `[generation]`."""

    max_tokens: int
    max_tokens_ceiling: int
    deadline_s: float


class ChatService:
    """Plain chat over the running generator (built once, with the query service)."""

    def __init__(
        self, generator: Generator, metrics: Metrics, draining: Draining, limits: ChatLimits
    ) -> None:
        self._generator = generator
        self._metrics = metrics
        self._limits = limits
        self._rules = GenerationRules(metrics, draining, limits.deadline_s)

    async def prepare(
        self, messages: list[Message], *, max_tokens: int | None, temperature: float
    ) -> PreparedChat:
        """Render, count and queue the generation. Raises before anything is streamed:
        `ContextExceeded`, a template refusing the messages (400), `Overloaded` (503)."""
        gen = self._generator
        t0 = time.perf_counter()
        try:
            tokens = await asyncio.to_thread(gen.encode, messages)
        except TemplateError as exc:  # e.g. "roles must alternate user/assistant"
            raise FieldError(
                "messages", f"the chat model's template refuses these messages: {exc}"
            ) from exc
        self._metrics.stage_seconds.labels("prompt").observe(time.perf_counter() - t0)
        room = gen.n_ctx - len(tokens)
        if room < 1:
            raise ContextExceeded(
                f"the messages take {len(tokens)} tokens; the chat model's context holds "
                f"{gen.n_ctx} with the answer (models.chat_ctx): shorten them"
            )
        limits = self._limits
        budget = min(max_tokens or limits.max_tokens, limits.max_tokens_ceiling, room)
        stream = gen.stream(
            tokens, max_tokens=budget, temperature=temperature, messages=messages
        )  # may raise Overloaded: nothing streamed yet
        return PreparedChat(self._rules, stream, len(tokens), t0)


class PreparedChat(QueuedGeneration[ChatDone]):
    """A queued completion; iterate `events()` to stream it, `cancel()` to drop it."""

    async def finished(self, generated: Generated) -> ChatDone:
        return ChatDone(
            finish_reason=generated.finish_reason,
            prompt_tokens=generated.prompt_tokens,
            completion_tokens=generated.completion_tokens,
            cached_tokens=generated.cached_tokens,
        )
