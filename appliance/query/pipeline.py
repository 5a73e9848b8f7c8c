"""The query service: embed → search → prompt → generate, as an async stream of events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

from appliance.config.schema import PromptStrategy
from appliance.domain.protocols import (
    DocumentCatalog,
    Embedder,
    Generator,
    TokenStream,
    VectorStore,
)
from appliance.domain.types import (
    AnswerEvent,
    DocumentFilter,
    DocumentInfo,
    DoneEvent,
    Hit,
    Timings,
)
from appliance.observability.metrics import Metrics
from appliance.query.context import Sentence, candidates, passages, select_sentences, sentences_of
from appliance.query.draining import Draining
from appliance.query.generation import Generated, GenerationRules, generate
from appliance.query.grounding import Grounding, ground
from appliance.query.params import (
    AnswerSettings,
    AskParams,
    NoLexicalIndex,
    Plan,
    SearchOutcome,
    UnknownStrategy,
    citations_for,
    cosines,
    sentence_key,
)
from appliance.query.prompt import build_prompt
from appliance.query.sentences import answer_sentences

log = logging.getLogger(__name__)
__all__ = [  # the values live in query/params.py; callers may import them from here
    "AnswerSettings", "AskParams", "NoLexicalIndex", "PreparedAnswer", "QueryService",
    "SearchOutcome", "UnknownStrategy", "citations_for",
]  # fmt: skip

# Sentences of the cited passages ranked as evidence at most, for sentence strategies
# (each not yet embedded costs a few ms after the answer; beyond, those sharing most
# words with the question and answer).
MAX_EVIDENCE_POOL = 32


class QueryService:
    def __init__(
        self,
        *,
        embedder: Embedder,
        store: VectorStore,
        generator: Generator,
        metrics: Metrics,
        answers: AnswerSettings,
        deadline_s: float,
        min_score: float = -1.0,
        catalog: DocumentCatalog | None = None,
    ) -> None:
        self._catalog = catalog
        self._embedder = embedder
        self._store = store
        self._generator = generator
        self._metrics = metrics
        self.answers = answers
        self._deadline_s = deadline_s
        self.draining = Draining()
        self.rules = GenerationRules(metrics, self.draining, deadline_s)
        self._min_score = min_score

    def use_embedding(self, embedder: Embedder, store: VectorStore) -> None:
        """Embed questions with another model and search its collection from now on (the
        embedding switch: both at once, so a search never mixes vector spaces)."""
        self._embedder, self._store = embedder, store

    def strategy(self, name: str | None) -> tuple[str, PromptStrategy]:
        name = name or self.answers.default_prompt
        try:
            return name, self.answers.prompts[name]
        except KeyError:
            known = ", ".join(sorted(self.answers.prompts))
            raise UnknownStrategy(f"unknown prompt strategy {name!r} (known: {known})") from None

    async def scope(
        self, document_ids: Sequence[str] | None, filters: DocumentFilter | None
    ) -> Sequence[str] | None:
        """The documents a search may find: `document_ids` and those `filters` admit
        (None: all of them)."""
        if filters is None or self._catalog is None:
            return document_ids
        admitted = await self._catalog.matching(filters)
        if document_ids is None:
            return admitted
        wanted = set(document_ids)
        return [d for d in admitted if d in wanted]

    async def describe(self, hits: Sequence[Hit]) -> dict[str, DocumentInfo]:
        if self._catalog is None or not hits:
            return {}
        return await self._catalog.describe([h.document_id for h in hits])

    async def search(
        self,
        query: str,
        top_k: int,
        document_ids: Sequence[str] | None = None,
        filters: DocumentFilter | None = None,
        *,
        retrieval: str | None = None,
        min_score: float | None = None,
    ) -> SearchOutcome:
        """`retrieval`: "dense" or "hybrid" (None: retrieval.mode); with hybrid, hits are
        ranked by reciprocal rank fusion and `min_score` applies to the dense ranking."""
        embedder, store = self._embedder, self._store  # one model and its collection
        fused = (retrieval or self.answers.retrieval) == "hybrid"
        if fused and not store.hybrid:
            if retrieval == "hybrid":  # asked for by the request: say why not
                raise NoLexicalIndex()
            fused = False  # the config's default, on a collection without BM25 (logged)
        document_ids = await self.scope(document_ids, filters)
        if document_ids is not None and not document_ids:  # the filters admit no document
            return SearchOutcome([], 0.0, 0.0, [], embedder, fused)
        t0 = time.perf_counter()
        [vector] = await embedder.embed([query], interactive=True)
        t1 = time.perf_counter()
        hits = await store.search(
            vector, top_k, document_ids, text=query if fused else None,
            min_score=min_score if fused else None,
        )  # fmt: skip
        t2 = time.perf_counter()
        self._metrics.stage_seconds.labels("embed_query").observe(t1 - t0)
        self._metrics.stage_seconds.labels("search").observe(t2 - t1)
        return SearchOutcome(hits, (t1 - t0) * 1000, (t2 - t1) * 1000, vector, embedder, fused)

    def _max_tokens(self, params: AskParams, strategy: PromptStrategy) -> int:
        wanted = params.max_tokens or strategy.max_tokens or self.answers.max_tokens
        return min(wanted, self.answers.max_tokens_ceiling)

    async def _plan(self, params: AskParams, found: SearchOutcome) -> Plan:
        name, strategy = self.strategy(params.strategy)
        # fused scores are ranks, not cosines: min_score was applied to the dense ranking
        hits = [h for h in found.hits if found.fused or h.score >= self._min_score]
        hits = hits[: strategy.passages]
        budget = strategy.context_tokens or self.answers.context_tokens
        read: list[Sentence] | None = None
        vectors: dict[tuple[str, int], list[float]] = {}
        gen = self._generator
        if strategy.context == "sentences" and hits:
            per_hit = sentences_of(hits)
            pool = candidates(per_hit, params.question, strategy.candidates)
            embedded = await (found.embedder or self._embedder).embed(
                [s.text for s in pool], interactive=True
            )
            vectors = {sentence_key(s): v for s, v in zip(pool, embedded, strict=True)}
            scored = list(zip(pool, cosines(embedded, found.vector), strict=True))
            excerpts, read = await asyncio.to_thread(
                select_sentences,
                per_hit,
                scored,
                strategy,
                count_tokens=lambda text: len(gen.tokenize(text)) - 1,  # minus BOS
                budget=budget,
            )
        else:
            excerpts = passages(hits, strategy)
        prompt = await asyncio.to_thread(
            build_prompt,
            strategy=strategy,
            question=params.question,
            excerpts=excerpts,
            render=gen.render,
            encode=gen.encode,
            n_ctx=gen.n_ctx,
            max_tokens=self._max_tokens(params, strategy),
            context_tokens=budget,
        )
        if read is None:
            return Plan(name, strategy, prompt, prompt.hits, None, vectors, found.embedder)
        kept = {e.hit.point_id for e in prompt.excerpts}  # the excerpts that fit
        read = [s for s in read if s.hit.point_id in kept]
        return Plan(name, strategy, prompt, hits, read, vectors, found.embedder)

    async def prepare(self, params: AskParams) -> PreparedAnswer:
        """Search, build the prompt and queue the generation.

        Raises before anything is streamed (queue full → `Overloaded`, question too
        long → `PromptTooLong`, unknown strategy → `UnknownStrategy`), so an HTTP
        handler can still answer with a status code.
        """
        self.strategy(params.strategy)  # fail fast, before any work
        t_start = time.perf_counter()
        found = await self.search(
            params.question, params.top_k, params.document_ids, params.filters,
            retrieval=params.retrieval, min_score=self._min_score,
        )  # fmt: skip
        t0 = time.perf_counter()
        plan = await self._plan(params, found)
        plan.documents = await self.describe(plan.pool)
        prompt_ms = (time.perf_counter() - t0) * 1000
        self._metrics.stage_seconds.labels("prompt").observe(prompt_ms / 1000)
        stream = self._generator.stream(
            plan.prompt.tokens, max_tokens=plan.prompt.max_tokens,
            temperature=params.temperature, messages=plan.prompt.messages,
        )  # fmt: skip
        return PreparedAnswer(self, params, found, plan, prompt_ms, stream, t_start)

    async def ground(
        self, params: AskParams, plan: Plan, vector: list[float], answer: str
    ) -> Grounding:
        """Evidence and groundedness of `answer` (embeddings on the query path)."""
        sentences = answer_sentences(answer)
        per_hit = sentences_of(plan.pool)
        if plan.read is None:  # passages: the model read every sentence of them
            read = [s for sentences_of_hit in per_hit for s in sentences_of_hit]
            pool = read
        else:
            read = plan.read
            pool = candidates(per_hit, f"{params.question} {answer}", MAX_EVIDENCE_POOL)
        missing = {
            sentence_key(s): s for s in (*pool, *read) if sentence_key(s) not in plan.vectors
        }
        texts = [s.text for s in missing.values()]
        t0 = time.perf_counter()
        # after the answer has streamed: the next askers' query embeddings go first
        embedder = plan.embedder or self._embedder
        embedded = await embedder.embed([*texts, *sentences], interactive=True, urgent=False)
        self._metrics.stage_seconds.labels("ground").observe(time.perf_counter() - t0)
        known = {**plan.vectors, **dict(zip(missing, embedded[: len(texts)], strict=True))}
        a = self.answers
        return ground(
            answer_sentences=sentences,
            answer_vectors=embedded[len(texts) :],
            read=read,
            read_vectors=[known[sentence_key(s)] for s in read],
            pool=pool,
            pool_vectors=[known[sentence_key(s)] for s in pool],
            question_vector=vector,
            citation_of=plan.citation_of(),
            evidence_count=a.evidence_sentences,
            support_cosine=a.support_cosine,
            support_overlap=a.support_overlap,
        )


class PreparedAnswer:
    """A queued answer; iterate `events()` to stream it, `cancel()` to drop it."""

    def __init__(
        self,
        service: QueryService,
        params: AskParams,
        found: SearchOutcome,
        plan: Plan,
        prompt_ms: float,
        stream: TokenStream,
        t_start: float,
    ) -> None:
        self._service = service
        self._metrics = service._metrics
        self._rules = service.rules
        self._params = params
        self.found = found
        self.plan = plan
        self.prompt = plan.prompt
        self._prompt_ms = prompt_ms
        self._stream = stream
        self._t_start = t_start

    async def cancel(self) -> None:
        await self._stream.aclose()

    def events(self) -> AsyncGenerator[AnswerEvent, None]:
        """Token events, then one done event; or an error event if generation fails."""
        return self._rules.tracked(self._events())

    async def _events(self) -> AsyncGenerator[AnswerEvent, None]:
        t_start = self._t_start
        generation = generate(
            self._rules, self._stream, len(self.prompt.tokens), t_start=t_start, answer=True
        )
        async with aclosing(generation):
            async for event in generation:
                if isinstance(event, Generated):
                    yield await self._done(event)
                else:
                    yield event

    async def _done(self, generated: Generated) -> DoneEvent:
        found, t_start = self.found, self._t_start
        try:
            grounding = await self._service.ground(
                self._params, self.plan, found.vector, generated.text
            )
            self._metrics.answer_grounded.observe(grounding.grounded)
        except Exception:  # embedder overloaded or stopped: the answer still stands
            log.warning("evidence and grounding failed", exc_info=True)
            grounding = Grounding([], 0.0, [])
        t_done, t_end = time.perf_counter(), generated.ended_at
        timings = Timings(
            embed_ms=round(found.embed_ms, 2),
            search_ms=round(found.search_ms, 2),
            prompt_ms=round(self._prompt_ms, 2),
            first_token_ms=round(((generated.first_token_at or t_end) - t_start) * 1000, 2),
            generate_ms=round((t_end - generated.started_at) * 1000, 2),
            total_ms=round((t_done - t_start) * 1000, 2),
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
