"""A switch that fails before the swap stops the embedder and closes the store it opened
(fakes from the factories the composition root gives; no model is loaded)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from appliance.ingest import embedding_switch
from appliance.ingest.embedding_switch import EmbeddingSwitch


class FakeEmbedder:
    dim = 4

    def __init__(self) -> None:
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def queue_depth(self) -> int:
        return 0

    async def embed(
        self, texts: Sequence[str], *, interactive: bool, urgent: bool = True
    ) -> list[list[float]]:
        return [[1.0, 0.0, 0.0, 0.0] for _ in texts]


class BrokenStore:
    def __init__(self) -> None:
        self.closed = False

    def start(self) -> None:
        raise OSError("disk gone")

    async def close(self) -> None:
        self.closed = True


def test_a_failed_switch_stops_what_it_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding_switch, "read_gguf_info", lambda path: SimpleNamespace(n_embd=4))
    services = SimpleNamespace(
        settings=SimpleNamespace(
            storage=SimpleNamespace(qdrant_url="", embedded_engine="edge", collection="chunks"),
            models=SimpleNamespace(embedding_model="default"),
        ),
        collection="chunks",
    )
    embedders: list[FakeEmbedder] = []
    stores: list[BrokenStore] = []

    def make_embedder(path: Path, info: Any) -> FakeEmbedder:
        embedders.append(FakeEmbedder())
        return embedders[-1]

    def make_store(dim: int, name: str) -> BrokenStore:
        stores.append(BrokenStore())
        return stores[-1]

    async def run() -> None:
        switch = EmbeddingSwitch(services, make_store, make_embedder)
        switch.start("other", Path("other.gguf"), "0" * 64, lambda: lambda: None)
        for _ in range(500):  # the closes run after `finished_at` is set
            if stores and stores[0].closed and embedders[0].stopped:
                break
            await asyncio.sleep(0.01)
        assert switch.status.state == "failed" and "disk gone" in (switch.status.error or "")

    asyncio.run(run())
    assert embedders[0].started and embedders[0].stopped
    assert stores[0].closed
