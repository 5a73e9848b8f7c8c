"""Hybrid retrieval in both embedded stores: BM25 sparse vectors beside the dense ones,
fused by reciprocal rank; old shards migrated; malformed sparse vectors refused before
a shard sees them (qdrant-edge would panic and poison itself)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from appliance.domain.types import ChunkRecord
from appliance.store.edge import BM25_MARKER, EdgeStore
from appliance.store.lexical import Bm25Params, LexicalEncoder, Sparse, checked
from appliance.store.qdrant import QdrantStore

DIM = 16
TEXTS = [
    "To restart the service, run the restart command and wait for the health check.",
    "Replacement filters are ordered through the facilities desk every quarter.",
    "Error E4417 means the backup target is full; free space and run it again.",
    "The warehouse uses part ZX-4411 for the conveyor belt tensioner.",
    "Visitors sign in at the front desk and wear a badge at all times.",
    "Backups run nightly at 02:00 and are kept for thirty days.",
]


def unit(rng: np.random.Generator) -> list[float]:
    v = rng.normal(size=DIM)
    return [float(x) for x in v / np.linalg.norm(v)]


def chunks(rng: np.random.Generator) -> list[ChunkRecord]:
    return [
        ChunkRecord(
            point_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"doc-{i}")), document_id=f"doc-{i}",
            file_name=f"doc-{i}.txt", chunk_index=0, text=text, page=None, heading=None,
            vector=unit(rng),
        )
        for i, text in enumerate(TEXTS)
    ]  # fmt: skip


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def edge(path: Path, lexical: LexicalEncoder | None) -> EdgeStore:
    return EdgeStore(path=path, dim=DIM, lexical=lexical, optimize_after_writes=False)


def local(path: Path, lexical: LexicalEncoder | None) -> QdrantStore:
    return QdrantStore(collection="chunks", dim=DIM, path=path, lexical=lexical)


STORES: dict[str, Callable[[Path, LexicalEncoder | None], EdgeStore | QdrantStore]] = {
    "qdrant-edge": edge,
    "qdrant-client-local": local,
}


def test_checked_refuses_what_would_panic_a_shard() -> None:
    with pytest.raises(ValueError, match="2 indices but 1 values"):
        checked([1, 2], [0.5])
    with pytest.raises(ValueError, match="not a u32"):
        checked([-1], [1.0])
    with pytest.raises(ValueError, match="not finite"):
        checked([3], [float("nan")])
    assert checked([7, 3, 7], [1.0, 2.0, 0.5]) == Sparse([3, 7], [2.0, 1.5])  # merged


def test_encoder_tokens_match_between_documents_and_queries() -> None:
    lexical = LexicalEncoder()
    doc, query = lexical.document(TEXTS[3]), lexical.query("part ZX-4411")
    assert query and set(query.indices) <= set(doc.indices)
    assert len(doc.indices) == len(set(doc.indices)) == len(doc.values)


@pytest.mark.parametrize("kind", sorted(STORES))
def test_hybrid_finds_the_exact_token_dense_misses(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    records = chunks(rng)
    query_vector = unit(np.random.default_rng(99))  # unrelated to every chunk's vector

    async def scenario() -> None:
        store = STORES[kind](tmp_path / "store", LexicalEncoder())
        store.start()
        assert store.hybrid
        await store.upsert(records)
        dense = await store.search(query_vector, 2)
        fused = await store.search(query_vector, 2, text="What is error E4417?")
        assert "E4417" not in " ".join(h.text for h in dense)  # the random vector misses it
        assert "E4417" in fused[0].text
        assert 0 < fused[0].score < 0.04  # an RRF score, not a cosine
        # filters reach both rankings
        scoped = await store.search(query_vector, 3, ["doc-3"], text="What is error E4417?")
        assert [h.document_id for h in scoped] == ["doc-3"]
        # min_score drops weak dense candidates; a BM25 match still enters
        strict = await store.search(query_vector, 3, text="part ZX-4411", min_score=0.99)
        assert [h.document_id for h in strict] == ["doc-3"]
        await store.close()

    run(scenario())


def test_edge_shard_made_before_hybrid_is_migrated(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    records = chunks(rng)
    path = tmp_path / "edge"
    query_vector = unit(np.random.default_rng(98))

    async def old() -> None:  # dense only, no marker: as stored by earlier releases
        store = edge(path, None)
        store.start()
        await store.upsert(records)
        await store.close()

    async def new(params: Bm25Params) -> list[str]:
        store = edge(path, LexicalEncoder(params))
        store.start()
        assert await store.count() == len(records)
        hits = await store.search(query_vector, 1, text="conveyor tensioner ZX-4411")
        await store.upsert(chunks(np.random.default_rng(7))[:1])  # writes still work
        await store.close()
        return [h.text for h in hits]

    run(old())
    stored = json.loads((path / "edge_config.json").read_text())
    assert "bm25" not in (stored.get("sparse_vectors") or {})
    assert "ZX-4411" in run(new(Bm25Params()))[0]
    stored = json.loads((path / "edge_config.json").read_text())
    assert "bm25" in stored["sparse_vectors"]
    assert json.loads((path / BM25_MARKER).read_text()) == Bm25Params().as_dict()
    # other BM25 parameters: the sparse vectors are re-encoded, the marker follows
    changed = Bm25Params(avg_len=40.0, k=1.5, b=0.6)
    assert "ZX-4411" in run(new(changed))[0]
    assert json.loads((path / BM25_MARKER).read_text()) == changed.as_dict()


def test_a_malformed_sparse_vector_never_reaches_the_shard(tmp_path: Path) -> None:
    class Broken(LexicalEncoder):
        def document(self, text: str) -> Sparse:
            vector = super().document(text)
            return checked(vector.indices, vector.values[:-1])  # as a buggy encoder would

    rng = np.random.default_rng(8)
    records = chunks(rng)

    async def scenario() -> None:
        store = edge(tmp_path / "edge", Broken())
        store.start()
        with pytest.raises(ValueError, match="indices but"):
            await store.upsert(records)
        await store.close()
        healthy = edge(tmp_path / "edge", LexicalEncoder())  # the shard was never touched
        healthy.start()
        await healthy.upsert(records)
        assert await healthy.count() == len(records)
        await healthy.close()

    run(scenario())


def test_qdrant_collection_without_bm25_stays_dense(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    records = chunks(rng)

    async def scenario() -> None:
        old = local(tmp_path / "q", None)
        old.start()
        await old.upsert(records)
        await old.close()
        store = local(tmp_path / "q", LexicalEncoder())
        store.start()
        await store.ping()
        assert not store.hybrid  # logged; search stays dense
        assert len(await store.search(records[0].vector, 2, text="E4417")) == 2
        await store.close()

    run(scenario())
