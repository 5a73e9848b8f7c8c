"""The engine thread on the real default models: embeddings, streaming, cancel, overload."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.domain.errors import Overloaded, WorkerStopped
from appliance.engine.build import EngineSpec, build_engine
from appliance.engine.embedder import LlamaEmbedder
from appliance.engine.embedder import embedding_model as make_embedding_model
from appliance.engine.engine_thread import LlamaEngineThread
from appliance.engine.generator import TokenStream
from appliance.engine.llama_loader import load_llama
from appliance.engine.llama_params import EngineConfigError

pytestmark = pytest.mark.slow


class Engine:
    """The engine as the server builds it (`build_engine`), with a test's sizes."""

    def __init__(
        self,
        chat: Path,
        embed: Path,
        queue_size: int = 4,
        slots: int = 1,
        unified: bool = False,
        nice: int = 0,
        prefix_cache: bool = True,
    ) -> None:
        built = build_engine(
            EngineSpec(
                chat_path=chat,
                embedding_path=embed,
                chat_ctx=1024,
                slots=slots,
                unified_kv=unified,
                queue_size=queue_size,
                thread_nice=nice,
                prefix_cache=prefix_cache,
            )
        ).start()
        self.thread = built.thread
        self.embedder = built.embedder
        self.generator = built.generator


@pytest.fixture(scope="module")
def engine(chat_model: Path, embedding_model: Path) -> AsyncIterator[Engine]:
    e = Engine(chat_model, embedding_model, queue_size=1, nice=NICE)
    yield e  # type: ignore[misc]
    e.thread.stop()


NICE = 7


def test_only_the_llama_threads_are_niced(engine: Engine) -> None:
    """The engine thread (and the compute threads it starts) yield to the event loop."""
    tid = engine.thread.native_id
    assert tid is not None
    assert os.getpriority(os.PRIO_PROCESS, tid) == os.getpriority(os.PRIO_PROCESS, 0) + NICE


def prompt(engine: Engine, question: str) -> list[int]:
    return engine.generator.encode([{"role": "user", "content": question}])


def test_embeddings_are_unit_vectors(engine: Engine) -> None:
    async def run() -> list[list[float]]:
        return await engine.embedder.embed(["hello world", "pallets of paint"], interactive=True)

    vectors = np.asarray(asyncio.run(run()))
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_greedy_stream_matches_plain_llama_cpp(engine: Engine, chat_model: Path) -> None:
    tokens = prompt(engine, "Name three colours.")

    async def run() -> list[str]:
        stream = engine.generator.stream(tokens, max_tokens=24, temperature=0.0)
        return [piece async for piece in stream]

    pieces = asyncio.run(run())
    assert len(pieces) > 1  # streamed, not one blob
    plain = load_llama(str(chat_model), n_ctx=1024, n_batch=256, n_threads=2)
    expected = plain.create_completion(tokens, max_tokens=24, temperature=0.0)
    assert "".join(pieces) == expected["choices"][0]["text"]


def test_copy_bias_matches_plain_llama_cpp_logit_bias(engine: Engine, chat_model: Path) -> None:
    """The copy bias (`favour`) is llama.cpp's logit bias on the tokens of the favoured
    text: the same answer as llama-cpp-python's own `logit_bias`, and not the plain one."""
    tokens = prompt(engine, "Name three colours.")
    favour = "The walrus ate seventeen turquoise pancakes."
    favoured = [t for t, _ in engine.generator.copy_bias(favour, 4.0)]

    async def run(bias: float) -> str:
        stream = engine.generator.stream(
            tokens, max_tokens=24, temperature=0.0, favour=favour, favour_bias=bias
        )
        return "".join([piece async for piece in stream])

    biased, unbiased = asyncio.run(run(4.0)), asyncio.run(run(0.0))
    plain = load_llama(str(chat_model), n_ctx=1024, n_batch=256, n_threads=2)
    expected = plain.create_completion(
        tokens, max_tokens=24, temperature=0.0, logit_bias={t: 4.0 for t in favoured}
    )
    assert biased == expected["choices"][0]["text"]
    assert biased != unbiased


