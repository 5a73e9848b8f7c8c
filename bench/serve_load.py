"""Serving benchmark: the real server under load over HTTP, from this separate process.

Measured in one run, on this machine, with ratios against baselines from the same run:
- aggregate tokens/s and p50/p99 time to first token at 1, 4, 8, 16 concurrent streams:
  appliance (continuous batching) vs one-at-a-time serving (the same server with one
  slot, the usual llama-cpp-python way) vs llama.cpp's own `llama-server --parallel N`
  (built from the sources vendored in the llama-cpp-python sdist; skipped if it cannot be);
- single-stream tokens/s vs raw llama-cpp-python in process;
- search req/s and p50/p99 at 1, 10, 50 clients over a 20k-chunk index vs the seed's
  stack (FastAPI + pydantic + llama-cpp-python + qdrant-client local, bench/reference);
- /healthz p99 under full load vs idle; p99 time to first token at 50 askers and 503s;
- peak RSS of the server.
Writes bench/RESULTS.md. Run: `make bench`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
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

from bench.harness import (  # noqa: E402
    Server,
    appliance_server,
    concurrent_streams,
    free_port,
    request_load,
)  # fmt: skip
from bench.llama_server import build_llama_server  # noqa: E402
from bench.store_engines import CACHE, embeddings, texts  # noqa: E402

MODELS = REPO / ".cache" / "models"
N_INDEX = int(os.environ.get("BENCH_INDEX", "20000"))
LEVELS = [1, 4, 8, 16]
MAX_TOKENS = 128
CTX = 2048
THREADS = len(os.sched_getaffinity(0))
SEARCH_SECONDS = float(os.environ.get("BENCH_SEARCH_SECONDS", "8"))
QUESTIONS = [
    "Write a detailed report about the warehouse safety audit.",
    "Explain the backup retention schedule in detail.",
    "Describe the firewall and router maintenance policy.",
    "Summarize everything about vendor license renewals.",
    "Write a long note about the payroll audit and compliance.",
    "Describe the office badge and visitor procedure at length.",
    "Explain the storage volume snapshot policy in detail.",
    "Write a detailed guide to the canteen and holiday schedule.",
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ index
def build_index(n: int) -> tuple[Path, Path]:
    """A 20k-chunk index of real MiniLM embeddings: appliance data dir + reference store."""
    root = CACHE / f"index-{n}"
    done = root / ".done"
    if done.is_file():
        return root / "appliance", root / "reference"
    shutil.rmtree(root, ignore_errors=True)
    vectors, _ = embeddings(n)
    vectors = vectors[:n]
    corpus = texts(n, 1)
    log(f"building the {n}-chunk indexes (once per machine)")

    async def appliance_side() -> None:
        from appliance.domain.types import ChunkRecord
        from appliance.store.edge import EdgeStore
        from appliance.store.journal import DocumentRow, Journal

        store = EdgeStore(path=root / "appliance" / "edge" / "chunks", dim=384,
                          optimize_after_writes=False)  # fmt: skip
        store.start()
        catalog = Journal(root / "appliance" / "journal.sqlite3")
        catalog.start()
        for start in range(0, n, 100):
            doc = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{start}"))
            await store.upsert([
                ChunkRecord(point_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{i}")),
                            document_id=doc, file_name=f"doc{start // 100}.txt", chunk_index=i - start,
                            text=corpus[i], page=None, heading=None, vector=vectors[i].tolist())
                for i in range(start, min(n, start + 100))
            ])  # fmt: skip
            await catalog.add(DocumentRow(doc, f"doc{start // 100}.txt", doc, "text/plain", 0,
                                          min(100, n - start), None, time.time()))  # fmt: skip
        await store.optimize()
        await store.close()
        await catalog.close()

    asyncio.run(appliance_side())
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(root / "reference"))
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE)
    )
    for start in range(0, n, 256):
        client.upsert("c", points=[
            models.PointStruct(id=i + 1, vector=vectors[i].tolist(), payload={"text": corpus[i]})
            for i in range(start, min(n, start + 256))
        ])  # fmt: skip
    client.close()
    done.touch()
    return root / "appliance", root / "reference"


def copy_dir(src: Path, work: Path, name: str) -> Path:
    dst = work / name
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------- sections
def ask_bodies(n: int) -> list[dict[str, object]]:
    return [{"query": QUESTIONS[i % len(QUESTIONS)], "max_tokens": MAX_TOKENS, "temperature": 0}
            for i in range(n)]  # fmt: skip


def generation_levels(
    url: str,
    openai_bodies: list[dict[str, object]] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[int, Any]:
    out = {}
    for level in LEVELS:
        if openai_bodies is None:
            res = asyncio.run(
                concurrent_streams(f"{url}/v1/ask/stream", ask_bodies(level), headers=headers)
            )
        else:
            bodies = [openai_bodies[i % len(openai_bodies)] for i in range(level)]
            res = asyncio.run(concurrent_streams(f"{url}/v1/chat/completions", bodies, openai=True))
        out[level] = {"tps": res.tokens_per_s(), "ttft50": res.ttft(50), "ttft99": res.ttft(99),
                      "ok": len(res.ok), "decode_tps": res.decode_rate()}  # fmt: skip
        log(f"  {level:>2} streams: {out[level]['tps']:.1f} tok/s, ttft p50 {out[level]['ttft50']*1e3:.0f} ms "
            f"p99 {out[level]['ttft99']*1e3:.0f} ms")  # fmt: skip
    return out


def single_streams(url: str, headers: dict[str, str]) -> float:
    """Median decode rate of one stream at a time over every question (as the raw baseline)."""
    rates = []
    for body in ask_bodies(len(QUESTIONS)):
        res = asyncio.run(concurrent_streams(f"{url}/v1/ask/stream", [body], headers=headers))
        rates.append(res.decode_rate())
    log(f"  one stream at a time, median decode rate {np.median(rates):.1f} tok/s")
    return float(np.median(rates))


def llama_server_messages(url: str, headers: dict[str, str]) -> list[dict[str, object]]:
    """The same prompts the appliance builds (its search + its prompt builder)."""
    import httpx

    from appliance.config.schema import Settings
    from appliance.domain.types import Hit
    from appliance.query.prompt import Excerpt, messages_for

    bodies = []
    for q in QUESTIONS:
        hits = httpx.post(f"{url}/v1/search", json={"query": q, "top_k": 4},
                          headers=headers).json()["hits"]  # fmt: skip
        found = [Hit(**{k: h[k] for k in Hit.__struct_fields__ if k in h}) for h in hits]
        msgs = messages_for(Settings().prompts["top3"], q,
                            [Excerpt(n, h, h.text) for n, h in enumerate(found[:3], start=1)])  # fmt: skip
        # cache_prompt off: the appliance keeps no prompt cache across requests, so
        # llama-server must read every prompt too (its cache would skip repeats).
        bodies.append({"messages": msgs, "max_tokens": MAX_TOKENS, "temperature": 0,
                       "stream": True, "cache_prompt": False})  # fmt: skip
    return bodies


def raw_single_stream(chat: Path, messages: list[dict[str, object]]) -> float:
    code = f"""
