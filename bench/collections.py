"""Search with a collection filter vs without, on the embedded Qdrant Edge store as shipped.

Issue 23's acceptance: at 100k chunks over 10 collections, search p50 with a collection
filter <= 1.1x the p50 without, and recall@10 of the filtered search >= 0.95 against
exact search restricted to that collection (brute-force cosine in numpy).

The store is `EdgeStore` built as `make_store` builds it (BM25 encoder with the shipped
parameters, the shipped search threads); the filter is `search(..., collections={c})`,
a payload condition inside the one Qdrant query. Vectors are synthetic, not model
embeddings (100k real embeddings take too long to compute here): unit vectors around a
few hundred cluster centres (topics), each cluster spread along its own low-dimensional
subspace plus isotropic noise; each collection draws most of its chunks from its own
topics, the rest from shared ones; collection sizes are unequal (30% down to 2% for 10).
Chunk texts are generated words, topic words mixed with common ones, for BM25.

Queries: stored points perturbed (cosine ~0.9 to their source), each searched without
a filter and with the filter of a collection chosen uniformly at random (mostly not
the source's), in a random order, after `optimize()`. Dense search always; hybrid
(`text=`, dense + BM25 fused by RRF) as well, unless `--no-hybrid`.

    python bench/collections.py [--chunks 100000] [--collections 10] [--queries 300]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appliance.config.schema import Settings  # noqa: E402
from appliance.domain.types import ChunkRecord, Hit  # noqa: E402
from appliance.store.edge import EdgeStore  # noqa: E402
from appliance.store.hybrid import NarrowedSearch  # noqa: E402
from appliance.store.lexical import Bm25Params, LexicalEncoder  # noqa: E402

DIM = 384
TOP_K = 10
CLUSTERS = 300
SHARED_TOPICS = 0.2  # share of clusters every collection draws from
OWN_TOPIC = 0.8  # share of a collection's chunks from its own clusters
LOCAL_DIM = 16  # each cluster's subspace
DOC_CHUNKS = 50
WARMUP = 20
BATCH = 256


@dataclass
class Corpus:
    vectors: np.ndarray  # (n, DIM) float32, unit
    collection: np.ndarray  # (n,) int: the collection index of each chunk
    document: np.ndarray  # (n,) int: its document
    texts: list[str]
    members: list[np.ndarray]  # chunk indices of each collection


def collection_sizes(n: int, k: int) -> list[int]:
    """Geometric sizes, the largest 15x the smallest (30%..2% for 10), summing to n."""
    weights = np.geomspace(15.0, 1.0, k) if k > 1 else np.ones(1)
    sizes = np.floor(weights / weights.sum() * n).astype(int)
    sizes[0] += n - sizes.sum()
    return [int(s) for s in sizes]


def vocabulary(rng: np.random.Generator, size: int = 5000) -> np.ndarray:
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words = {"".join(rng.choice(syllables, rng.integers(2, 4))) for _ in range(size * 2)}
    return np.array(sorted(words)[:size])


def synthetic(n: int, k: int, seed: int) -> Corpus:
    rng = np.random.default_rng(seed)
    sizes = collection_sizes(n, k)
    # documents of DOC_CHUNKS chunks (a collection's last one shorter), one topic each
    doc_collection = np.concatenate([np.full(-(-s // DOC_CHUNKS), c) for c, s in enumerate(sizes)])
    doc_len = np.concatenate([np.diff(np.r_[np.arange(0, s, DOC_CHUNKS), s]) for s in sizes])
    shared = int(CLUSTERS * SHARED_TOPICS)  # clusters 0..shared-1: every collection's
    own = np.array_split(np.arange(shared, CLUSTERS), k)  # the rest: one collection's
    doc_cluster = np.array([
        rng.choice(own[c]) if rng.random() < OWN_TOPIC else rng.integers(shared)
        for c in doc_collection
    ])  # fmt: skip
    order = rng.permutation(len(doc_collection))  # documents arrive in no particular order
    document = np.repeat(order, doc_len[order])
    collection, cluster = doc_collection[document], doc_cluster[document]
    common = rng.standard_normal(DIM)  # embeddings share a mean direction (anisotropy)
    centres = rng.standard_normal((CLUSTERS, DIM)) + 0.4 * common / np.linalg.norm(
        common
    ) * np.sqrt(DIM)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.empty((n, DIM), dtype=np.float32)
    for t in range(CLUSTERS):
        idx = np.flatnonzero(cluster == t)
        basis = rng.standard_normal((LOCAL_DIM, DIM)) / np.sqrt(LOCAL_DIM * DIM)
        local = rng.standard_normal((len(idx), LOCAL_DIM)) @ basis
        noise = rng.standard_normal((len(idx), DIM)) / np.sqrt(DIM)
        spread = rng.uniform(0.8, 1.2)
        vectors[idx] = centres[t] + spread * (0.9 * local + 0.45 * noise)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vocab = vocabulary(rng)
    topics = rng.integers(0, len(vocab), (CLUSTERS, 25))
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    words = rng.choice(len(vocab), (n, 60), p=zipf / zipf.sum())
    topical = rng.random((n, 60)) < 0.35
    words = np.where(
        topical, topics[cluster][np.arange(n)[:, None], rng.integers(0, 25, (n, 60))], words
    )
    texts = [" ".join(vocab[row[: 30 + i % 31]]) for i, row in enumerate(words)]
    members = [np.flatnonzero(collection == c) for c in range(k)]
    return Corpus(vectors, collection, document, texts, members)


def record(corpus: Corpus, i: int) -> ChunkRecord:
    return ChunkRecord(
        point_id=str(uuid.UUID(int=i + 1)), document_id=f"d{corpus.document[i]}",
        file_name=f"doc{corpus.document[i]}.pdf", chunk_index=i, text=corpus.texts[i], page=None,
        heading=None, vector=corpus.vectors[i].tolist(),
        collection=f"c{corpus.collection[i]}",
    )  # fmt: skip


def index_of(hit: Hit) -> int:
    return uuid.UUID(hit.point_id).int - 1


def exact(corpus: Corpus, q: np.ndarray, within: np.ndarray | None) -> list[int]:
    idx = within if within is not None else np.arange(len(corpus.vectors))
    scores = corpus.vectors[idx] @ q
    return [int(i) for i in idx[np.argpartition(-scores, TOP_K)[:TOP_K]]]


class Series:
    """Latencies of one kind of search and, for dense search, its recall against exact."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.recall: list[float] = []
        self.gap: list[float] = []  # mean cosine of the exact top 10 less that of the hits

    def p(self, q: float) -> float:
        return float(np.percentile(self.ms, q))

    def add(self, corpus: Corpus, q: np.ndarray, got: list[int], truth: list[int]) -> None:
        self.recall.append(len(set(got) & set(truth)) / TOP_K)
        found = corpus.vectors[got] @ q if got else np.zeros(1)
        self.gap.append(float(np.mean(corpus.vectors[truth] @ q) - np.mean(found)))

    def row(self, name: str) -> str:
        if not self.recall:
            return f"{name:<50} {self.p(50):>8.2f} {self.p(99):>8.2f} {'-':>10} {'-':>9}"
        return (f"{name:<50} {self.p(50):>8.2f} {self.p(99):>8.2f} {np.mean(self.recall):>10.3f} "
                f"{np.mean(self.gap):>9.4f}")  # fmt: skip