def test_a_document_cannot_favour_the_templates_control_tokens(engine: Engine) -> None:
    """The favoured text is a document's: its "<|im_end|>" is favoured as characters, never
    as the control token that would end the answer (or any other special token)."""
    vocab = engine.generator._vocab
    specials = {vocab.token_eos(), *vocab.tokenize(b"<|im_end|><|im_start|>", False, True)}
    favoured = {t for t, _ in engine.generator.copy_bias("x <|im_end|><|im_start|>system", 3.0)}
    assert favoured and not favoured & specials
    assert engine.generator.copy_bias("", 3.0) == engine.generator.copy_bias("x", 0.0) == ()


def test_a_logit_bias_outside_the_vocabulary_is_left_out(engine: Engine) -> None:
    """A token id past the vocabulary would index past llama.cpp's logits: the engine
    drops it (no abort) and answers as without it."""
    tokens = prompt(engine, "Say yes.")

    async def run(bias: tuple[tuple[int, float], ...]) -> str:
        job = engine.thread.submit_generate(tokens, 8, 0.0, bias)
        stream = TokenStream(job)
        return "".join([piece async for piece in stream])

    assert asyncio.run(run(((10**9, 5.0), (-1, 5.0)))) == asyncio.run(run(()))


async def answer(generator: Any, tokens: list[int], max_tokens: int) -> tuple[str, Any]:
    stream = generator.stream(tokens, max_tokens=max_tokens, temperature=0.0)
    text = "".join([piece async for piece in stream])
    return text, stream


def test_token_counts_and_finish_reason_count_tokens_not_pieces(
    engine: Engine, chat_model: Path
) -> None:
    """A non-ASCII answer: several tokens make one character, so pieces < tokens."""
    tokens = prompt(engine, "Repeat exactly: 日本語の文章です。日本語の文章です。")

    async def run() -> tuple[list[str], Any]:
        stream = engine.generator.stream(tokens, max_tokens=40, temperature=0.0)
        return [piece async for piece in stream], stream

    pieces, stream = asyncio.run(run())
    text = "".join(pieces)
    plain = load_llama(str(chat_model), n_ctx=1024, n_batch=256, n_threads=2)
    expected = plain.create_completion(tokens, max_tokens=40, temperature=0.0)
    assert text == expected["choices"][0]["text"]
    assert any(ord(ch) > 0x2E80 for ch in text)  # CJK: multi-token characters are in it
    assert len(pieces) < 40  # counting pieces would undercount (the old bug)
    assert stream.completion_tokens == expected["usage"]["completion_tokens"] == 40
    assert stream.finish_reason == expected["choices"][0]["finish_reason"] == "length"
    _, stream = asyncio.run(answer(engine.generator, prompt(engine, "Say yes."), 200))
    assert stream.finish_reason == "stop" and 0 < stream.completion_tokens < 200


def test_a_stream_closed_early_still_tells_the_prefix_it_reused(engine: Engine) -> None:
    """The sentence stop closes most answers before their end: they get no `Finished`, yet
    the prompt tokens they reused from the slot's cache are known (the done event's
    `cached_prompt_tokens`, the prompt-token metrics). Before: 0 for every one of them."""
    system = {"role": "system", "content": "Answer in one word, then explain at length."}

    async def ask(question: str, pieces: int) -> int:
        tokens = engine.generator.encode([system, {"role": "user", "content": question}])
        stream = engine.generator.stream(tokens, max_tokens=32, temperature=0.0)
        read = 0
        async for _ in stream:
            read += 1
            if read == pieces:
                await stream.aclose()
                break
        return int(stream.cached_tokens)

    asyncio.run(ask("What colour is the sky?", 0))  # the system turn now in the cache
    early = asyncio.run(ask("What colour is grass?", 2))
    to_the_end = asyncio.run(ask("What colour is snow?", 0))
    assert early > 10 and early == to_the_end


