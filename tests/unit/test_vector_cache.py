"""The query path's vector cache: a text embedded once is not embedded again, askers of a
text under way await that one embedding, an embedding switch never meets the old model's
vectors, and the cache stays within its bound (a counting fake embedder)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from appliance.query.vector_cache import VectorCache


async def settle() -> None:
    """Let the tasks started so far run up to their first wait."""
    for _ in range(5):
        await asyncio.sleep(0)


class CountingFakeEmbedder:
    """A fake `Embedder`: a text's vector from its length and first letter (scaled by
    `scale`, so two fakes give different vectors), each call and text counted; `gate`
    holds every call until set."""

    dim = 3

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.calls: list[tuple[list[str], bool, bool]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    @property
    def texts(self) -> list[str]:
        return [t for batch, _, _ in self.calls for t in batch]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def queue_depth(self) -> int:
        return 0

    async def embed(
        self, texts: Sequence[str], *, interactive: bool, urgent: bool = True
    ) -> list[list[float]]:
        self.calls.append((list(texts), interactive, urgent))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [[self.scale * len(t), self.scale * ord(t[0]), 0.5] for t in texts]


async def test_a_text_is_embedded_once() -> None:
    cache, fake = VectorCache(), CountingFakeEmbedder()
    first = await cache.embed(fake, ["alpha", "beta"])
    again = await cache.embed(fake, ["beta", "alpha", "gamma", "gamma"])
    assert fake.calls == [(["alpha", "beta"], True, True), (["gamma"], True, True)]
    assert again[:2] == [first[1], first[0]] and again[2] == again[3]
    assert again[2] == [5.0, 103.0, 0.5]
    assert (cache.hits, cache.misses, len(cache)) == (2, 3, 3)


async def test_concurrent_askers_await_one_embedding() -> None:
    cache, fake = VectorCache(), CountingFakeEmbedder()
    fake.gate.clear()
    askers = [asyncio.ensure_future(cache.embed(fake, ["same question"])) for _ in range(20)]
    await settle()
    fake.gate.set()
    results = await asyncio.gather(*askers)
    assert fake.texts == ["same question"]
    assert all(r == results[0] for r in results)


async def test_an_asker_who_leaves_does_not_cancel_the_others_embedding() -> None:
    cache, fake = VectorCache(), CountingFakeEmbedder()
    fake.gate.clear()
    leaving = asyncio.ensure_future(cache.embed(fake, ["shared"]))
    await settle()
    staying = asyncio.ensure_future(cache.embed(fake, ["shared"]))
    await settle()
    leaving.cancel()
    fake.gate.set()
    assert await staying == [[6.0, 115.0, 0.5]]
    assert leaving.cancelled() and fake.texts == ["shared"]


async def test_another_embedder_has_its_own_vectors() -> None:
    """The embedding switch hands a new embedder object: never the old model's vectors."""
    cache, old, new = VectorCache(), CountingFakeEmbedder(), CountingFakeEmbedder(scale=2.0)
    assert await cache.embed(old, ["text"]) == [[4.0, 116.0, 0.5]]
    assert await cache.embed(new, ["text"]) == [[8.0, 232.0, 0.5]]
    assert await cache.embed(old, ["text"]) == [[4.0, 116.0, 0.5]]
    assert (old.texts, new.texts) == (["text"], ["text"])


async def test_the_least_recently_used_leave_first() -> None:
    cache, fake = VectorCache(max_entries=2), CountingFakeEmbedder()
    await cache.embed(fake, ["a1", "b1"])
    await cache.embed(fake, ["a1"])  # b1 is now the least recently used
    await cache.embed(fake, ["c1"])
    assert len(cache) == 2
    await cache.embed(fake, ["a1", "c1"])
    assert fake.texts == ["a1", "b1", "c1"]
    await cache.embed(fake, ["b1"])
    assert fake.texts == ["a1", "b1", "c1", "b1"]


async def test_a_failed_embedding_reaches_every_asker_and_is_not_kept() -> None:
    cache, fake = VectorCache(), CountingFakeEmbedder()
    fake.gate.clear()
    fake.fail = RuntimeError("queue full")
    askers = [asyncio.ensure_future(cache.embed(fake, ["x"])) for _ in range(3)]
    await settle()
    fake.gate.set()
    outcomes = await asyncio.gather(*askers, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    fake.fail = None
    assert await cache.embed(fake, ["x"]) == [[1.0, 120.0, 0.5]]
    assert fake.texts == ["x", "x"]


async def test_an_urgent_asker_does_not_wait_for_evidence_after_an_answer() -> None:
    """Grounding (urgent=False) yields to the next askers' queries: they never await it."""
    cache, fake = VectorCache(), CountingFakeEmbedder()
    fake.gate.clear()
    late = asyncio.ensure_future(cache.embed(fake, ["sentence"], urgent=False))
    await settle()
    urgent = asyncio.ensure_future(cache.embed(fake, ["sentence"]))
    await settle()
    assert [u for _, _, u in fake.calls] == [False, True]
    also_late = asyncio.ensure_future(cache.embed(fake, ["sentence"], urgent=False))
    await settle()
    assert len(fake.calls) == 2  # joins the urgent one under way
    fake.gate.set()
    assert await late == await urgent == await also_late


async def test_no_entries_means_no_cache() -> None:
    cache, fake = VectorCache(max_entries=0), CountingFakeEmbedder()
    await cache.embed(fake, ["q"])
    await cache.embed(fake, ["q"])
    assert fake.texts == ["q", "q"] and len(cache) == 0


@pytest.mark.parametrize("text", ["\ud800 lone surrogate", "x" * 100_000])
async def test_any_text_is_a_key(text: str) -> None:
    cache, fake = VectorCache(), CountingFakeEmbedder()
    await cache.embed(fake, [text])
    await cache.embed(fake, [text])
    assert fake.texts == [text]


async def test_queued_counts_the_urgent_texts_under_way() -> None:
    """What a new embedding waits behind (the first evidence is ranked by words beyond)."""
    cache, fake = VectorCache(), CountingFakeEmbedder()
    fake.gate.clear()
    askers = [
        asyncio.ensure_future(cache.embed(fake, ["q", "s1", "s2"])),
        asyncio.ensure_future(cache.embed(fake, ["q", "s3"])),
        asyncio.ensure_future(cache.embed(fake, ["late"], urgent=False)),
    ]
    await settle()
    assert cache.queued() == 4
    fake.gate.set()
    await asyncio.gather(*askers)
    assert cache.queued() == 0


async def test_a_question_is_shared_only_among_the_same_collections() -> None:
    """A cached question answers sooner: one team must not learn by timing what another
    asked, so entries are shared within `shared` only."""
    cache, fake = VectorCache(), CountingFakeEmbedder()
    await cache.embed(fake, ["is the plant closing?"], shared="question:hr")
    await cache.embed(fake, ["is the plant closing?"], shared="question:desk")
    await cache.embed(fake, ["is the plant closing?"], shared="question:hr")
    assert fake.texts == ["is the plant closing?"] * 2 and cache.hits == 1
