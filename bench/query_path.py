"""Query-path benchmark: the appliance's own code paths vs raw library calls, same run.

For the default models on this machine it prints:
- query-embedding latency: appliance (engine thread + asyncio future) vs raw `Llama.embed`;
- ingestion chunks/s (embed + upsert): appliance path vs raw calls;
- search latency at 1k and 10k chunks: appliance `QdrantStore` (owner thread) vs raw
  `QdrantClient.query_points` (both embedded local mode), and exact numpy for reference;
- time to first token and tokens/s for one stream: appliance engine vs raw
  `Llama.create_completion(stream=True)`.

Each side runs in its own fresh process (llama.cpp's OpenMP threads make a second
thread that ran llama.cpp slow down the first, see docs/architecture.md), on the
same generated texts. Run: `make bench` (BENCH_CHUNKS=2000 for a quick run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

THREADS = int(os.environ.get("BENCH_THREADS", str(len(os.sched_getaffinity(0)))))
MODELS = Path(os.environ.get("APPLIANCE_TEST_MODELS_DIR", REPO / ".cache" / "models"))
N_CHUNKS = int(os.environ.get("BENCH_CHUNKS", "10000"))
INGEST_SAMPLE = 1000
CHAT_CTX = 2048
# Queries on a server arrive apart, not back to back; idle cores make that slower here.
REQUEST_GAP_S = 0.01
MAX_TOKENS = 128
WORDS = [
    "server",
    "backup",
    "network",
    "printer",
    "policy",
    "password",
    "invoice",
    "contract",
    "warehouse",
    "pallet",
    "generator",
    "building",
    "safety",
    "report",
    "quarter",
    "revenue",
    "customer",
    "ticket",
    "incident",
    "laptop",
    "firewall",
    "router",
    "switch",
    "storage",
    "volume",
    "snapshot",
    "retention",
    "schedule",
    "meeting",
    "office",
    "badge",
    "visitor",
    "canteen",
    "lunch",
    "holiday",
    "payroll",
    "audit",
    "compliance",
    "license",
    "renewal",
    "vendor",
]
QUESTIONS = [
    "When is the emergency generator tested?",
    "How long are backups kept?",
    "What is the printer on the third floor called?",
    "Who approves vendor license renewals?",
    "Where is the payroll audit stored?",
]


def corpus() -> list[str]:
    rng = random.Random(7)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24))).capitalize() + "."

    return [" ".join(sentence() for _ in range(4)) for _ in range(N_CHUNKS)]


def context_text(i: int) -> str:
    """A different context per question, so neither side reuses a cached prompt prefix."""
    return " ".join(corpus()[3 * i : 3 * i + 3])


def p50(values: list[float]) -> float:
    return float(statistics.median(values))


# ---------------------------------------------------------------- raw side
def run_raw(chat_path: Path, embed_path: Path, work: Path) -> dict[str, Any]:
    import numpy as np
    from qdrant_client import QdrantClient, models

    from appliance.engine.llama_loader import load_llama

    out: dict[str, Any] = {}
    emb = load_llama(
        str(embed_path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=THREADS
    )
    emb.embed([QUESTIONS[0]])
    for gap in (0.0, REQUEST_GAP_S):
        lat = []
        for q in QUESTIONS * 8:
            time.sleep(gap)
            t0 = time.perf_counter()
            emb.embed([q], normalize=True)
            lat.append(time.perf_counter() - t0)
        out[f"embed_p50_gap{gap}"] = p50(lat)

    texts = corpus()
    client = QdrantClient(path=str(work / "raw"))
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE)
    )
    vectors: list[list[float]] = []

    def ingest(chunk: list[str]) -> None:
        for start in range(0, len(chunk), 16):
            batch = chunk[start : start + 16]
            vecs = emb.embed(batch, normalize=True)  # the usual llama-cpp-python call
            vectors.extend(vecs)
            client.upsert(
                "c",
                points=[
                    models.PointStruct(id=str(uuid.uuid4()), vector=v, payload={"text": t})
                    for t, v in zip(batch, vecs, strict=True)
                ],
            )

    t0 = time.perf_counter()
    ingest(texts[:INGEST_SAMPLE])
    out["ingest_rate"] = INGEST_SAMPLE / (time.perf_counter() - t0)
    queries = [emb.embed([q], normalize=True)[0] for q in QUESTIONS * 4]
    out["search"] = {}
    done = INGEST_SAMPLE
    for size in sorted({1000, N_CHUNKS}):
        if done < size:
            ingest(texts[done:size])
            done = size
        lat = []
        for qv in queries:
            t0 = time.perf_counter()
            client.query_points("c", query=qv, limit=5, with_payload=True)
            lat.append(time.perf_counter() - t0)
        matrix = np.asarray(vectors[:size], dtype=np.float32)
        exact = []
        for qv in queries:
            t0 = time.perf_counter()
            np.argpartition(-(matrix @ np.asarray(qv, dtype=np.float32)), 5)[:5]
            exact.append(time.perf_counter() - t0)
        out["search"][str(size)] = {"p50": p50(lat), "numpy_p50": p50(exact)}
    client.close()
    emb.close()

    chat = load_llama(str(chat_path), n_ctx=CHAT_CTX, n_batch=256, n_threads=THREADS)
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    fmt = Jinja2ChatFormatter(
        template=chat.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token=""
    )
    runs = []
    for i, q in enumerate([QUESTIONS[0], *QUESTIONS[:3]]):
        prompt = fmt(
            messages=[
                {"role": "system", "content": f"Answer from the context.\n\n{context_text(i)}"},
                {"role": "user", "content": q},
            ]
        ).prompt
        tokens = chat.tokenize(prompt.encode(), add_bos=True, special=True)
        chat.reset()
        t0 = time.perf_counter()
        first = None
        n = 0
        for _ in chat.create_completion(
            tokens, max_tokens=MAX_TOKENS, temperature=0.0, stream=True
        ):
            n += 1
            first = first or time.perf_counter()
        end = time.perf_counter()
        if i and first is not None:  # the first run warms up
            runs.append((first - t0, (n - 1) / (end - first)))
    out["ttft"] = p50([r[0] for r in runs])
    out["tps"] = p50([r[1] for r in runs])
    return out


# ---------------------------------------------------------- appliance side
async def run_appliance(chat_path: Path, embed_path: Path, work: Path) -> dict[str, Any]:
    from appliance.config.prompts import PromptStrategy
    from appliance.domain.types import ChunkRecord, Hit
    from appliance.engine.build import EngineSpec, build_engine
    from appliance.query.prompt import Excerpt, build_prompt
    from appliance.store.qdrant import QdrantStore

    out: dict[str, Any] = {}
    # as served (models.query_thread): queries on their own thread, ingestion on the engine's
    built = build_engine(EngineSpec(chat_path=chat_path, embedding_path=embed_path,
                                    chat_ctx=CHAT_CTX, n_threads=THREADS, queue_size=8,
                                    query_thread=True)).start()  # fmt: skip
    embedder, generator = built.embedder, built.generator
    store = QdrantStore(collection="c", dim=384, path=work / "appliance")
    store.start()
    try:
        await embedder.embed([QUESTIONS[0]], interactive=True)
        for gap in (0.0, REQUEST_GAP_S):
            lat = []
            for q in QUESTIONS * 8:
                await asyncio.sleep(gap)
                t0 = time.perf_counter()
                await embedder.embed([q], interactive=True)
                lat.append(time.perf_counter() - t0)
            out[f"embed_p50_gap{gap}"] = p50(lat)

        texts = corpus()

        async def ingest(chunk: list[str], offset: int) -> None:
            for start in range(0, len(chunk), 16):
                batch = chunk[start : start + 16]
                vecs = await embedder.embed(batch, interactive=False)
                await store.upsert(
                    [
                        ChunkRecord(
                            point_id=str(uuid.uuid4()), document_id=f"d{(offset + start) // 100}",
                            file_name="bench.txt", chunk_index=offset + start + i, text=t,
                            page=None, heading=None, vector=v,
                        )
                        for i, (t, v) in enumerate(zip(batch, vecs, strict=True))
                    ]
                )  # fmt: skip

        t0 = time.perf_counter()
        await ingest(texts[:INGEST_SAMPLE], 0)
        out["ingest_rate"] = INGEST_SAMPLE / (time.perf_counter() - t0)
        queries = [(await embedder.embed([q], interactive=True))[0] for q in QUESTIONS * 4]
        out["search"] = {}
        done = INGEST_SAMPLE
        for size in sorted({1000, N_CHUNKS}):
            if done < size:
                await ingest(texts[done:size], done)
                done = size
            lat = []
            for qv in queries:
                t0 = time.perf_counter()
                await store.search(qv, 5)
                lat.append(time.perf_counter() - t0)
            out["search"][str(size)] = {"p50": p50(lat)}

        runs = []
        for i, q in enumerate([QUESTIONS[0], *QUESTIONS[:3]]):
            hits = [
                Hit(point_id="x", score=1.0, document_id="d", file_name="ctx.txt", chunk_index=0,
                    text=context_text(i))
            ]  # fmt: skip
            t0 = time.perf_counter()
            prompt = build_prompt(
                strategy=PromptStrategy(context="passages", instruction="Answer from the context."),
                question=q, excerpts=[Excerpt(1, hits[0], hits[0].text)],
                render=generator.render, encode=generator.encode, n_ctx=CHAT_CTX,
                max_tokens=MAX_TOKENS, context_tokens=CHAT_CTX,
            )  # fmt: skip
            first = None
            n = 0
            async for _ in generator.stream(prompt.tokens, max_tokens=MAX_TOKENS, temperature=0.0):
                n += 1
                first = first or time.perf_counter()
            end = time.perf_counter()
            if i and first is not None:
                runs.append((first - t0, (n - 1) / (end - first)))
        out["ttft"] = p50([r[0] for r in runs])
        out["tps"] = p50([r[1] for r in runs])
    finally:
        await store.close()
        built.stop()
    return out


# -------------------------------------------------------------------- main
def side(name: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--side", name],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{name} side failed:\n{result.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=["raw", "appliance"])
    args = parser.parse_args()
    from appliance.models.locate import prepare_default_chat, prepare_default_embedding

    chat_path = prepare_default_chat(MODELS)
    embed_path = prepare_default_embedding(MODELS)
    if args.side:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            if args.side == "raw":
                out = run_raw(chat_path, embed_path, Path(tmp))
            else:
                out = asyncio.run(run_appliance(chat_path, embed_path, Path(tmp)))
        print(json.dumps(out))
        return

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, threads={THREADS}, "
          f"python {platform.python_version()}; chunks={N_CHUNKS}")  # fmt: skip
    print(f"models: {chat_path.name}, {embed_path.name}")
    raw = side("raw")
    app = side("appliance")
    rows = [
        (
            "query embedding p50, back to back (ms)",
            app["embed_p50_gap0.0"] * 1e3,
            raw["embed_p50_gap0.0"] * 1e3,
            "lower",
        ),
        (
            f"query embedding p50, {REQUEST_GAP_S * 1e3:.0f} ms apart (ms)",
            app[f"embed_p50_gap{REQUEST_GAP_S}"] * 1e3,
            raw[f"embed_p50_gap{REQUEST_GAP_S}"] * 1e3,
            "lower",
        ),
        ("ingestion embed+upsert (chunks/s)", app["ingest_rate"], raw["ingest_rate"], "higher"),
    ]
    for size, s in raw["search"].items():
        rows.append(
            (f"search p50 at {size} chunks (ms)", app["search"][size]["p50"] * 1e3,
             s["p50"] * 1e3, "lower")
        )  # fmt: skip
    rows += [
        ("time to first token, one stream (ms)", app["ttft"] * 1e3, raw["ttft"] * 1e3, "lower"),
        ("tokens/s, one stream", app["tps"], raw["tps"], "higher"),
    ]
    print(f"\n{'measure':<40} {'appliance':>11} {'raw':>11} {'app/raw':>8}  better")
    for what, a, r, better in rows:
        print(f"{what:<40} {a:>11.2f} {r:>11.2f} {a / r:>8.2f}  {better}")
    print("\nexact numpy brute force over the same vectors (reference):")
    for size, s in raw["search"].items():
        print(f"  {size:>6} chunks: p50 {s['numpy_p50'] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
