"""Embedded vector engines at 1k / 20k / 100k chunks: qdrant-client local mode vs Qdrant Edge.

Real all-MiniLM-L6-v2 embeddings of generated text (computed once per machine and
cached under ~/.cache/rag-appliance/bench), exact numpy search as the reference.
For each engine and size: upsert time, optimize time (Edge), query p50/p99,
recall@10 against exact search, reopen time and RSS growth. Each engine runs in
its own process so RSS is its own. `BENCH_STORE_SIZES=1000,20000` for a shorter run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rag-appliance" / "bench"
SIZES = [int(s) for s in os.environ.get("BENCH_STORE_SIZES", "1000,20000,100000").split(",")]
N_QUERIES = 100
WORDS = (
    "server backup network printer policy password invoice contract warehouse pallet generator "
    "building safety report quarter revenue customer ticket incident laptop firewall router "
    "switch storage volume snapshot retention schedule meeting office badge visitor canteen "
    "lunch holiday payroll audit compliance license renewal vendor cable rack power cooling "
    "alarm door key camera email calendar account token certificate domain mailbox quota"
).split()


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + "."
        for _ in range(n)
    ]


def embeddings(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(corpus vectors, query vectors), real MiniLM, cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"minilm-{n}.npy"
    qpath = CACHE / f"minilm-queries-{N_QUERIES}.npy"
    # texts(n, 1) is a prefix of texts(m, 1) for m > n: a larger cache serves too
    for cached in sorted(CACHE.glob("minilm-[0-9]*.npy"), key=lambda p: int(p.stem.split("-")[1])):
        if int(cached.stem.split("-")[1]) >= n and qpath.is_file():
            return np.load(cached)[:n], np.load(qpath)
    from appliance.engine.llama_loader import load_llama
    from appliance.models.locate import prepare_default_embedding

    model = prepare_default_embedding(REPO / ".cache" / "models")
    llm = load_llama(str(model), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                     n_threads=len(os.sched_getaffinity(0)))  # fmt: skip
    print(f"embedding {n} generated texts once (cached in {CACHE})", file=sys.stderr)
    corpus = np.asarray([llm.embed([t], normalize=True)[0] for t in texts(n, 1)], np.float32)
    queries = np.asarray(
        [llm.embed([t], normalize=True)[0] for t in texts(N_QUERIES, 2)], np.float32
    )
    np.save(path, corpus)
    np.save(qpath, queries)
    return corpus, queries


def rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def exact_top10(corpus: np.ndarray, queries: np.ndarray) -> tuple[list[set[int]], float]:
    out = []
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        idx = np.argpartition(-(corpus @ q), 10)[:10]
        lat.append(time.perf_counter() - t0)
        out.append({int(i) for i in idx})
    return out, float(np.median(lat))


def run_engine(engine: str, n: int) -> dict[str, Any]:
    corpus, queries = embeddings(max(SIZES))
    corpus = corpus[:n]
    truth, _ = exact_top10(corpus, queries)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    work = Path(tempfile.mkdtemp(prefix=f"store-{engine}-"))
    out: dict[str, Any] = {"engine": engine, "n": n}
    base_rss = rss()
    try:
        if engine == "edge":
            import qdrant_edge as qe

            from appliance.config.schema import StorageSettings

            config = qe.EdgeConfig(
                vectors=qe.EdgeVectorParams(size=384, distance=qe.Distance.Cosine),
                max_search_threads=StorageSettings().edge_search_threads or None,  # as served
            )
            shard = qe.EdgeShard.create(str(work), config)
            shard.update(
                qe.UpdateOperation.create_field_index("document_id", qe.PayloadSchemaType.Keyword)
            )
            t0 = time.perf_counter()
            for start in range(0, n, 256):
                points = [
                    qe.Point(
                        uuid.UUID(ids[i]),
                        corpus[i].tolist(),
                        {"document_id": f"d{i // 100}", "i": i},
                    )
                    for i in range(start, min(n, start + 256))
                ]
                shard.update(qe.UpdateOperation.upsert_points(points))
            out["upsert_s"] = time.perf_counter() - t0

            def query(q: np.ndarray) -> list[int]:
                res = shard.query(
                    qe.QueryRequest(limit=10, query=qe.Query.Nearest(q.tolist()), with_payload=True)
                )
                return [int(p.payload["i"]) for p in res]

            out["before_optimize"] = measure(query, queries, truth)
            t0 = time.perf_counter()
            shard.optimize()
            out["optimize_s"] = time.perf_counter() - t0
            out.update(measure(query, queries, truth))
            shard.flush()
            shard.close()
            out["rss_mb"] = (rss() - base_rss) / 2**20
            t0 = time.perf_counter()
            shard = qe.EdgeShard.load(str(work))
            query(queries[0])
            out["reopen_s"] = time.perf_counter() - t0
            shard.close()
        else:
            from qdrant_client import QdrantClient, models

            client = QdrantClient(path=str(work))
            client.create_collection(
                "c", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE)
            )
            t0 = time.perf_counter()
            for start in range(0, n, 256):
                client.upsert("c", points=[
                    models.PointStruct(id=ids[i], vector=corpus[i].tolist(), payload={"document_id": f"d{i // 100}", "i": i})
                    for i in range(start, min(n, start + 256))
                ])  # fmt: skip
            out["upsert_s"] = time.perf_counter() - t0

            def query(q: np.ndarray) -> list[int]:
                res = client.query_points("c", query=q.tolist(), limit=10, with_payload=True).points
                return [int(p.payload["i"]) for p in res]

            out.update(measure(query, queries, truth))
            out["optimize_s"] = 0.0
            client.close()
            out["rss_mb"] = (rss() - base_rss) / 2**20
            t0 = time.perf_counter()
            client = QdrantClient(path=str(work))
            query(queries[0])
            out["reopen_s"] = time.perf_counter() - t0
            client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def measure(query: Any, queries: np.ndarray, truth: list[set[int]]) -> dict[str, float]:
    lat = []
    recall = []
    for q, t in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        got = query(q)
        lat.append(time.perf_counter() - t0)
        recall.append(len(set(got) & t) / 10)
    return {
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "recall10": float(np.mean(recall)),
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine")
    parser.add_argument("--n", type=int)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.n)))
        return {}
    corpus, queries = embeddings(max(SIZES))
    rows = []
    print(f"{'engine':<14} {'chunks':>7} {'upsert s':>9} {'optimize s':>10} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'recall@10':>9} {'reopen s':>9} {'RSS MB':>7}")  # fmt: skip
    for n in SIZES:
        _, exact_ms = exact_top10(corpus[:n], queries)
        for engine in ("qdrant-client", "edge"):
            res = subprocess.run(
                [sys.executable, __file__, "--engine", engine, "--n", str(n)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if res.returncode != 0:
                print(f"{engine} {n}: failed: {res.stderr[-500:]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            r["numpy_p50_ms"] = exact_ms * 1e3
            rows.append(r)
            print(f"{engine:<14} {n:>7} {r['upsert_s']:>9.2f} {r['optimize_s']:>10.2f} "
                  f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['recall10']:>9.3f} "
                  f"{r['reopen_s']:>9.3f} {r['rss_mb']:>7.0f}", flush=True)  # fmt: skip
        print(f"{'numpy exact':<14} {n:>7} {'':>9} {'':>10} {exact_ms * 1e3:>8.3f}", flush=True)
    return {"rows": rows}


if __name__ == "__main__":
    main()