import json, time
from appliance.engine.llama_loader import load_llama
llm = load_llama({str(chat)!r}, n_ctx={CTX}, n_batch=256, n_threads={THREADS})
out = []
for msgs in json.loads({json.dumps(json.dumps(messages))}):
    llm.reset()
    n = 0; first = None
    for part in llm.create_chat_completion(msgs, max_tokens={MAX_TOKENS}, temperature=0, stream=True):
        if part["choices"][0]["delta"].get("content"):
            n += 1; first = first or time.perf_counter()
    out.append((n - 1) / (time.perf_counter() - first))
import statistics; print(json.dumps(statistics.median(out)))
"""
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    return float(json.loads(res.stdout.strip().splitlines()[-1]))


def search_levels(url: str, headers: dict[str, str]) -> dict[int, Any]:
    bodies = [{"query": q, "top_k": 5} for q in texts(200, 3)]
    out = {}
    for clients in (1, 10, 50):
        st = asyncio.run(request_load(f"{url}/v1/search", bodies, clients, SEARCH_SECONDS, headers))
        out[clients] = {"rps": st.rps, "p50": st.pct(50), "p99": st.pct(99), "errors": st.errors}
        log(
            f"  {clients:>2} clients: {st.rps:.1f} req/s p50 {st.pct(50):.1f} ms p99 {st.pct(99):.1f} ms"
        )
    return out


def probe_process(url: str, seconds: float) -> subprocess.Popen[str]:
    """/healthz probed from its own process (bench/probe.py), apart from the load's event loop."""
    return subprocess.Popen([sys.executable, "-m", "bench.probe", url, str(seconds)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)  # fmt: skip


def probe_latencies(proc: subprocess.Popen[str]) -> list[float]:
    out, _ = proc.communicate(timeout=120)
    if proc.returncode:
        raise RuntimeError(f"bench.probe exited with {proc.returncode}")
    latencies: list[float] = json.loads(out)
    return latencies


async def healthz_under_load(url: str, headers: dict[str, str]) -> dict[str, float]:
    idle = probe_latencies(probe_process(f"{url}/healthz", 5.0))
    busy_probe = probe_process(f"{url}/healthz", 10.0)
    search_bodies = [{"query": q, "top_k": 5} for q in texts(50, 4)]
    await asyncio.gather(
        concurrent_streams(f"{url}/v1/ask/stream", ask_bodies(16), headers=headers),
        request_load(f"{url}/v1/search", search_bodies, 10, 10.0, headers),
    )
    busy = probe_latencies(busy_probe)
    return {"idle_p99": float(np.percentile(idle, 99) * 1e3),
            "busy_p99": float(np.percentile(busy, 99) * 1e3)}  # fmt: skip


# --------------------------------------------------------------- main
def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import psutil

    return (f"{cpu}, {THREADS} cores available, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")  # fmt: skip


def main() -> None:
    from appliance.models.locate import prepare_default_chat, prepare_default_embedding

    chat = prepare_default_chat(MODELS)
    prepare_default_embedding(MODELS)
    app_index, ref_index = build_index(N_INDEX)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    logs = work / "logs"
    logs.mkdir()
    r: dict[str, Any] = {"machine": machine(), "model": chat.name}
    try:
        log("appliance, continuous batching (parallel=16):")
        with appliance_server(copy_dir(app_index, work, "a1"), MODELS, logs / "a1.log",
                              generation__parallel="16", models__chat_ctx=str(CTX)) as srv:  # fmt: skip
            r["batched"] = generation_levels(srv.url, headers=srv.headers)
            r["single_tps"] = single_streams(srv.url, srv.headers)
            messages = llama_server_messages(srv.url, srv.headers)
            r["batched_rss"] = srv.peak_rss
        log("appliance, one at a time (parallel=1):")
        with appliance_server(copy_dir(app_index, work, "a2"), MODELS, logs / "a2.log",
                              generation__parallel="1", models__chat_ctx=str(CTX)) as srv:  # fmt: skip
            r["sequential"] = generation_levels(srv.url, headers=srv.headers)
        binary = build_llama_server()
        if binary:
            log("llama-server --parallel 16:")
            port = free_port()
            argv = [str(binary), "-m", str(chat), "-t", str(THREADS), "-c", str(CTX * 16),
                    "--parallel", "16", "--port", str(port), "--host", "127.0.0.1", "-b", "256",
                    "--no-repack"]  # as the appliance: AMX/repacked buffers fault on this CPU  # fmt: skip
            with Server(
                "llama-server", argv, {}, port, "/health", logs / "llama-server.log"
            ) as srv:
                r["llama_server"] = generation_levels(srv.url, [
                    {k: v for k, v in b.items()} for b in messages
                ])  # fmt: skip
        log("raw llama-cpp-python, one stream:")
        r["raw_tps"] = raw_single_stream(chat, [b["messages"] for b in messages])
        log(f"  {r['raw_tps']:.1f} tok/s")
        log("search, appliance:")
        with appliance_server(copy_dir(app_index, work, "a3"), MODELS, logs / "a3.log") as srv:
            r["search_app"] = search_levels(srv.url, srv.headers)
            log("healthz idle vs under load:")
            r["healthz"] = asyncio.run(healthz_under_load(srv.url, srv.headers))
            log("50 concurrent askers:")
            res = asyncio.run(concurrent_streams(f"{srv.url}/v1/ask/stream", ask_bodies(50),
                                                 headers=srv.headers))  # fmt: skip
            r["askers50"] = {"ttft99": res.ttft(99), "ttft50": res.ttft(50), "n503": res.count(503),
                             "ok": len(res.ok)}  # fmt: skip
            r["default_rss"] = srv.peak_rss
        log("search, FastAPI reference:")
        port = free_port()
        ref_env = {"REFERENCE_MODEL": str(MODELS / "all-MiniLM-L6-v2.F16.gguf"),
                   "REFERENCE_STORE": str(copy_dir(ref_index, work, "ref"))}  # fmt: skip
        argv = [sys.executable, "-m", "uvicorn", "bench.reference.app:app", "--port", str(port),
                "--log-level", "warning"]  # fmt: skip
        with Server("reference", argv, ref_env, port, "/healthz", logs / "ref.log") as srv:
            r["search_ref"] = search_levels(srv.url, srv.headers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(r)
    print(report)
    (CACHE / "serve_load.md").write_text(report)
    (CACHE / "serve_load.json").write_text(json.dumps(r, indent=1))


def render(r: dict[str, Any]) -> str:
    b, s, ls = r["batched"], r["sequential"], r.get("llama_server")
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (bench/serve_load.py); do not edit by hand.",
        "",
        f"- machine: {r['machine']}",
        f"- chat model: {r['model']}, {MAX_TOKENS} tokens per answer, temperature 0, {THREADS} threads",
        f"- search index: {N_INDEX} chunks of real all-MiniLM-L6-v2 embeddings",
        "",
        "## Generation: concurrent streams",
        "",
        "| streams | appliance tok/s | one-at-a-time tok/s | llama-server tok/s | vs one-at-a-time | vs llama-server | appliance TTFT p50 / p99 ms | one-at-a-time TTFT p50 / p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in LEVELS:
        ref = ls[n]["tps"] if ls else float("nan")
        lines.append(
            f"| {n} | {b[n]['tps']:.1f} | {s[n]['tps']:.1f} | {ref:.1f} | {b[n]['tps'] / s[n]['tps']:.2f}x | "
            f"{b[n]['tps'] / ref:.2f}x | {b[n]['ttft50'] * 1e3:.0f} / {b[n]['ttft99'] * 1e3:.0f} | "
            f"{s[n]['ttft50'] * 1e3:.0f} / {s[n]['ttft99'] * 1e3:.0f} |"
        )  # fmt: skip
    if not ls:
        lines.append("\nllama-server could not be built here: that column is skipped.")
    lines += [
        "",
        f"p99 TTFT with 8 streams, appliance / one-at-a-time: **{b[8]['ttft99'] / s[8]['ttft99']:.2f}x** (target ≤ 0.3x).",
        "",
        f"Single stream, median decode rate over the {len(QUESTIONS)} questions (first to last token, "
        f"over HTTP): appliance {r['single_tps']:.1f} tok/s vs raw llama-cpp-python in process "
        f"{r['raw_tps']:.1f} tok/s: **{r['single_tps'] / r['raw_tps']:.2f}x** (target ≥ 0.95x).",
        "",
        "## Search endpoint",
        "",
        "| clients | appliance req/s | p50 / p99 ms | FastAPI reference req/s | p50 / p99 ms | ratio |",
        "| --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for c in (1, 10, 50):
        a, f = r["search_app"][c], r["search_ref"][c]
        lines.append(f"| {c} | {a['rps']:.1f} | {a['p50']:.1f} / {a['p99']:.1f} | {f['rps']:.1f} | "
                     f"{f['p50']:.1f} / {f['p99']:.1f} | {a['rps'] / f['rps']:.2f}x |")  # fmt: skip
    h, a50 = r["healthz"], r["askers50"]
    lines += [
        "",
        "## Under load",
        "",
        f"- /healthz p99: idle {h['idle_p99']:.2f} ms, under 16 streams + 10 search clients "
        f"{h['busy_p99']:.2f} ms: **{h['busy_p99'] / h['idle_p99']:.2f}x** (target ≤ 2x)",
        f"- 50 concurrent askers (default settings): TTFT p50 {a50['ttft50'] * 1e3:.0f} ms, "
        f"p99 {a50['ttft99'] * 1e3:.0f} ms; {a50['n503']} answered 503; {a50['ok']} streamed",
        f"- peak server RSS: {r['default_rss'] / 2**20:.0f} MiB (default settings, 50 askers), "
        f"{r['batched_rss'] / 2**20:.0f} MiB (16 slots) (target ≤ 1.2 GB)",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
