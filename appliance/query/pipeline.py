"""The query service: search → prompt → generate, as an async stream of events, for
answers (`ask`, every transport's one path) and plain chat (`chat`)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from appliance.config.prompts import REQUEST_STRATEGIES, PromptStrategy
from appliance.domain.errors import Overloaded
from appliance.domain.protocols import Embedder, Generator, VectorStore
from appliance.domain.types import Hit
from appliance.observability.metrics import Metrics
from appliance.query.answer import AnswerContext, PreparedAnswer
from appliance.query.answer_plan import AnswerPlan, cosines, sentence_key
from appliance.query.chat import ChatLimits, ChatService
from appliance.query.context import Sentence, candidates, passages, select_sentences, sentences_of
from appliance.query.conversations import ConversationService, Turn
from appliance.query.draining import Draining
from appliance.query.evidence import EvidenceFinder, word_scores
from appliance.query.extract import EXTRACT, ExtractedStream, extractive_answer, no_prompt
from appliance.query.generation import GenerationRules
from appliance.query.grounding import Grounding
from appliance.query.params import GENERATE, AnswerSettings, AskParams, UnknownStrategy
from appliance.query.prompt import build_prompt
from appliance.query.search import Searcher, SearchOutcome
from appliance.query.vector_cache import VectorCache
from appliance.store.journal import Journal

__all__ = ["AnswerSettings", "AskParams", "PreparedAnswer", "QueryService"]  # build, tests


class QueryService:
    def __init__(
        self,
        *,
        embedder: Embedder,
        store: VectorStore,
        generator: Generator,
        metrics: Metrics,
        answers: AnswerSettings,
        catalog: Journal | None = None,
    ) -> None:
        """`catalog`: the journal (filters, citations' metadata, conversations)."""
        g, deadline_s = answers.generation, answers.generation.deadline_s
        vectors = VectorCache()  # the question's and the sentences' embeddings, remembered
        mode = answers.retrieval.mode
        self.searcher = Searcher(embedder, store, metrics, mode, catalog, vectors)
        self._generator = generator
        self._metrics = metrics
        self.answers = answers
        self.draining = Draining()
        self._min_score = answers.retrieval.min_score
        rules = GenerationRules(metrics, self.draining, deadline_s)
        conversations = ConversationService(catalog) if catalog is not None else None
        evidence = EvidenceFinder(answers, metrics, vectors)
        self._answer = AnswerContext(rules, evidence, conversations)
        limits = ChatLimits(g.max_tokens, g.max_tokens_ceiling, deadline_s)
        self.chat = ChatService(generator, metrics, self.draining, limits)  # rag: false

    def use_embedding(self, embedder: Embedder, store: VectorStore) -> None:
        """Embed questions with another model and search its collection from now on (the
        embedding switch: both at once, so a search never mixes vector spaces)."""
        self.searcher.use_embedding(embedder, store)

    def strategy(self, name: str | None) -> tuple[str, PromptStrategy]:
        """The named prompt strategy (None: the default); `extract` is not one."""
        name = name or self.answers.generation.prompt
        try:
            return name, self.answers.prompts[name]
        except KeyError:
            known = ", ".join(sorted({*self.answers.prompts, *REQUEST_STRATEGIES}))
            raise UnknownStrategy(f"unknown prompt strategy {name!r} (known: {known})") from None

    async def ask(self, params: AskParams, key_id: str) -> PreparedAnswer:
        """The answer to `params.question` asked with the key `key_id`: a follow-up in its
        conversation (`params.conversation_id`) is searched with the question before it,
        and the answer is recorded there. Every transport calls this.

        Raises before anything is streamed (a queue of the search full → `Overloaded`,
        question too long → `PromptTooLong`, unknown strategy → `UnknownStrategy`), so an
        HTTP handler can still answer with a status code. When the generation queue is full,
        the answer is the extractive one, finishing "busy" (`retry_after` set)."""
        conversations = self._answer.conversations
        turn: Turn | None = None
        if params.conversation_id is not None and conversations is not None:
            turn = await conversations.begin(key_id, params.conversation_id, params.question)
            params = dataclasses.replace(params, question=turn.searched)
        return await self.prepare(params, turn)

    async def prepare(self, params: AskParams, turn: Turn | None = None) -> PreparedAnswer:
        """Search, build the prompt and queue the generation (no conversation: `ask`)."""
        wanted = params.strategy
        if wanted is None:
            wanted = self.answers.default_mode
        if wanted == GENERATE:  # the default prompt, whatever answer_mode says
            wanted = None
        extract = wanted == EXTRACT
        name, strategy = self.strategy(None if extract else wanted)  # fail fast
        t_start = time.perf_counter()
        found = await self.searcher.search(
            params.question, params.top_k, params.document_ids, params.filters,
            retrieval=params.retrieval, min_score=self._min_score,
            collections=params.collections,
        )  # fmt: skip
        if extract:
            return await self._extract(params, found, strategy, t_start, turn)
        t0 = time.perf_counter()
        plan = await self._plan(params, found, name, strategy)
        plan.documents = await self.searcher.describe(plan.pool)
        prompt_ms = (time.perf_counter() - t0) * 1000
        self._metrics.stage_seconds.labels("prompt").observe(prompt_ms / 1000)
        try:
            stream = self._generator.stream(
                plan.prompt.tokens, max_tokens=plan.prompt.max_tokens,
                temperature=params.temperature, messages=plan.prompt.messages,
                favour=" ".join(e.text for e in plan.prompt.excerpts),
                favour_bias=strategy.copy_bias,
            )  # fmt: skip
        except Overloaded as busy:  # every slot and the queue taken: the words wait, not the answer
            self._metrics.rejections.labels("generation").inc()
            return await self._extract(
                params, found, strategy, t_start, turn, known=plan.vectors, busy=busy,
                by_words=plan.by_words,
            )  # fmt: skip
        return PreparedAnswer(
            self._answer, params.question, found, plan, prompt_ms, stream, t_start, turn
        )

    async def _extract(
        self,
        params: AskParams,
        found: SearchOutcome,
        strategy: PromptStrategy,
        t_start: float,
        turn: Turn | None,
        *,
        known: dict[tuple[str, int], list[float]] | None = None,
        busy: Overloaded | None = None,
        by_words: bool = False,
    ) -> PreparedAnswer:
        """The extractive answer: the first evidence, quoted (the default strategy's passages
        and candidates; no prompt, no chat model). `known`: sentence embeddings already made
        for these passages; `busy`: the queue's refusal it stands in for (finish "busy");
        `by_words`: the candidates were ranked by words (the query embeddings were busy)."""
        t0 = time.perf_counter()
        embedder = found.embedder or self.searcher.embedder
        hits = self._context_hits(found, strategy)
        plan = AnswerPlan(EXTRACT, strategy, no_prompt([]), hits, None, dict(known or {}), embedder)
        plan.by_words = by_words
        first = await self._answer.evidence.first(params.question, plan, found.vector)
        plan.read = plan.candidates  # what the answer was drawn from, for grounding
        plan.documents = await self.searcher.describe(plan.pool)
        prompt_ms = (time.perf_counter() - t0) * 1000
        self._metrics.stage_seconds.labels("prompt").observe(prompt_ms / 1000)
        stream = ExtractedStream(extractive_answer(first, plan.pool), "busy" if busy else "stop")
        answer = PreparedAnswer(
            self._answer, params.question, found, plan, prompt_ms, stream, t_start, turn, first
        )
        answer.retry_after = busy.retry_after if busy else None
        return answer

    def _context_hits(self, found: SearchOutcome, strategy: PromptStrategy) -> list[Hit]:
        """The hits a strategy reads: above `min_score` (fused scores are ranks, not cosines:
        min_score was applied to the dense ranking), its `passages` best."""
        hits = [h for h in found.hits if found.fused or h.score >= self._min_score]
        return hits[: strategy.passages]

    async def ground(
        self, params: AskParams, plan: AnswerPlan, vector: list[float], answer: str
    ) -> Grounding:
        """Evidence and groundedness of `answer` (embeddings on the query path)."""
        return await self._answer.evidence.ground(params.question, plan, vector, answer)

    def _max_tokens(self, params: AskParams, strategy: PromptStrategy) -> int:
        wanted = params.max_tokens or strategy.max_tokens or self.answers.generation.max_tokens
        return min(wanted, self.answers.generation.max_tokens_ceiling)

    async def _plan(
        self, params: AskParams, found: SearchOutcome, name: str, strategy: PromptStrategy
    ) -> AnswerPlan:
        hits = self._context_hits(found, strategy)
        budget = strategy.context_tokens or self.answers.retrieval.context_tokens
        read: list[Sentence] | None = None
        pool: list[Sentence] = []
        vectors: dict[tuple[str, int], list[float]] = {}
        gen = self._generator
        embedder = found.embedder or self.searcher.embedder
        by_words = False
        if strategy.context == "sentences" and hits:
            per_hit = sentences_of(hits)
            pool = candidates(per_hit, params.question, strategy.candidates)
            if by_words := self._answer.evidence.by_words_now():  # under load: no waiting
                scored = list(zip(pool, word_scores(params.question, pool), strict=True))
            else:
                embedded = await self.searcher.vectors.embed(embedder, [s.text for s in pool])
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
            return AnswerPlan(name, strategy, prompt, prompt.hits, None, vectors, embedder)
        kept = {e.hit.point_id for e in prompt.excerpts}  # the excerpts that fit
        read = [s for s in read if s.hit.point_id in kept]
        return AnswerPlan(
            name, strategy, prompt, hits, read, vectors, embedder, candidates=pool,
            by_words=by_words,
        )  # fmt: skip