def test_prefix_cache_answers_match_a_cold_run(chat_model: Path, embedding_model: Path) -> None:
    """Prompts sharing a system prompt reuse its KV cells; greedy tokens do not change."""
    system = "You answer questions about the server room. " * 8
    questions = ["Where are the backups kept?", "Who may enter the server room?", "Why?"]

    def prompts(e: Engine) -> list[list[int]]:
        return [
            e.generator.encode(
                [{"role": "system", "content": system}, {"role": "user", "content": q}]
            )
            for q in questions
        ]

    def run(e: Engine) -> list[tuple[str, int]]:
        out = []
        for tokens in prompts(e):
            text, stream = asyncio.run(answer(e.generator, tokens, 24))
            out.append((text, stream.cached_tokens))
        return out

    warm = Engine(chat_model, embedding_model, slots=1, prefix_cache=True)
    try:
        cached = run(warm)
    finally:
        warm.thread.stop()
    cold = Engine(chat_model, embedding_model, slots=1, prefix_cache=False)
    try:
        uncached = run(cold)
    finally:
        cold.thread.stop()
    shared = len(prompts(cold)[0]) - 20
    assert cached[0][1] == 0  # nothing to reuse for the first question
    assert all(n >= shared for _, n in cached[1:])  # the system prompt was not read again
    assert all(n == 0 for _, n in uncached)
    assert [t for t, _ in cached] == [t for t, _ in uncached]


def test_query_embedding_is_not_stuck_behind_a_generation(engine: Engine) -> None:
    tokens = prompt(engine, "Write a long story about a lighthouse keeper.")

    async def run() -> int:
        stream = engine.generator.stream(tokens, max_tokens=200, temperature=0.0)
        it = aiter(stream)
        await anext(it)  # generation is running
        await engine.embedder.embed(["where is the printer?"], interactive=True)
        return len([p async for p in it])

    # the generation was still going (many tokens left) when the embedding was answered
    assert asyncio.run(run()) > 50


def test_answers_advance_between_interactive_embeddings(engine: Engine) -> None:
    """A burst of interactive texts (an answer's evidence, `/v1/embeddings` batches) does
    not hold a streaming answer still: a decode step runs between two of them. An order,
    read from the pieces that had arrived when each embedding was answered; no timing."""
    tokens = prompt(engine, "Write a long story about a lighthouse keeper.")

    async def run() -> list[int]:
        it = aiter(engine.generator.stream(tokens, max_tokens=200, temperature=0.0))
        await anext(it)  # generation is running
        seen = 0
        counts: list[int] = []

        async def read() -> None:
            nonlocal seen
            async for _ in it:
                seen += 1

        reader = asyncio.ensure_future(read())

        async def one(i: int) -> None:
            await engine.embedder.embed([f"text {i} " * 40], interactive=True, urgent=False)
            counts.append(seen)

        await asyncio.gather(*(one(i) for i in range(6)))
        await reader
        return counts

    counts = asyncio.run(run())
    # before: the six ran back to back between two steps (one or two distinct counts)
    assert len(set(counts)) >= 5, counts


def test_cancel_frees_the_engine_and_overload_is_immediate(engine: Engine) -> None:
    tokens = prompt(engine, "Count from one to one thousand.")

    async def run() -> None:
        first = engine.generator.stream(tokens, max_tokens=500, temperature=0.0)
        await anext(aiter(first))
        waiting = engine.generator.stream(tokens, max_tokens=5, temperature=0.0)
        with pytest.raises(Overloaded):  # queue_size=1: one active, one waiting
            engine.generator.stream(tokens, max_tokens=5, temperature=0.0)
        await first.aclose()
        pieces = [p async for p in waiting]
        assert pieces
        for _ in range(3000):  # a hang guard (30 s): the thread ends it at its next step
            if engine.thread.active_generations == 0:
                break
            await asyncio.sleep(0.01)
        assert engine.thread.active_generations == 0

    asyncio.run(run())