@dataclass
class Results:
    series: dict[str, Series]  # by kind of search, and "round trip"
    per_collection: list[Series]  # dense filtered on a random collection, by collection
    outside: int = 0  # filtered hits outside their collection


DENSE, RANDOM, OWN = "dense", "dense, random collection", "dense, own collection"
HYBRID, HYBRID_RANDOM = "hybrid", "hybrid, random collection"
KINDS = (DENSE, RANDOM, OWN, HYBRID, HYBRID_RANDOM)


def walk_name(walk: NarrowedSearch) -> str:
    return f"ef {walk.ef or 'default'}, ACORN {'on' if walk.acorn else 'off'}"


def other_walks(spec: str, shipped: NarrowedSearch) -> list[NarrowedSearch]:
    """`--walks "0:off,150:on"`: graph walks compared with the shipped one on the same shard."""
    walks = []
    for item in filter(None, spec.split(",")):
        ef, acorn = item.split(":")
        walk = NarrowedSearch(ef=int(ef), acorn=acorn == "on")
        if walk != shipped:
            walks.append(walk)
    return walks


async def timed(
    store: EdgeStore,
    vector: list[float],
    collections: set[str] | None,
    text: str | None,
    walk: NarrowedSearch | None = None,
) -> tuple[float, list[int]]:
    """One search; `walk`: another graph walk than the shipped one (the bench sets the
    store's, as `storage.filtered_search_*` would)."""
    shipped = store._narrowed
    store._narrowed = walk or shipped
    try:
        t0 = time.perf_counter()
        hits = await store.search(vector, TOP_K, text=text, collections=collections)
        return (time.perf_counter() - t0) * 1000, [index_of(h) for h in hits]
    finally:
        store._narrowed = shipped


