"""A queued answer: first the evidence that answers the question, then its tokens through
the one generation loop, then the done event with citations, evidence and timings,
recorded in its conversation."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

import msgspec

from appliance.domain.protocols import TokenStream
from appliance.domain.types import (
    DoneEvent,
    ErrorEvent,
    Evidence,
    EvidenceEvent,
    Timings,
    TokenEvent,
)
from appliance.query.answer_plan import AnswerPlan
from appliance.query.citations import citations_for
from appliance.query.conversations import ConversationService, Turn
from appliance.query.evidence import EvidenceFinder
from appliance.query.extract import ExtractedStream
from appliance.query.generation import Generated, GenerationRules, QueuedGeneration
from appliance.query.grounding import Grounding
from appliance.query.search import SearchOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerContext:
    """What every answer of the service is made with (built once)."""

    rules: GenerationRules
    evidence: EvidenceFinder
    conversations: ConversationService | None


class PreparedAnswer(QueuedGeneration[DoneEvent | EvidenceEvent]):
    """A queued answer; iterate `events()` to stream it, `cancel()` to drop it."""

    answer = True
    retry_after: int | None = None  # seconds: a "busy" answer (the generation queue was full)

    def __init__(
        self,
        context: AnswerContext,
        question: str,
        found: SearchOutcome,
        plan: AnswerPlan,
        prompt_ms: float,
        stream: TokenStream,
        t_start: float,
        turn: Turn | None = None,
        first: list[Evidence] | None = None,
    ) -> None:
        """`first`: the evidence sent before the answer, when already known (an extractive
        answer quotes it); else found when the answer's events begin."""
        # the model's answer stops after the strategy's sentences; a quoted one is whole
        quoted = isinstance(stream, ExtractedStream)  # the extractive answer: `first` quoted
        limit = 0 if quoted else plan.strategy.answer_sentences
        super().__init__(context.rules, stream, len(plan.prompt.tokens), t_start, limit)
        self._quoted = quoted
        self._first = first
        self._context = context
        self._question = question
        self.found = found
        self.plan = plan
        self.prompt = plan.prompt
        self._prompt_ms = prompt_ms
        self._turn = turn

    async def finished(self, generated: Generated) -> DoneEvent:
        return await self._recorded(await self._done(generated))

    async def _events(
        self,
    ) -> AsyncGenerator[TokenEvent | ErrorEvent | DoneEvent | EvidenceEvent, None]:
        """The evidence event first (the generation is already queued: its prefill does
        not wait for it), then the tokens and the done event."""
        yield EvidenceEvent(await self._first_evidence())
        body = super()._events()
        async with aclosing(body):
            async for event in body:
                yield event

    async def _first_evidence(self) -> list[Evidence]:
        if self._first is not None:
            return self._first
        try:
            return await self._context.evidence.first(self._question, self.plan, self.found.vector)
        except Exception:  # embedder overloaded or stopped: the answer still comes
            log.warning("the first evidence failed", exc_info=True)
            return []

    async def _grounding(self, answer: str) -> Grounding:
        context = self._context
        if self._quoted and self._first is not None:
            # a quoted answer is its evidence, every sentence of it read: nothing to weigh
            grounded = 1.0 if self._first else 0.0  # none: "the documents hold no passage"
            context.rules.metrics.answer_grounded.observe(grounded)
            return Grounding(self._first, grounded, [])
        try:
            grounding = await context.evidence.ground(
                self._question, self.plan, self.found.vector, answer
            )
        except Exception:  # embedder overloaded or stopped: the answer still stands
            log.warning("evidence and grounding failed", exc_info=True)
            return Grounding([], 0.0, [])
        context.rules.metrics.answer_grounded.observe(grounding.grounded)
        return grounding

    async def _done(self, generated: Generated) -> DoneEvent:
        found, t_start, t_end = self.found, self.t_start, generated.ended_at
        grounding = await self._grounding(generated.text)
        timings = Timings(
            embed_ms=round(found.embed_ms, 2),
            search_ms=round(found.search_ms, 2),
            prompt_ms=round(self._prompt_ms, 2),
            first_token_ms=round(((generated.first_token_at or t_end) - t_start) * 1000, 2),
            generate_ms=round((t_end - generated.started_at) * 1000, 2),
            total_ms=round((time.perf_counter() - t_start) * 1000, 2),
            prompt_tokens=generated.prompt_tokens,
            completion_tokens=generated.completion_tokens,
            tokens_per_s=generated.tokens_per_s,
            cached_prompt_tokens=generated.cached_tokens,
        )
        return DoneEvent(
            answer=generated.text,
            citations=citations_for(self.plan.pool, self.plan.documents),
            timings=timings,
            finish_reason=generated.finish_reason,
            evidence=grounding.evidence,
            grounded=grounding.grounded,
            unsupported=grounding.unsupported,
            strategy=self.plan.name,
        )

    async def _recorded(self, done: DoneEvent) -> DoneEvent:
        """`done`, marked with its conversation and recorded in it (if it has one)."""
        turn, conversations = self._turn, self._context.conversations
        if turn is None or conversations is None:
            return done
        done = msgspec.structs.replace(
            done, conversation_id=turn.conversation_id, searched=turn.searched
        )
        await conversations.record(turn, done)
        return done