def test_prompt_beyond_context_is_refused_before_llama_cpp(engine: Engine) -> None:
    async def run() -> None:
        with pytest.raises(EngineConfigError, match="n_ctx"):
            engine.generator.stream(list(range(1000)), max_tokens=100, temperature=0.0)

    asyncio.run(run())


@pytest.fixture(scope="module")
def batched(chat_model: Path, embedding_model: Path) -> AsyncIterator[Engine]:
    # per-slot KV caches (the default): batching must not change a token
    e = Engine(chat_model, embedding_model, queue_size=8, slots=4, unified=False)
    yield e  # type: ignore[misc]
    e.thread.stop()


QUESTIONS = [
    "Name three colours.",
    "What is the capital of France?",
    "Write a haiku about servers.",
    "Explain what a backup is in one sentence.",
    "List two kinds of fruit.",
    "Why is the sky blue?",
]


# How far below the best logit a batched greedy token may be. llama.cpp is not
# batch-invariant on every CPU: another batch shape takes other kernels. Measured on
# an AVX2 EPYC: batched tokens sit up to 0.26 below the lone model's best (a near-tie
# flipped), and a lone answer teacher-forced in one batch up to 0.14; a token of
# another question's answer sits 6-15 below. Bit-equality holds on some machines only.
NEAR_TIE = 0.5


def greedy_shortfalls(plain: Any, prompt_tokens: list[int], answer_text: str) -> list[float]:
    """Teacher-force `answer_text` after the prompt on a lone model: for each answer
    token, how far its logit is below the best one at that position (0 = the argmax)."""
    answer_tokens = plain.tokenize(answer_text.encode("utf-8"), add_bos=False, special=False)
    plain.reset()
    plain.eval(prompt_tokens + answer_tokens)
    start = len(prompt_tokens) - 1
    shortfalls = []
    for i, token in enumerate(answer_tokens):
        logits = np.asarray(plain.scores[start + i])
        shortfalls.append(float(logits.max() - logits[token]))
    return shortfalls


def test_batched_greedy_matches_each_prompt_alone(batched: Engine, chat_model: Path) -> None:
    """6 streams on 4 slots (two join while others decode): every token each batched
    stream picks is the lone model's greedy choice, up to floating-point near-ties."""
    prompts = [prompt(batched, q) for q in QUESTIONS]

    async def alone(tokens: list[int]) -> str:
        stream = batched.generator.stream(tokens, max_tokens=32, temperature=0.0)
        return "".join([p async for p in stream])

    async def together() -> list[str]:
        return list(await asyncio.gather(*(alone(t) for t in prompts)))

    expected = [asyncio.run(alone(t)) for t in prompts]
    got = asyncio.run(together())  # who joins when depends on timing
    plain = load_llama(str(chat_model), n_ctx=1024, n_batch=256, n_threads=2, logits_all=True)
    for question, tokens, text, lone in zip(QUESTIONS, prompts, got, expected, strict=True):
        assert text, question
        assert max(greedy_shortfalls(plain, tokens, lone)) <= NEAR_TIE, question
        worst = max(greedy_shortfalls(plain, tokens, text))
        assert worst <= NEAR_TIE, (question, worst, text, lone)
    # the check can fail: another question's answer, forced after this prompt, is far off
    assert max(greedy_shortfalls(plain, prompts[1], expected[0])) > 4 * NEAR_TIE


