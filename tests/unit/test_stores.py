"""One behaviour suite for every embedded store adapter (qdrant-client local mode, Qdrant Edge).

A Qdrant server (`url` mode) cannot run on this machine: the same QdrantStore code
serves it, with only the client constructor differing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np
import pytest

from appliance.config.schema import Settings
from appliance.domain.types import ChunkRecord
from appliance.server.stores import make_store
from appliance.store.edge import EdgeStore
from appliance.store.hybrid import NarrowedSearch
from appliance.store.lexical import Bm25Params, LexicalEncoder
from appliance.store.qdrant import QdrantStore

DIM = 16


def qdrant_local(path: Path) -> QdrantStore:
    return QdrantStore(collection="chunks", dim=DIM, path=path)


def edge(path: Path) -> EdgeStore:
    return EdgeStore(path=path, dim=DIM)


ADAPTERS: dict[str, Callable[[Path], QdrantStore | EdgeStore]] = {
    "qdrant-client-local": qdrant_local,
    "qdrant-edge": edge,
}


def unit(rng: np.random.Generator) -> list[float]:
    v = rng.normal(size=DIM)
    return [float(x) for x in v / np.linalg.norm(v)]


def records(document_id: str, n: int, rng: np.random.Generator) -> list[ChunkRecord]:
    return [
        ChunkRecord(
            point_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{document_id}:{i}")),
            document_id=document_id, file_name=f"{document_id}.pdf", chunk_index=i,
            text=f"chunk {i} of {document_id}", page=i + 1, heading="H" if i % 2 else None,
            vector=unit(rng),
        )
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(params=sorted(ADAPTERS))
def make(request: pytest.FixtureRequest) -> Callable[[Path], QdrantStore | EdgeStore]:
    return ADAPTERS[request.param]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_upsert_search_filter_delete_count(
    make: Callable[[Path], QdrantStore | EdgeStore], tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    a, b = records("doc-a", 30, rng), records("doc-b", 20, rng)

    async def scenario() -> None:
        store = make(tmp_path / "store")
        store.start()
        await store.ping()
        await store.upsert(a)
        await store.upsert(b)
        assert await store.count() == 50
        assert await store.count("doc-a") == 30
        # the exact vector of a stored chunk is its own nearest neighbour
        [top, *_] = await store.search(a[7].vector, 3)
        assert (top.document_id, top.chunk_index, top.page, top.text) == (
            "doc-a", 7, 8, "chunk 7 of doc-a",
        )  # fmt: skip
        assert top.score == pytest.approx(1.0, abs=1e-4)
        assert top.heading == "H"
        hits = await store.search(a[7].vector, 10, ["doc-b"])
        assert hits and {h.document_id for h in hits} == {"doc-b"}
        scores = [h.score for h in await store.search(b[0].vector, 10)]
        assert scores == sorted(scores, reverse=True)
        # same ids again: no duplicates
        await store.upsert(a)
        assert await store.count() == 50
        await store.delete_by_document("doc-a")
        assert await store.count() == 20
        assert all(h.document_id == "doc-b" for h in await store.search(a[7].vector, 50))
        await store.close()

    run(scenario())


def test_data_survives_reopen(
    make: Callable[[Path], QdrantStore | EdgeStore], tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    a = records("doc-a", 25, rng)

    async def write() -> None:
        store = make(tmp_path / "store")
        store.start()
        await store.upsert(a)
        await store.close()

    async def read() -> None:
        store = make(tmp_path / "store")
        store.start()
        assert await store.count() == 25
        [top, *_] = await store.search(a[3].vector, 1)
        assert top.chunk_index == 3
        await store.close()

    run(write())
    run(read())


def test_edge_index_after_optimize_keeps_results(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    docs = [records(f"d{i}", 200, rng) for i in range(10)]

    async def scenario() -> None:
        store = EdgeStore(path=tmp_path / "edge", dim=DIM, optimize_after_writes=False)
        store.start()
        for d in docs:
            await store.upsert(d)
        before = [h.point_id for h in await store.search(docs[4][9].vector, 5)]
        await store.optimize()
        after = [h.point_id for h in await store.search(docs[4][9].vector, 5)]
        assert before[0] == after[0] == docs[4][9].point_id
        assert await store.count("d4") == 200
        await store.close()

    run(scenario())


def edge_search_threads() -> int:
    count = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            count += (task / "comm").read_text().startswith("edge-search")
    return count


@pytest.mark.parametrize("threads", [1, 3])
def test_edge_search_pool_has_the_configured_size(tmp_path: Path, threads: int) -> None:
    """storage.edge_search_threads reaches Qdrant Edge (its default is one per CPU)."""
    before = edge_search_threads()
    store = EdgeStore(path=tmp_path / "edge", dim=DIM, search_threads=threads)
    store.start()
    try:
        assert edge_search_threads() - before == threads
    finally:
        asyncio.run(store.close())


def in_collection(recs: list[ChunkRecord], collection: str) -> list[ChunkRecord]:
    return [msgspec.structs.replace(r, collection=collection) for r in recs]


def test_collections_filter_inside_the_query(
    make: Callable[[Path], QdrantStore | EdgeStore], tmp_path: Path
) -> None:
    """A collection condition keeps top-k within the collection (not a filter after the
    query), narrows together with document ids, and an empty set reads nothing."""
    rng = np.random.default_rng(3)
    hr = in_collection(records("doc-hr", 40, rng), "hr")
    desk = in_collection(records("doc-desk", 40, rng), "desk")

    async def scenario() -> None:
        store = make(tmp_path / "store")
        store.start()
        await store.upsert(hr + desk)
        probe = hr[5].vector  # nearest to an HR chunk
        hits = await store.search(probe, 10, collections={"desk"})
        assert len(hits) == 10 and {h.document_id for h in hits} == {"doc-desk"}
        both = await store.search(probe, 10, collections={"desk", "hr"})
        assert both[0].document_id == "doc-hr"
        assert await store.search(probe, 10, ["doc-hr"], collections={"desk"}) == []
        assert await store.search(probe, 10, collections=set()) == []
        assert len(await store.search(probe, 80)) == 80  # None: every collection
        await store.close()

    run(scenario())


@pytest.mark.parametrize(
    "narrowed", [NarrowedSearch(), NarrowedSearch(ef=0, acorn=False), NarrowedSearch(ef=64)]
)
def test_narrowed_walk_keeps_dense_and_fused_search_in_the_collection(
    make: Callable[[Path], QdrantStore | EdgeStore], tmp_path: Path, narrowed: NarrowedSearch
) -> None:
    """The graph walk of a search narrowed to collections (wider ef, ACORN) reaches both
    adapters' dense query and the dense prefetch of the fused one: each still answers
    the exact top-k within the collection, and an unnarrowed search is untouched."""
    rng = np.random.default_rng(5)
    hr = in_collection(records("doc-hr", 60, rng), "hr")
    desk = in_collection(records("doc-desk", 60, rng), "desk")
    lexical = LexicalEncoder(Bm25Params())

    async def scenario() -> None:
        store = make(tmp_path / "store")
        store.lexical, store._narrowed = lexical, narrowed
        store.start()
        await store.upsert(hr + desk)
        probe = hr[7].vector
        exact = sorted(desk, key=lambda r: -float(np.dot(r.vector, probe)))[:10]
        dense = await store.search(probe, 10, collections={"desk"})
        assert [h.point_id for h in dense] == [r.point_id for r in exact]
        fused = await store.search(probe, 10, text="chunk 3 of doc-hr", collections={"desk"})
        assert len(fused) == 10 and {h.document_id for h in fused} == {"doc-desk"}
        assert (await store.search(probe, 1))[0].point_id == hr[7].point_id
        await store.close()

    run(scenario())


def test_the_config_sets_the_narrowed_walk(tmp_path: Path) -> None:
    """storage.filtered_search_ef and filtered_search_acorn reach the store."""
    settings = msgspec.convert(
        {"storage": {"data_dir": str(tmp_path), "filtered_search_ef": 96,
                     "filtered_search_acorn": False}},
        Settings,
    )  # fmt: skip
    store = make_store(settings, DIM)
    assert store._narrowed == NarrowedSearch(ef=96, acorn=False)


def test_chunks_stored_before_collections_move_to_default(
    make: Callable[[Path], QdrantStore | EdgeStore], tmp_path: Path
) -> None:
    """A store written before collections (no `collection` payload) opens with every
    chunk in `default`, found by a `default`-scoped search and by no other."""
    rng = np.random.default_rng(4)
    old = records("doc-old", 12, rng)

    async def write_old() -> None:
        store = make(tmp_path / "store")
        store.start()
        await store.upsert(old)
        await store.close()

    run(write_old())
    _drop_collection_payload(make, tmp_path / "store")

    async def reopen() -> None:
        store = make(tmp_path / "store")
        store.start()
        assert len(await store.search(old[0].vector, 20, collections={"default"})) == 12
        assert await store.search(old[0].vector, 20, collections={"hr"}) == []
        await store.close()

    run(reopen())


def _drop_collection_payload(make: Callable[[Path], QdrantStore | EdgeStore], path: Path) -> None:
    """Remove the `collection` field from every stored chunk, with the client itself."""
    if make is ADAPTERS["qdrant-edge"]:
        import qdrant_edge as qe

        shard = qe.EdgeShard.load(str(path), None)
        everything = qe.Filter(
            must=[qe.FieldCondition(key="document_id", match=qe.MatchAny(any=["doc-old"]))]
        )
        shard.update(qe.UpdateOperation.delete_payload_by_filter(everything, ["collection"]))
        shard.flush()
        shard.close()
    else:
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(path))
        match = models.MatchAny(any=["doc-old"])
        condition = models.FieldCondition(key="document_id", match=match)
        client.delete_payload("chunks", keys=["collection"], points=models.Filter(must=[condition]))
        client.close()
