"""The one generation loop: a queued token stream read to its end under the deadline
and graceful shutdown, as events. Answers (`query/answer.py`) and plain chat
(`query/chat.py`) both run it, so a failure reaches either client the same way: an
`ApplianceError` (an external server's 502 or 503) with its own status and code, the
deadline as 504, shutdown as 503 `shutting_down`, anything else as 500."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar, cast

from appliance.domain.errors import ApplianceError
from appliance.domain.protocols import TokenStream
from appliance.domain.types import ErrorEvent, FinishReason, TokenEvent
from appliance.observability.metrics import Metrics
from appliance.query.draining import SHUTTING_DOWN, Draining
from appliance.query.sentence_limit import SentenceLimit

E = TypeVar("E")
Done = TypeVar("Done")


@dataclass(frozen=True)
class GenerationRules:
    """What every generation runs under: its metrics, graceful shutdown, the deadline."""

    metrics: Metrics
    draining: Draining
    deadline_s: float

    async def tracked(self, events: AsyncGenerator[E, None]) -> AsyncGenerator[E, None]:
        """`events`, counted as a running stream until the last one is out (shutdown
        waits for it, evidence included)."""
        self.draining.enter()
        try:
            async with aclosing(events):
                async for event in events:
                    yield event
        finally:
            self.draining.leave()


@dataclass(frozen=True)
class Generated:
    """How a generation ended, after its last token."""

    text: str  # the pieces joined, without surrounding whitespace
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    first_token_at: float | None  # time.perf_counter() of the first piece
    started_at: float  # when the stream was first read
    ended_at: float

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.ended_at - (self.first_token_at or self.ended_at)
        n = self.completion_tokens
        return round((n - 1) / decode_s, 2) if n > 1 and decode_s > 0 else 0.0


async def generate(
    rules: GenerationRules,
    stream: TokenStream,
    prompt_tokens: int,
    *,
    t_start: float,
    answer: bool,
    limit: SentenceLimit | None = None,
) -> AsyncGenerator[TokenEvent | ErrorEvent | Generated, None]:
    """Token events, then `Generated`; or an `ErrorEvent` (the last event) if generation
    fails. `answer`: counted as a question (`appliance_questions_total`, time to first
    token from `t_start`), as plain chat is not. `limit`: the answer stops (finish "stop")
    once it has said that many sentences. The stream is closed in every case."""
    metrics, draining, deadline_s = rules.metrics, rules.draining, rules.deadline_s
    pieces: list[str] = []
    first_token_at: float | None = None
    t_gen = time.perf_counter()
    metrics.active_generations.inc()
    outcome = "cancelled"
    read = 0  # pieces read: the tokens of an answer stopped at its sentence limit
    try:
        async with draining.deadline(deadline_s):
            async for piece in stream:
                read += 1
                if limit is not None:
                    piece = limit.feed(piece)
                    if limit.reached and not piece:
                        break
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                    if answer:
                        metrics.time_to_first_token.observe(first_token_at - t_start)
                pieces.append(piece)
                yield TokenEvent(piece)
                if limit is not None and limit.reached:
                    break
        outcome = "ok"
    except TimeoutError:
        if draining.started:
            outcome = SHUTTING_DOWN
            yield ErrorEvent(
                "the server is shutting down: the answer was stopped; ask again shortly",
                503,
                SHUTTING_DOWN,
            )
        else:
            outcome = "timeout"
            yield ErrorEvent(
                f"the answer took longer than generation.deadline_s={deadline_s}s", 504
            )
        return
    except ApplianceError as exc:  # e.g. the external generation server: 502/503
        outcome = "error"
        yield ErrorEvent(f"generation failed: {exc.detail}", exc.status, exc.code)
        return
    except Exception as exc:
        outcome = "error"
        yield ErrorEvent(f"generation failed: {exc}", 500)
        return
    finally:
        metrics.active_generations.dec()
        if answer:
            metrics.questions.labels(outcome).inc()
        await stream.aclose()
    t_end = time.perf_counter()
    stopped = limit is not None and limit.reached
    finish = "stop" if stopped else stream.finish_reason or "cancelled"
    # stopped: the engine's own count never came (the stream was closed before its end)
    completion_tokens = max(stream.completion_tokens, read) if stopped else stream.completion_tokens
    metrics.stage_seconds.labels("generate").observe(t_end - t_gen)
    metrics.tokens_generated.inc(completion_tokens)
    metrics.prompt_tokens.inc(prompt_tokens - stream.cached_tokens)
    metrics.prompt_tokens_cached.inc(stream.cached_tokens)
    yield Generated(
        text="".join(pieces).strip(),
        finish_reason=cast(FinishReason, finish),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=stream.cached_tokens,
        first_token_at=first_token_at,
        started_at=t_gen,
        ended_at=t_end,
    )


@dataclass(eq=False)
class QueuedGeneration(Generic[Done]):
    """A queued generation; iterate `events()` to stream it, `cancel()` to drop it.
    A subclass makes its last event of how it ended (`finished`)."""

    rules: GenerationRules
    stream: TokenStream
    prompt_tokens: int
    t_start: float
    answer: ClassVar[bool] = False  # counted as a question (see `generate`)
    sentences: int = 0  # the answer stops after this many sentences (0: no limit)

    async def cancel(self) -> None:
        await self.stream.aclose()

    def events(self) -> AsyncGenerator[TokenEvent | ErrorEvent | Done, None]:
        """Token events, then one done event; or an error event if generation fails."""
        return self.rules.tracked(self._events())

    async def finished(self, generated: Generated) -> Done:
        raise NotImplementedError

    async def _events(self) -> AsyncGenerator[TokenEvent | ErrorEvent | Done, None]:
        generation = generate(
            self.rules, self.stream, self.prompt_tokens, t_start=self.t_start,
            answer=self.answer, limit=SentenceLimit(self.sentences) if self.sentences else None,
        )  # fmt: skip
        async with aclosing(generation):
            async for event in generation:
                yield await self.finished(event) if isinstance(event, Generated) else event
