"""The query service: embed → search → prompt → generate, as an async stream of events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from appliance.domain.protocols import Embedder, Generator, TokenStream, VectorStore
from appliance.domain.types import (
    AnswerEvent,
    Citation,
    DoneEvent,
    ErrorEvent,
    Hit,
    Timings,
    TokenEvent,
)
from appliance.observability.metrics import Metrics
from appliance.query.prompt import BuiltPrompt, build_prompt

SNIPPET_CHARS = 300


@dataclass(frozen=True)
class SearchOutcome:
    hits: list[Hit]
    embed_ms: float
    search_ms: float


@dataclass(frozen=True)
class AskParams:
    question: str
    top_k: int
    max_tokens: int
    temperature: float
    document_ids: Sequence[str] | None = None


def citations_for(hits: Sequence[Hit]) -> list[Citation]:
    return [
        Citation(
            index=i,
            document_id=h.document_id,
            file_name=h.file_name,
            chunk_index=h.chunk_index,
            score=round(h.score, 4),
            page=h.page,
            heading=h.heading,
            snippet=h.text[:SNIPPET_CHARS],
        )
        for i, h in enumerate(hits, start=1)
    ]


class QueryService:
    def __init__(
        self,
        *,
        embedder: Embedder,
        store: VectorStore,
        generator: Generator,
        metrics: Metrics,
        system_prompt: str,
        deadline_s: float,
        min_score: float = -1.0,
    ) -> None:
        self._embedder = embedder
        self._store = store
        self._generator = generator
        self._metrics = metrics
        self._system_prompt = system_prompt
        self._deadline_s = deadline_s
        self._min_score = min_score

    async def search(
        self, query: str, top_k: int, document_ids: Sequence[str] | None = None
    ) -> SearchOutcome:
        t0 = time.perf_counter()
        [vector] = await self._embedder.embed([query], interactive=True)
        t1 = time.perf_counter()
        hits = await self._store.search(vector, top_k, document_ids)
        t2 = time.perf_counter()
        self._metrics.stage_seconds.labels("embed_query").observe(t1 - t0)
        self._metrics.stage_seconds.labels("search").observe(t2 - t1)
        return SearchOutcome(hits, (t1 - t0) * 1000, (t2 - t1) * 1000)

    async def _prompt(self, params: AskParams, hits: list[Hit]) -> BuiltPrompt:
        return await asyncio.to_thread(
            build_prompt,
            system_prompt=self._system_prompt,
            question=params.question,
            hits=hits,
            render=self._generator.render,
            tokenize=self._generator.tokenize,
            n_ctx=self._generator.n_ctx,
            max_tokens=params.max_tokens,
        )

    async def prepare(self, params: AskParams) -> PreparedAnswer:
        """Search, build the prompt and queue the generation.

        Raises before anything is streamed (queue full → `Overloaded`, question too
        long → `PromptTooLong`), so an HTTP handler can still answer with a status code.
        """
        t_start = time.perf_counter()
        found = await self.search(params.question, params.top_k, params.document_ids)
        t0 = time.perf_counter()
        relevant = [h for h in found.hits if h.score >= self._min_score]
        prompt = await self._prompt(params, relevant)
        prompt_ms = (time.perf_counter() - t0) * 1000
        self._metrics.stage_seconds.labels("prompt").observe(prompt_ms / 1000)
        stream = self._generator.stream(
            prompt.tokens, max_tokens=prompt.max_tokens, temperature=params.temperature
        )
        return PreparedAnswer(self, found, prompt, prompt_ms, stream, t_start)


class PreparedAnswer:
    """A queued answer; iterate `events()` to stream it, `cancel()` to drop it."""

    def __init__(
        self,
        service: QueryService,
        found: SearchOutcome,
        prompt: BuiltPrompt,
        prompt_ms: float,
        stream: TokenStream,
        t_start: float,
    ) -> None:
        self._metrics = service._metrics
        self._deadline_s = service._deadline_s
        self.found = found
        self.prompt = prompt
        self._prompt_ms = prompt_ms
        self._stream = stream
        self._t_start = t_start

    async def cancel(self) -> None:
        await self._stream.aclose()

    async def events(self) -> AsyncGenerator[AnswerEvent, None]:
        """Token events, then one done event; or an error event if generation fails."""
        prompt, found, t_start = self.prompt, self.found, self._t_start
        pieces: list[str] = []
        first_token_at: float | None = None
        t_gen = time.perf_counter()
        self._metrics.active_generations.inc()
        outcome = "cancelled"
        try:
            async with asyncio.timeout(self._deadline_s):
                async for piece in self._stream:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                        self._metrics.time_to_first_token.observe(first_token_at - t_start)
                    pieces.append(piece)
                    yield TokenEvent(piece)
            outcome = "ok"
        except TimeoutError:
            outcome = "timeout"
            yield ErrorEvent(
                f"the answer took longer than generation.deadline_s={self._deadline_s}s", 504
            )
            return
        except Exception as exc:
            outcome = "error"
            yield ErrorEvent(f"generation failed: {exc}", 500)
            return
        finally:
            self._metrics.active_generations.dec()
            self._metrics.questions.labels(outcome).inc()
            await self._stream.aclose()
        t_end = time.perf_counter()
        n = len(pieces)
        gen_s = t_end - t_gen
        self._metrics.stage_seconds.labels("generate").observe(gen_s)
        self._metrics.tokens_generated.inc(n)
        self._metrics.prompt_tokens.inc(len(prompt.tokens))
        first_ms = ((first_token_at or t_end) - t_start) * 1000
        decode_s = t_end - (first_token_at or t_end)
        timings = Timings(
            embed_ms=round(found.embed_ms, 2),
            search_ms=round(found.search_ms, 2),
            prompt_ms=round(self._prompt_ms, 2),
            first_token_ms=round(first_ms, 2),
            generate_ms=round(gen_s * 1000, 2),
            total_ms=round((t_end - t_start) * 1000, 2),
            prompt_tokens=len(prompt.tokens),
            completion_tokens=n,
            tokens_per_s=round((n - 1) / decode_s, 2) if n > 1 and decode_s > 0 else 0.0,
        )
        yield DoneEvent(
            answer="".join(pieces).strip(),
            citations=citations_for(prompt.hits),
            timings=timings,
            finish_reason="length" if n >= prompt.max_tokens else "stop",
        )