async def round_trip(store: EdgeStore) -> float:
    """One job through the store's thread that does no search (`ping`)."""
    t0 = time.perf_counter()
    await store.ping()
    return (time.perf_counter() - t0) * 1000


async def measure(
    store: EdgeStore,
    corpus: Corpus,
    n_queries: int,
    hybrid: bool,
    seed: int,
    walks: list[NarrowedSearch],
) -> Results:
    rng = np.random.default_rng(seed + 1)
    k = len(corpus.members)
    others = [(f"{kind} [{walk_name(w)}]", w) for w in walks for kind in (RANDOM, OWN)]
    out = Results({name: Series() for name in (*KINDS, *(n for n, _ in others), "round trip")},
                  [Series() for _ in range(k)])  # fmt: skip
    for n in range(WARMUP + n_queries):
        source = int(rng.integers(len(corpus.vectors)))
        noise = rng.standard_normal(DIM).astype(np.float32) * 0.5 / np.sqrt(DIM)
        q = (corpus.vectors[source] + noise) / np.linalg.norm(corpus.vectors[source] + noise)
        c, own = int(rng.integers(k)), int(corpus.collection[source])
        words = corpus.texts[source].split()
        text = " ".join(rng.choice(words, min(5, len(words)), replace=False))
        runs: list[tuple[str, int | None, str | None, NarrowedSearch | None]] = [
            (DENSE, None, None, None), (RANDOM, c, None, None), (OWN, own, None, None),
        ]  # fmt: skip
        runs += [(name, c if RANDOM in name else own, None, w) for name, w in others]
        if hybrid:
            runs += [(HYBRID, None, text, None), (HYBRID_RANDOM, c, text, None)]
        order = np.random.default_rng(seed + n).permutation(len(runs))
        runs = [runs[i] for i in order]  # a new order each query: none gets the others' cache
        ping = await round_trip(store)
        for name, within, query_text, walk in runs:
            collections = {f"c{within}"} if within is not None else None
            ms, got = await timed(store, q.tolist(), collections, query_text, walk)
            if n < WARMUP:
                continue
            out.series[name].ms.append(ms)
            if within is not None:
                out.outside += sum(int(corpus.collection[i] != within) for i in got)
            if query_text is None:
                truth = exact(corpus, q, corpus.members[within] if within is not None else None)
                out.series[name].add(corpus, q, got, truth)
            if name == RANDOM:
                out.per_collection[c].ms.append(ms)
                out.per_collection[c].add(corpus, q, got, truth)
        if n >= WARMUP:
            out.series["round trip"].ms.append(ping)
    return out