def test_streams_advance_together(batched: Engine) -> None:
    """While one long answer runs, a second one gets tokens too (not after it)."""
    tokens = prompt(batched, "Write a long story about a lighthouse keeper.")

    async def run() -> tuple[int, int]:
        long_stream = aiter(batched.generator.stream(tokens, max_tokens=200, temperature=0.0))
        await anext(long_stream)
        short = [p async for p in batched.generator.stream(tokens, max_tokens=20, temperature=0.0)]
        rest = [p async for p in long_stream]
        return len(short), len(rest)

    short, rest = asyncio.run(run())
    assert short > 0
    assert rest > 100  # the long answer was still going when the short one finished


def test_queries_are_not_stuck_behind_ingestion(engine: Engine) -> None:
    """A query embedding submitted after a large ingestion batch finishes long before it."""
    texts = [
        f"Chunk number {i} about racks, cables and cooling in the server room." for i in range(300)
    ]

    async def run() -> bool:
        background = asyncio.ensure_future(engine.embedder.embed(texts, interactive=False))
        await asyncio.sleep(0.05)  # ingestion is running
        await engine.embedder.embed(["where is the printer?"], interactive=True)
        ingestion_still_running = not background.done()
        assert len(await background) == 300
        return ingestion_still_running

    assert asyncio.run(run())  # the query was answered in the middle of the ingestion batch


def test_unified_cache_serves_concurrent_streams(chat_model: Path, embedding_model: Path) -> None:
    """The optional shared KV cache: every stream completes, slots are reused, none leaks."""
    e = Engine(chat_model, embedding_model, queue_size=8, slots=3, unified=True)
    try:
        prompts = [prompt(e, q) for q in QUESTIONS]

        async def one(tokens: list[int]) -> str:
            stream = e.generator.stream(tokens, max_tokens=24, temperature=0.0)
            return "".join([p async for p in stream])

        async def together() -> list[str]:
            return list(await asyncio.gather(*(one(t) for t in prompts)))

        answers = asyncio.run(together())  # 6 streams on 3 slots
        assert all(a.strip() for a in answers)
        assert e.thread.active_generations == 0
    finally:
        e.thread.stop()


def test_short_texts_embed_on_one_thread_with_the_same_vectors(embedding_model: Path) -> None:
    """Queries take one thread (faster for tiny graphs here), chunks all; vectors agree."""
    model = make_embedding_model(embedding_model, n_ctx=512, n_threads=2, train_ctx=512)
    context = model.context()
    plain = load_llama(
        str(embedding_model), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2
    )
    short = "How often are backups taken?"
    long = " ".join(["The nightly job copies every volume to the storage array."] * 8)
    for text, threads in ((short, 1), (long, 2), (short, 1)):
        vector = context.embed_one(text)
        assert context.threads == threads
        expected = plain.embed([text], normalize=True, truncate=True)[0]
        assert float(np.dot(vector, expected)) > 0.99999


def test_queries_go_to_their_own_thread_ingestion_to_the_engine(embedding_model: Path) -> None:
    """With a query thread, a search embedding does not need the engine thread at all;
    ingestion and an answer's evidence (not urgent) run on the engine thread, between
    decode steps, not as a second llama.cpp pool beside them."""
    model = make_embedding_model(embedding_model, n_ctx=512, n_threads=2, train_ctx=512)
    idle_engine = LlamaEngineThread(  # never started: only the query thread can answer
        load_chat=lambda: None, load_embedder=model.context, generation_queue_size=1
    )
    embedder = LlamaEmbedder(model, idle_engine, dim=384, query_thread=True)
    embedder.start()
    try:

        async def run() -> list[list[float]]:
            with pytest.raises(WorkerStopped):
                await embedder.embed(["a chunk of a document"], interactive=False)
            with pytest.raises(WorkerStopped):
                await embedder.embed(["a sentence of an answer"], interactive=True, urgent=False)
            return await embedder.embed(["How often are backups taken?"], interactive=True)

        vector = asyncio.run(run())[0]
        expected = model.context().embed_one("How often are backups taken?")
        assert float(np.dot(vector, expected)) > 0.99999
    finally:
        embedder.stop()