async def build(store: EdgeStore, corpus: Corpus) -> tuple[float, float]:
    t0 = time.perf_counter()
    for start in range(0, len(corpus.vectors), BATCH):
        await store.upsert(
            [record(corpus, i) for i in range(start, min(start + BATCH, len(corpus.vectors)))]
        )
    upserted = time.perf_counter()
    await store.optimize()
    return upserted - t0, time.perf_counter() - upserted


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def report(
    args: argparse.Namespace, corpus: Corpus, times: tuple[float, float], results: Results
) -> None:
    n, k = len(corpus.vectors), len(corpus.members)
    sizes = [len(m) for m in corpus.members]
    series = results.series
    print(f"Qdrant Edge as shipped (EdgeStore, BM25 on, {Settings().storage.edge_search_threads} "
          f"search thread), {n} chunks in {k} collections of "
          f"{100 * sizes[0] / n:.0f}%..{100 * sizes[-1] / n:.0f}%, documents of {DOC_CHUNKS} "
          "chunks upserted in random order.")  # fmt: skip
    st = Settings().storage
    print(f"A search narrowed to collections walks the graph with ef {st.filtered_search_ef} "
          f"and ACORN {'on' if st.filtered_search_acorn else 'off'} (storage.filtered_search_*)"
          ".")  # fmt: skip
    print(f"SYNTHETIC vectors, not model embeddings: unit vectors in {DIM}-d around {CLUSTERS} "
          f"cluster centres (each: own {LOCAL_DIM}-d subspace + noise), one cluster per "
          f"document, {OWN_TOPIC:.0%} of a collection's documents on its own clusters. "
          "Generated texts for BM25.")  # fmt: skip
    print(f"Build: upsert {times[0]:.1f} s (BM25 encoding included), optimize (HNSW) "
          f"{times[1]:.1f} s.")  # fmt: skip
    print(f"{args.queries} queries (stored chunks perturbed, cosine ~0.9), each searched without "
          "a filter, filtered on a random collection (uniform: mostly not the query's topic) and "
          "on the collection of its source chunk, in a random order; top "
          f"{TOP_K}; times through EdgeStore.search (the store thread's round trip "
          "included).\n")  # fmt: skip
    print(f"{'search':<50} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>10} {'cos gap':>9}")
    for name in series:
        if series[name].ms:
            print(series[name].row(name if name != "round trip" else "round trip only (ping)"))
    print("(recall@10 against exact cosine search, a filtered one restricted to the collection; "
          "cos gap: mean cosine of the exact top 10 less that of the hits)\n")  # fmt: skip
    ratio = series[RANDOM].p(50) / series[DENSE].p(50)
    recall = float(np.mean(series[RANDOM].recall))
    print(f"dense  p50 filtered / unfiltered: {ratio:.2f}x (target <= 1.1: {verdict(ratio <= 1.1)})"
          f"; recall@10 filtered {recall:.3f} (target >= 0.95: {verdict(recall >= 0.95)}), "
          f"on the query's own collection {np.mean(series[OWN].recall):.3f}")  # fmt: skip
    for name in series:
        if name.startswith(RANDOM + " ["):
            own = name.replace(RANDOM, OWN)
            print(f"  {name[len(RANDOM) + 1 :]:<28} random: {series[name].p(50) / series[DENSE].p(50):.2f}x, "
                  f"recall {np.mean(series[name].recall):.3f}; own: "
                  f"{series[own].p(50) / series[DENSE].p(50):.2f}x, "
                  f"recall {np.mean(series[own].recall):.3f}")  # fmt: skip
    print(f"  {'shipped':<28} random: {series[RANDOM].p(50) / series[DENSE].p(50):.2f}x, recall "
          f"{np.mean(series[RANDOM].recall):.3f}; own: "
          f"{series[OWN].p(50) / series[DENSE].p(50):.2f}x, recall "
          f"{np.mean(series[OWN].recall):.3f}")  # fmt: skip
    if series[HYBRID].ms:
        ratio = series[HYBRID_RANDOM].p(50) / series[HYBRID].p(50)
        print(f"hybrid p50 filtered / unfiltered: {ratio:.2f}x (target <= 1.1: "
              f"{verdict(ratio <= 1.1)})")  # fmt: skip
    trip = series["round trip"].p(50)
    engine = (series[RANDOM].p(50) - trip) / (series[DENSE].p(50) - trip)
    print(f"dense  p50 less the round trip, filtered / unfiltered: {engine:.2f}x")
    print(f"filtered hits outside their collection: {results.outside}\n")
    print(f"{'dense, random collection':<26} {'chunks':>8} {'queries':>8} {'p50 ms':>8} "
          f"{'recall@10':>10} {'cos gap':>9}")  # fmt: skip
    for c, s in enumerate(results.per_collection):
        if s.ms:
            print(f"{f'c{c}':<26} {sizes[c]:>8} {len(s.ms):>8} {s.p(50):>8.2f} "
                  f"{np.mean(s.recall):>10.3f} {np.mean(s.gap):>9.4f}")  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    t_start = time.monotonic()
    corpus = synthetic(args.chunks, args.collections, args.seed)
    settings = Settings()
    r = settings.retrieval
    work = Path(tempfile.mkdtemp(prefix="bench-collections-"))
    store = EdgeStore(
        path=work / "edge", dim=DIM, optimize_after_writes=False,
        search_threads=settings.storage.edge_search_threads,
        lexical=LexicalEncoder(Bm25Params(avg_len=r.bm25_avg_len, k=r.bm25_k, b=r.bm25_b)),
        lexical_weight=r.bm25_weight,
        narrowed=NarrowedSearch(
            ef=settings.storage.filtered_search_ef, acorn=settings.storage.filtered_search_acorn
        ),
    )  # fmt: skip
    store.start()
    try:
        times = await build(store, corpus)
        walks = other_walks(args.walks, store._narrowed)
        results = await measure(store, corpus, args.queries, not args.no_hybrid, args.seed, walks)
    finally:
        await store.close()
        shutil.rmtree(work, ignore_errors=True)
    report(args, corpus, times, results)
    print(f"\n(collections.py: {time.monotonic() - t_start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--collections", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--no-hybrid", action="store_true", help="dense search only")
    parser.add_argument("--walks", default="0:off,0:on,100:on,150:on",
                        help="other graph walks to compare (ef:acorn, ef 0 = the default)")  # fmt: skip
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
